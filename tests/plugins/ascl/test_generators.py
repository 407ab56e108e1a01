"""AsCL's generated samples (docs/methods/ascl.md): text positives and feature negatives."""

from __future__ import annotations

import random

import pytest
import torch

from harness.embeddings import VectorSets
from plugins.ascl.captions import pre_caption
from plugins.ascl.generators import (
    ConcatSiblings,
    FeatureDropout,
    GaussianNoise,
    RandomDeletion,
    RandomSwap,
    TokenShuffle,
    TruncateHalf,
    ZeroDimOrToken,
)
from plugins.ascl.heads import AsCLFusionHead

CAPTIONS = ["A man riding a wave on top of a surfboard.", "Two dogs.", "Cat", "A red/white bus, parked (near) the curb!"]
SIBLINGS = [["first caption", "second one here", "third"], ["x"], ["p q", "r s"], ["only one"]]


def word_sets(lengths: list[int], dim: int = 6, seed: int = 0) -> VectorSets:
    """Random word features zero-padded to the longest set."""
    width = max(lengths)
    vectors = torch.randn(len(lengths), width, dim, generator=torch.Generator().manual_seed(seed))
    lengths_t = torch.tensor(lengths)
    mask = torch.arange(width)[None, :] < lengths_t[:, None]
    return VectorSets(vectors * mask[..., None], lengths_t)


def test_pre_caption_cleans_as_the_code():
    assert pre_caption("A red/white bus, parked (near) the curb-side!") == "a red white bus parked near the curb side"


def test_truncate_half_keeps_the_first_half_of_the_cleaned_words():
    out = TruncateHalf(None)(CAPTIONS, SIBLINGS, random.Random(0))
    assert out[0] == "a man riding a wave"  # 10 words -> 5
    assert out[1] == "two"  # 2 -> 1
    assert out[2] == "cat"  # 1 word is kept, not emptied
    assert out[3] == "a red white bus"  # 8 words -> 4


def test_concat_siblings_joins_two_captions_of_the_same_image():
    generator = ConcatSiblings(None)
    rng = random.Random(0)
    seen = set()
    for _ in range(50):
        out = generator(CAPTIONS[:3], SIBLINGS[:3], rng)
        for made, group in zip(out, SIBLINGS[:3]):
            assert made in {f"{a} {b}" for a in group for b in group}
        seen.add(out[0])
    assert len(seen) > 3  # drawn with replacement, order matters: up to 9 outcomes
    assert generator(["x"], [["x"]], rng) == ["x x"]


def test_concat_siblings_draws_only_from_the_given_rng():
    generator = ConcatSiblings(None)
    assert generator(CAPTIONS, SIBLINGS, random.Random(5)) == generator(CAPTIONS, SIBLINGS, random.Random(5))


def test_random_deletion_keeps_an_ordered_non_empty_subsequence():
    words = pre_caption(CAPTIONS[0]).split()
    rng = random.Random(0)
    lengths = set()
    for _ in range(30):
        [out] = RandomDeletion(None, alpha=0.5)([CAPTIONS[0]], [[CAPTIONS[0]]], rng)
        kept = out.split()
        remaining = iter(words)
        assert kept and all(word in remaining for word in kept)  # an ordered subsequence
        lengths.add(len(kept))
    assert len(lengths) > 1
    assert RandomDeletion(None, alpha=0.99)(["cat"], [["cat"]], rng) == ["cat"]


def test_random_swap_keeps_the_words_and_changes_their_order():
    rng = random.Random(0)
    [out] = RandomSwap(None, alpha=0.2)([CAPTIONS[0]], [[CAPTIONS[0]]], rng)
    words = pre_caption(CAPTIONS[0]).split()
    assert sorted(out.split()) == sorted(words) and out.split() != words
    assert RandomSwap(None)(["cat"], [["cat"]], rng) == ["cat"]


def test_token_shuffle_applies_one_permutation_of_all_positions_to_every_caption():
    sets = word_sets([5, 3, 2])
    out = TokenShuffle(None)(sets, torch.Generator().manual_seed(0))
    permutation = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    for k, n in enumerate(sets.lengths.tolist()):
        torch.testing.assert_close(out.vectors[k, :n], sets.vectors[k, permutation[:n]])
        assert not out.vectors[k, n:].any()  # rows past the length stay zero
    assert torch.equal(out.lengths, sets.lengths)


