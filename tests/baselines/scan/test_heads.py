"""SCAN stacked cross attention head against a per-pair reference (docs/methods/scan.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.scan.attention import clipped_l2norm
from baselines.scan.heads import StackedCrossAttentionHead
from harness.embeddings import VectorSets
from harness.errors import UserError
from tests.helpers import grouped_pairs, saved_elements

VARIANTS = {  # the four recipes of the SCAN README
    "t-i-avg": dict(direction="t2i", aggregation="avg", lambda_softmax=9.0, lambda_lse=6.0),
    "t-i-lse": dict(direction="t2i", aggregation="lse", lambda_softmax=9.0, lambda_lse=6.0),
    "i-t-avg": dict(direction="i2t", aggregation="avg", lambda_softmax=4.0, lambda_lse=5.0),
    "i-t-lse": dict(direction="i2t", aggregation="lse", lambda_softmax=4.0, lambda_lse=20.0),
}


def naive_pair_score(
    image_vectors: torch.Tensor,
    caption_vectors: torch.Tensor,
    *,
    direction: str,
    lambda_softmax: float,
    aggregation: str,
    lambda_lse: float,
    slope: float = 0.1,
) -> torch.Tensor:
    """One pair the way SCAN's func_attention + xattn_score_* compute it, on unpadded sets.

    image_vectors [R, D] (real regions), caption_vectors [L, D] (real words) -> scalar score.
    Builds the attended vectors explicitly; `slope` = 0 turns the leaky clip into a hard clamp.
    """
    if direction == "t2i":
        queries, contexts = caption_vectors, image_vectors
    else:
        queries, contexts = image_vectors, caption_vectors
    affinity = F.leaky_relu(contexts @ queries.T, slope)  # [C, Q]
    affinity = affinity / (affinity.norm(dim=1, keepdim=True) + 1e-8)  # each context across queries
    attention = torch.softmax(lambda_softmax * affinity.T, dim=1)  # [Q, C]
    attended = attention @ contexts  # [Q, D]
    norms = queries.norm(dim=1) * attended.norm(dim=1)
    relevance = (queries * attended).sum(1) / norms.clamp(min=1e-8)
    if aggregation == "avg":
        return relevance.mean()
    return torch.log(torch.exp(lambda_lse * relevance).sum()) / lambda_lse


def random_sets(lengths: list[int], dim: int, generator: torch.Generator) -> VectorSets:
    """Unit-norm float64 vectors, zero-padded to the longest set."""
    width = max(lengths)
    vectors = F.normalize(torch.randn(len(lengths), width, dim, generator=generator, dtype=torch.float64), dim=-1)
    lengths_t = torch.tensor(lengths)
    mask = torch.arange(width)[None, :] < lengths_t[:, None]
    return VectorSets(vectors * mask[..., None], lengths_t)


def naive_matrix(images: VectorSets, texts: VectorSets, **options) -> torch.Tensor:
    return torch.stack(
        [
            torch.stack(
                [
                    naive_pair_score(image[:n_regions], caption[:n_words], **options)
                    for caption, n_words in zip(texts.vectors, texts.lengths.tolist())
                ]
            )
            for image, n_regions in zip(images.vectors, images.lengths.tolist())
        ]
    )


@pytest.fixture(params=list(VARIANTS.values()), ids=list(VARIANTS))
def variant(request) -> dict:
    """Head options of one SCAN variant."""
    return request.param


@pytest.fixture
def pairs():
    """5 images with 3..6 regions and 7 captions with 2..9 words, 8-d, uneven on both sides."""
    generator = torch.Generator().manual_seed(0)
    images = random_sets([6, 3, 5, 6, 4], 8, generator)
    texts = random_sets([4, 9, 2, 7, 5, 3, 8], 8, generator)
    return images, texts


def test_batched_head_equals_the_per_pair_reference(pairs, variant):
    images, texts = pairs
    scores = StackedCrossAttentionHead(None, **variant)(images, texts)
    assert scores.shape == (5, 7)
    torch.testing.assert_close(scores, naive_matrix(images, texts, **variant), rtol=0, atol=1e-10)


def test_head_gradients_equal_the_per_pair_reference(pairs, variant):
    images, texts = pairs
    regions = images.vectors.clone().requires_grad_()
    words = texts.vectors.clone().requires_grad_()
    images, texts = VectorSets(regions, images.lengths), VectorSets(words, texts.lengths)
    weights = torch.randn(5, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    head_grads = torch.autograd.grad((weights * StackedCrossAttentionHead(None, **variant)(images, texts)).sum(), (regions, words))
    naive_scores = naive_matrix(images, texts, **variant)
    naive_grads = torch.autograd.grad((weights * naive_scores).sum(), (regions, words))
    for head_grad, naive_grad in zip(head_grads, naive_grads):
        torch.testing.assert_close(head_grad, naive_grad, rtol=0, atol=1e-10)


def take(sets: VectorSets, index: torch.Tensor) -> VectorSets:
    """Rows `index` of `sets`, keeping the padded width."""
    return VectorSets(sets.vectors[index], sets.lengths[index])


def mix(sets: VectorSets, others: VectorSets, keep: torch.Tensor) -> VectorSets:
    """Row b from `sets` where keep[b], else from `others` (same batch size and width)."""
    vectors = torch.where(keep[:, None, None], sets.vectors, others.vectors)
    return VectorSets(vectors, torch.where(keep, sets.lengths, others.lengths))


def test_scores_do_not_change_when_other_items_of_the_chunk_change(pairs, variant):
    images, texts = pairs
    head = StackedCrossAttentionHead(None, **variant)
    generator = torch.Generator().manual_seed(1)
    other_images = random_sets([2, 6, 6, 1, 5], 8, generator)
    other_texts = random_sets([9, 1, 3, 6, 2, 4, 7], 8, generator)
    keep_images = torch.tensor([True, False, True, False, True])
    keep_texts = torch.tensor([True, True, False, False, True, False, True])
    original = head(images, texts)
    mixed = head(mix(images, other_images, keep_images), mix(texts, other_texts, keep_texts))
    kept = keep_images[:, None] & keep_texts[None, :]
    torch.testing.assert_close(mixed[kept], original[kept], rtol=0, atol=1e-12)


def test_permuting_the_chunk_permutes_the_scores(pairs, variant):
    images, texts = pairs
    head = StackedCrossAttentionHead(None, **variant)
    image_order, text_order = torch.tensor([3, 0, 4, 1, 2]), torch.tensor([6, 2, 0, 5, 1, 4, 3])
    permuted = head(take(images, image_order), take(texts, text_order))
    unpermuted = permuted[image_order.argsort()][:, text_order.argsort()]
    torch.testing.assert_close(unpermuted, head(images, texts), rtol=0, atol=1e-12)


def test_extra_zero_padding_does_not_change_scores(pairs, variant):
    images, texts = pairs
    head = StackedCrossAttentionHead(None, **variant)
    padded_images = VectorSets(F.pad(images.vectors, (0, 0, 0, 4)), images.lengths)
    padded_texts = VectorSets(F.pad(texts.vectors, (0, 0, 0, 5)), texts.lengths)
    torch.testing.assert_close(head(padded_images, padded_texts), head(images, texts), rtol=0, atol=1e-12)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_values_past_the_lengths_are_ignored(pairs, direction):
    images, texts = pairs
    head = StackedCrossAttentionHead(None, direction=direction, aggregation="lse")
    past_regions = ~images.mask()[..., None]
    past_words = ~texts.mask()[..., None]
    noisy_images = VectorSets(images.vectors + past_regions * torch.randn_like(images.vectors), images.lengths)
    noisy_texts = VectorSets(texts.vectors.masked_fill(past_words, float("nan")), texts.lengths)
    torch.testing.assert_close(head(noisy_images, noisy_texts), head(images, texts), rtol=0, atol=1e-12)


def test_padded_regions_take_no_attention_even_when_every_real_affinity_is_negative():
    # Image 0 has one region, padded to the 41 regions of image 1. Its region and the word have
    # cosine -0.8, so the leaky, normalised affinity is -1; with λ1 = 30 a padded region
    # (affinity 0) would outweigh it by e^30 and shrink the attended vector below the cosine's
    # eps. The score must stay the unpadded one: the cosine itself, -0.8.
    generator = torch.Generator().manual_seed(2)
    regions = torch.zeros(2, 41, 2, dtype=torch.float64)
    regions[0, 0] = torch.tensor([1.0, 0.0])
    regions[1] = F.normalize(torch.randn(41, 2, generator=generator, dtype=torch.float64), dim=-1)
    images = VectorSets(regions, torch.tensor([1, 41]))
    texts = VectorSets(torch.tensor([[[-0.8, 0.6]]], dtype=torch.float64), torch.tensor([1]))
    scores = StackedCrossAttentionHead(None, lambda_softmax=30.0)(images, texts)
    torch.testing.assert_close(scores[0], torch.tensor([-0.8], dtype=torch.float64))


@pytest.mark.parametrize("pair_chunk", [1, 3, 7, 12, 35, 100_000])
@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_pair_chunk_size_does_not_change_scores(pairs, direction, pair_chunk):
    images, texts = pairs
    whole = StackedCrossAttentionHead(None, direction=direction)(images, texts)
    chunked = StackedCrossAttentionHead(None, direction=direction, pair_chunk=pair_chunk)(images, texts)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)


def test_clipped_l2norm_leaks_negative_affinities_with_slope_0_1():
    affinities = torch.tensor([[-0.5, 0.5, 0.2]], dtype=torch.float64)  # 1 context element × 3 queries
    expected = torch.tensor([[-0.05, 0.5, 0.2]], dtype=torch.float64)
    torch.testing.assert_close(clipped_l2norm(affinities), expected / expected.norm())


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_head_leaks_negative_affinities_rather_than_clamping_them(pairs, direction):
    images, texts = pairs
    options = dict(direction=direction, aggregation="avg", lambda_softmax=9.0, lambda_lse=6.0)
    scores = StackedCrossAttentionHead(None, **options)(images, texts)
    hard_clamp = naive_matrix(images, texts, **options, slope=0.0)
    assert (scores - hard_clamp).abs().max() > 1e-3
    torch.testing.assert_close(scores, naive_matrix(images, texts, **options, slope=0.1), rtol=0, atol=1e-10)


def test_half_precision_embeddings_are_scored_in_float32(pairs):
    images, texts = pairs
    half_images = VectorSets(images.vectors.half(), images.lengths)
    half_texts = VectorSets(texts.vectors.half(), texts.lengths)
    head = StackedCrossAttentionHead(None)
    scores = head(half_images, half_texts)
    assert scores.dtype == torch.float32
    expected = head(half_images.float(), half_texts.float())
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)


@pytest.mark.parametrize("options", [{"lambda_lse": 0.0}, {"pair_chunk": 0}])
def test_out_of_range_options_are_rejected_with_a_user_error(options):
    with pytest.raises(UserError, match=next(iter(options))):
        StackedCrossAttentionHead(None, **options)


def test_global_embeddings_are_rejected_with_a_user_error():
    with pytest.raises(UserError, match="VectorSets"):
        StackedCrossAttentionHead(None)(torch.randn(2, 8), torch.randn(3, 8))


def random_pairs(n_pairs: int, n_images: int, n_captions: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, n_images, (n_pairs,), generator=generator),
        torch.randint(0, n_captions, (n_pairs,), generator=generator),
    )


@pytest.mark.parametrize("pair_chunk", [4, 16384])
def test_score_pairs_equal_the_dense_entries(pairs, variant, pair_chunk):
    images, texts = (sets.float() for sets in pairs)
    head = StackedCrossAttentionHead(None, **variant, pair_chunk=pair_chunk)
    image_index, caption_index = random_pairs(23, len(images), len(texts), seed=4)  # 23: not a multiple of a chunk
    scores = head.score_pairs(images, texts, image_index, caption_index)
    assert scores.shape == (23,) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, head(images, texts)[image_index, caption_index])


def test_score_pairs_of_a_re_rank_list_with_every_candidate(pairs, variant):
    # query-major, as re-rank asks: every image with all 7 captions, then every caption with all 5 images
    images, texts = pairs
    head = StackedCrossAttentionHead(None, **variant, pair_chunk=10)
    dense = head(images, texts)
    image_queries = torch.arange(5).repeat_interleave(7), torch.arange(7).repeat(5)
    torch.testing.assert_close(head.score_pairs(images, texts, *image_queries), dense.flatten())
    caption_queries = torch.arange(5).repeat(7), torch.arange(7).repeat_interleave(5)
    torch.testing.assert_close(head.score_pairs(images, texts, *caption_queries), dense.T.flatten())


@pytest.fixture(params=[1, 2], ids=["wide-captions", "wide-images"])
def many_pairs(request):
    """9 images with 2..7 regions (× 2 for wide-images) and 13 captions with 1..9 words, 8-d,
    float32. Which set is wider decides the side `score_pairs` groups by (the other side's sets
    are gathered per pair): captions for wide-captions, images for wide-images."""
    generator = torch.Generator().manual_seed(3)
    images = random_sets([request.param * n for n in [6, 3, 5, 7, 4, 2, 7, 6, 5]], 8, generator).float()
    texts = random_sets([4, 9, 2, 7, 5, 3, 8, 1, 6, 9, 2, 5, 7], 8, generator).float()
    return images, texts


@pytest.mark.parametrize("pair_chunk", [7, 16384])
@pytest.mark.parametrize("by", ["image", "caption"])
@pytest.mark.parametrize("k, last", [(5, 3), (21, 20), (40, 17)])
def test_score_pairs_of_grouped_lists_equal_the_dense_entries(many_pairs, variant, pair_chunk, by, k, last):
    # k candidates per query (more than the other side has: candidates repeat), a short last
    # group; k = 21, 40 pad to 32 and 48 pairs; pair_chunk = 7 cuts every group into pieces
    images, texts = many_pairs
    head = StackedCrossAttentionHead(None, **variant, pair_chunk=pair_chunk)
    n_queries, n_candidates = (len(images), len(texts)) if by == "image" else (len(texts), len(images))
    image_index, caption_index = grouped_pairs(n_queries, n_candidates, k, last, seed=7, by=by)
    scores = head.score_pairs(images, texts, image_index, caption_index)
    assert scores.shape == image_index.shape
    torch.testing.assert_close(scores, head(images, texts)[image_index, caption_index])


@pytest.mark.parametrize("pair_chunk", [7, 16384])
def test_score_pairs_of_a_mixed_ungrouped_list_equal_the_dense_entries(many_pairs, variant, pair_chunk):
    # both directions' groups, then random pairs, shuffled: runs of every length, singles included
    images, texts = many_pairs
    head = StackedCrossAttentionHead(None, **variant, pair_chunk=pair_chunk)
    parts = [grouped_pairs(9, 13, 6, 2, seed=8, by="image"), grouped_pairs(13, 9, 4, 1, seed=9, by="caption")]
    parts.append(random_pairs(31, 9, 13, seed=10))
    image_index, caption_index = (torch.cat(part) for part in zip(*parts))
    dense = head(images, texts)
    torch.testing.assert_close(head.score_pairs(images, texts, image_index, caption_index), dense[image_index, caption_index])
    shuffle = torch.randperm(len(image_index), generator=torch.Generator().manual_seed(11))
    image_index, caption_index = image_index[shuffle], caption_index[shuffle]
    torch.testing.assert_close(head.score_pairs(images, texts, image_index, caption_index), dense[image_index, caption_index])


def test_score_pairs_of_a_list_without_repeated_sets_equal_the_dense_entries(many_pairs, variant):
    images, texts = many_pairs
    head = StackedCrossAttentionHead(None, **variant, pair_chunk=4)
    image_index, caption_index = torch.randperm(9), torch.randperm(13)[:9]
    torch.testing.assert_close(
        head.score_pairs(images, texts, image_index, caption_index), head(images, texts)[image_index, caption_index]
    )


def test_score_pairs_ignore_nan_padding(many_pairs, variant):
    images, texts = many_pairs
    head = StackedCrossAttentionHead(None, **variant)
    dense = head(images, texts)
    padding = torch.arange(texts.vectors.shape[1])[None, :] >= texts.lengths[:, None]
    texts = VectorSets(texts.vectors.masked_fill(padding[..., None], float("nan")), texts.lengths)
    image_index, caption_index = grouped_pairs(9, 13, 5, 3, seed=12, by="image")
    torch.testing.assert_close(head.score_pairs(images, texts, image_index, caption_index), dense[image_index, caption_index])


def test_score_pairs_of_no_pairs_is_empty(pairs):
    images, texts = pairs
    empty = torch.zeros(0, dtype=torch.int64)
    scores = StackedCrossAttentionHead(None).score_pairs(images, texts, empty, empty)
    assert scores.shape == (0,) and scores.dtype == torch.float64


def test_score_pairs_rejects_index_vectors_of_different_lengths(pairs):
    images, texts = pairs
    with pytest.raises(UserError, match="one length"):
        StackedCrossAttentionHead(None).score_pairs(images, texts, torch.tensor([0, 1]), torch.tensor([0]))


def leaves(images: VectorSets, texts: VectorSets) -> tuple[VectorSets, VectorSets, list[torch.Tensor]]:
    regions, words = images.vectors.clone().requires_grad_(), texts.vectors.clone().requires_grad_()
    return VectorSets(regions, images.lengths), VectorSets(words, texts.lengths), [regions, words]


@pytest.mark.parametrize("entry", ["forward", "score_pairs"])
def test_checkpointed_blocks_give_the_same_scores_and_gradients(pairs, variant, entry):
    image_index, caption_index = random_pairs(19, 5, 7, seed=5)
    results = []
    for checkpoint_blocks in (False, True):
        head = StackedCrossAttentionHead(None, **variant, pair_chunk=6, checkpoint_blocks=checkpoint_blocks)
        images, texts, inputs = leaves(*pairs)
        if entry == "forward":
            scores = head(images, texts)
        else:
            scores = head.score_pairs(images, texts, image_index, caption_index)
        weights = torch.randn(scores.shape, generator=torch.Generator().manual_seed(6), dtype=scores.dtype)
        results.append((scores, torch.autograd.grad((weights * scores).sum(), inputs)))
    (plain, plain_grads), (checkpointed, checkpointed_grads) = results
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=0)
    for checkpointed_grad, plain_grad in zip(checkpointed_grads, plain_grads):
        torch.testing.assert_close(checkpointed_grad, plain_grad)


def test_training_keeps_no_block_intermediates_by_default(pairs):
    # 5 images × 7 captions in 10 blocks (1 image × 6 or 1 captions): with gradients, autograd
    # keeps only what lies outside the blocks; without checkpointing, every block's
    # intermediates. A call that is one block is run plainly: there is nothing to gain.
    head = StackedCrossAttentionHead(None, pair_chunk=6)
    assert head.checkpoint_blocks is True
    images, texts, _ = leaves(*pairs)
    _, default = saved_elements(lambda: head(images, texts))
    head.checkpoint_blocks = False
    _, kept = saved_elements(lambda: head(images, texts))
    assert default < kept / 10
    one_block = StackedCrossAttentionHead(None)
    _, single = saved_elements(lambda: one_block(images, texts))
    assert single > kept / 2


def test_a_score_pairs_block_on_the_cpu_gathers_at_most_32_mb():
    """Larger gathered blocks are fresh mappings on every block (page faults), not heap memory."""
    from baselines.scan.heads import CPU_GATHER_BYTES

    head = StackedCrossAttentionHead(None)
    images = VectorSets(torch.zeros(2, 36, 1024), torch.full((2,), 36))
    texts = VectorSets(torch.zeros(2, 12, 1024), torch.full((2,), 12))
    assert head._pairs_per_group(12, images, texts) == CPU_GATHER_BYTES // (4 * 12 * 1024) == 682
    assert head._pairs_per_gather(images, texts) == min(820, CPU_GATHER_BYTES // (4 * 48 * 1024))
    on_meta = [VectorSets(sets.vectors.to("meta"), sets.lengths) for sets in (images, texts)]
    assert head._pairs_per_group(12, *on_meta) == 16384 * 2592 // (12 * 1024 + 2592)
