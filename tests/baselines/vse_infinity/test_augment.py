"""Size augmentations of VSE∞: region drop and word mask / replace / delete (docs/methods/vse-infinity.md)."""

import torch

from baselines.vse_infinity.augment import augment_tokens, compact, drop_regions

MASK, VOCAB, PAD = 99, 100, 0


def test_compact_moves_kept_entries_to_the_front_in_order_and_pads():
    values = torch.tensor([[5, 6, 7, 8], [1, 2, 3, 4]])
    keep = torch.tensor([[False, True, False, True], [True, False, False, False]])
    packed, lengths = compact(values, keep, fill=-1)
    assert packed.tolist() == [[6, 8], [1, -1]]
    assert lengths.tolist() == [2, 1]


def test_region_drop_keeps_a_subset_of_the_regions_in_their_order():
    torch.manual_seed(0)
    regions = torch.arange(1, 11, dtype=torch.float32).reshape(1, 10, 1).expand(8, 10, 3)
    sets = drop_regions(regions, 0.5)
    for vectors, length in zip(sets.vectors, sets.lengths):
        kept = vectors[:length, 0]
        assert (kept[1:] > kept[:-1]).all()  # a subsequence of 1..10
        assert (vectors[length:] == 0).all()


def test_region_drop_keeps_at_least_one_region():
    torch.manual_seed(0)
    sets = drop_regions(torch.randn(64, 3, 2), 0.99)
    assert (sets.lengths >= 1).all()
    assert (sets.lengths == 1).float().mean() > 0.9


def test_region_drop_rate_matches_the_probability():
    torch.manual_seed(0)
    sets = drop_regions(torch.randn(200, 49, 2), 0.2)
    assert abs(sets.lengths.float().mean().item() / 49 - 0.8) < 0.01


def augment(ids, lengths, words, select_prob):
    return augment_tokens(ids, lengths, words, select_prob=select_prob, mask_id=MASK, vocab_size=VOCAB, pad_id=PAD)


def long_caption(n=4000):
    """One caption of n distinct original ids ≥ 1000 (random draws land in [0, 100)), a word each."""
    return torch.arange(1000, 1000 + n)[None], torch.tensor([n]), torch.arange(n)[None]


def test_selected_words_are_half_masked_a_tenth_randomised_and_the_rest_deleted():
    torch.manual_seed(0)
    ids, lengths, words = long_caption()
    out, new_lengths = augment(ids, lengths, words, select_prob=1.0)
    n = ids.shape[1]
    assert abs((out == MASK).sum().item() / n - 0.5) < 0.03
    assert abs(((out < VOCAB) & (out != MASK)).sum().item() / n - 0.1) < 0.02
    assert abs(new_lengths.item() / n - 0.6) < 0.03  # 40% deleted
    assert not (out >= 1000).any()


def test_selection_probability_0_2_masks_10_randomises_2_deletes_8_percent():
    torch.manual_seed(0)
    ids, lengths, words = long_caption(20000)
    out, new_lengths = augment(ids, lengths, words, select_prob=0.2)
    n = ids.shape[1]
    assert abs((out == MASK).sum().item() / n - 0.10) < 0.01
    assert abs(((out < VOCAB) & (out != MASK)).sum().item() / n - 0.02) < 0.005
    assert abs(1 - new_lengths.item() / n - 0.08) < 0.01


def test_deletion_shortens_and_kept_tokens_stay_in_order():
    torch.manual_seed(0)
    ids, lengths, words = long_caption(200)
    out, new_lengths = augment(ids, lengths, words, select_prob=0.5)
    assert new_lengths.item() < 200 and out.shape[1] == new_lengths.item()
    originals = out[out >= 1000]
    assert (originals[1:] > originals[:-1]).all()


def test_padding_stays_padding_after_augmentation():
    torch.manual_seed(0)
    ids = torch.tensor([[1001, 1002, 1003, 1004], [1005, 1006, PAD, PAD]])
    lengths = torch.tensor([4, 2])
    words = torch.tensor([[0, 1, 2, 3], [0, 1, -1, -1]])
    for _ in range(20):
        out, new_lengths = augment(ids, lengths, words, select_prob=0.5)
        assert (new_lengths <= lengths).all()
        for row, length in zip(out, new_lengths):
            assert (row[length:] == PAD).all()


def test_tokens_outside_any_word_are_never_augmented():
    torch.manual_seed(0)
    ids = torch.tensor([[101, 1001, 1002, 1003, 102]])  # [CLS] three words [SEP]
    words = torch.tensor([[-1, 0, 1, 2, -1]])
    for _ in range(20):
        out, length = augment(ids, torch.tensor([5]), words, select_prob=1.0)
        assert out[0, 0] == 101 and out[0, length - 1] == 102


def test_word_pieces_of_one_word_share_one_fate():
    torch.manual_seed(0)
    ids = torch.tensor([[101, 1000, 1001, 1002, 1003, 1004, 1005, 102]]).expand(500, 8)
    words = torch.tensor([[-1, 0, 0, 0, 1, 1, 2, -1]]).expand(500, 8)
    out, _ = augment(ids, torch.full((500,), 8), words, select_prob=0.5)
    for row in out:
        present = set(row.tolist())
        assert len({1000, 1001, 1002} & present) in (0, 3)
        assert len({1003, 1004} & present) in (0, 2)


def test_a_caption_whose_every_token_is_deleted_keeps_its_first():
    torch.manual_seed(0)
    ids = torch.tensor([[1000, 1001]]).expand(300, 2)
    words = torch.tensor([[0, 1]]).expand(300, 2)
    out, lengths = augment(ids, torch.full((300,), 2), words, select_prob=1.0)
    assert (lengths >= 1).all()
    assert (lengths == 1).any()