def test_token_shuffle_keeps_the_multiset_of_word_vectors():
    full = word_sets([4, 4])  # no padding: a full permutation keeps every vector
    out = TokenShuffle(None)(full, torch.Generator().manual_seed(1))
    uneven = word_sets([4, 2, 3])
    within = TokenShuffle(None, within_length=True)(uneven, torch.Generator().manual_seed(1))
    for original, shuffled in ((full, out), (uneven, within)):
        for k, n in enumerate(original.lengths.tolist()):
            key = lambda rows: sorted(map(tuple, rows.tolist()))  # noqa: E731
            assert key(shuffled.vectors[k, :n]) == key(original.vectors[k, :n])


def test_token_shuffle_is_detached():
    sets = word_sets([3, 2])
    leaf = sets.vectors.requires_grad_()
    out = TokenShuffle(None)(VectorSets(leaf, sets.lengths), torch.Generator().manual_seed(0))
    assert not out.vectors.requires_grad


def test_zeroing_zeroes_exactly_one_dimension_or_one_token():
    sets = word_sets([5, 5, 5], dim=8)  # no padding, no zeros before
    kinds = set()
    for seed in range(20):
        out = ZeroDimOrToken(None)(sets, torch.Generator().manual_seed(seed))
        zeroed = out.vectors == 0
        dims = zeroed.all(dim=(0, 1)).nonzero().flatten()
        tokens = zeroed.all(dim=(0, 2)).nonzero().flatten()
        if len(dims):
            assert len(dims) == 1 and zeroed.sum() == 3 * 5 and len(tokens) == 0
            kinds.add("dimension")
        else:
            assert len(tokens) == 1 and zeroed.sum() == 3 * 8
            kinds.add("token")
    assert kinds == {"dimension", "token"}


@pytest.mark.parametrize("generator_class", [GaussianNoise, FeatureDropout])
def test_noise_and_dropout_keep_the_shape_and_draw_only_from_the_generator(generator_class):
    make = generator_class(None)
    for texts in (word_sets([4, 2, 3]), torch.randn(3, 6)):
        torch.manual_seed(0)
        first = make(texts, torch.Generator().manual_seed(11))
        torch.manual_seed(123)  # the global stream must not matter
        again = make(texts, torch.Generator().manual_seed(11))
        other = make(texts, torch.Generator().manual_seed(12))
        if isinstance(texts, VectorSets):
            assert torch.equal(first.lengths, texts.lengths)
            assert not first.vectors[~texts.mask()].any()  # padding stays zero
            first, again, other, texts = first.vectors, again.vectors, other.vectors, texts.vectors
        assert first.shape == texts.shape
        assert torch.equal(first, again) and not torch.equal(first, other)


def test_dropout_zeroes_about_p_and_rescales_the_rest():
    texts = torch.ones(200, 50)
    out = FeatureDropout(None, p=0.5)(texts, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert 0.45 < (out == 0).float().mean() < 0.55


def test_shuffling_within_length_is_invisible_to_the_fusion_head():
    """Why `token-shuffle` moves padding by default: the head treats a caption as a set of
    (already contextual) word vectors, so reordering only the real words changes no score."""
    torch.manual_seed(0)
    head = AsCLFusionHead(None, embed_dim=16, heads=4)
    images = word_sets([3, 3], dim=16, seed=1)
    images = VectorSets(images.vectors, images.lengths, torch.randn(2, 16))
    texts = word_sets([5, 2, 4], dim=16, seed=2)
    within = TokenShuffle(None, within_length=True)(texts, torch.Generator().manual_seed(0))
    across = TokenShuffle(None)(texts, torch.Generator().manual_seed(0))
    assert not torch.equal(within.vectors, texts.vectors)
    torch.testing.assert_close(head(images, within), head(images, texts))
    # across positions: the longest caption (column 0) is only reordered, the others change
    torch.testing.assert_close(head(images, across)[:, 0], head(images, texts)[:, 0])
    assert not torch.allclose(head(images, across)[:, 1:], head(images, texts)[:, 1:])
