"""Vocabulary and tokenisation of the GRU text encoders (docs/methods/vse-pp.md)."""

import torch

from baselines.vse.vocab import Vocabulary, tokenize


def test_tokenize_lowercases_and_splits_off_punctuation():
    assert tokenize("A Dog, running.") == ["a", "dog", ",", "running", "."]


def test_tokenize_splits_clitics_like_nltk():
    assert tokenize("The dog's ball isn't red") == ["the", "dog", "'s", "ball", "is", "n't", "red"]


def test_tokenize_keeps_hyphenated_words_and_decimals_whole():
    assert tokenize("a well-known 3.5 inch screen") == ["a", "well-known", "3.5", "inch", "screen"]


def test_special_tokens_take_the_first_ids_with_pad_zero():
    vocab = Vocabulary.from_captions(["a cat"], min_count=1)
    assert vocab.words[:4] == ("<pad>", "<start>", "<end>", "<unk>")
    assert vocab.id_of("<pad>") == 0


def test_words_below_min_count_are_excluded():
    vocab = Vocabulary.from_captions(["a cat", "a dog", "a cat"], min_count=2)
    assert "a" in vocab and "cat" in vocab
    assert "dog" not in vocab


def test_words_are_ordered_by_count_then_alphabetically():
    vocab = Vocabulary.from_captions(["zebra bear bear", "apple zebra bear"], min_count=1)
    assert vocab.words[4:] == ("bear", "zebra", "apple")


def test_word_ids_do_not_depend_on_caption_order():
    captions = ["a man rides a horse", "two dogs play", "a dog sleeps"]
    forward = Vocabulary.from_captions(captions, min_count=1)
    backward = Vocabulary.from_captions(captions[::-1], min_count=1)
    assert forward.words == backward.words


def test_unknown_words_map_to_unk():
    vocab = Vocabulary.from_captions(["a cat"], min_count=1)
    ids, _ = vocab.encode(["a giraffe"])
    assert ids[0, 2].item() == vocab.id_of("<unk>") == 3


def test_encode_wraps_each_caption_in_start_and_end():
    vocab = Vocabulary.from_captions(["a cat"], min_count=1)
    ids, lengths = vocab.encode(["a cat"])
    expected = [vocab.id_of(w) for w in ("<start>", "a", "cat", "<end>")]
    assert ids[0].tolist() == expected
    assert lengths.tolist() == [4]


def test_encode_pads_with_zero_to_the_longest_caption():
    vocab = Vocabulary.from_captions(["a black cat sits"], min_count=1)
    ids, lengths = vocab.encode(["a cat", "a black cat sits"])
    assert ids.dtype == lengths.dtype == torch.int64
    assert ids.shape == (2, 6)
    assert lengths.tolist() == [4, 6]
    assert ids[0, 4:].tolist() == [0, 0]


def test_empty_caption_encodes_as_start_end():
    vocab = Vocabulary.from_captions(["a cat"], min_count=1)
    ids, lengths = vocab.encode([""])
    assert ids[0].tolist() == [vocab.id_of("<start>"), vocab.id_of("<end>")]
    assert lengths.tolist() == [2]
