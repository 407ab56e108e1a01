"""The `ascl-fusion` head against a naive per-pair reference (docs/methods/ascl.md, fusion head)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.embeddings import VectorSets
from harness.errors import UserError
from plugins.ascl.heads import AsCLFusionHead
from tests.helpers import grouped_pairs, saved_elements

DIM, HEADS = 32, 8
REGIONS = [5, 3, 4]  # uneven: padded region sets too
WORDS = [2, 6, 4, 3, 5, 1]


def make_sets(lengths: list[int], generator: torch.Generator, summary: bool = False, unit: bool = False) -> VectorSets:
    """float64 sets zero-padded to the longest, optionally unit-norm rows and a global vector."""
    width = max(lengths)
    vectors = torch.randn(len(lengths), width, DIM, generator=generator, dtype=torch.float64)
    if unit:
        vectors = F.normalize(vectors, dim=-1)
    lengths_t = torch.tensor(lengths)
    mask = torch.arange(width)[None, :] < lengths_t[:, None]
    g = torch.randn(len(lengths), DIM, generator=generator, dtype=torch.float64) if summary else None
    return VectorSets(vectors * mask[..., None], lengths_t, g)


def head(**options) -> AsCLFusionHead:
    torch.manual_seed(0)
    return AsCLFusionHead(None, embed_dim=DIM, heads=HEADS, **options).double()


def attend(queries: torch.Tensor, contexts: torch.Tensor, smooth: float) -> torch.Tensor:
    """Att_λ(Q, C) = concat_h softmax_c(λ Q^h C^hᵀ) C^h, one head at a time: [Q, d], [C, d] -> [Q, d]."""
    size = DIM // HEADS
    parts = []
    for h in range(HEADS):
        q, c = queries[:, h * size : (h + 1) * size], contexts[:, h * size : (h + 1) * size]
        parts.append(torch.softmax(smooth * q @ c.T, dim=1) @ c)
    return torch.cat(parts, dim=1)


def l2n(x: torch.Tensor) -> torch.Tensor:
    """The code's l2norm: x / (‖x‖ + 1e-8)."""
    return x / (x.norm() + 1e-8)


def naive_parts(model: AsCLFusionHead, regions, g, words_for_text, regions_for_text, words_for_image):
    """(S_local of regions × words_for_text, e^T of words_for_text pooled with regions_for_text,
    e^I of (regions, g) pooled with words_for_image): the code's per-caption computation."""
    local = 0.5 * (
        F.cosine_similarity(regions, attend(regions, words_for_text, 4.0), dim=1, eps=1e-8).mean()
        + F.cosine_similarity(words_for_text, attend(words_for_text, regions, 9.0), dim=1, eps=1e-8).mean()
    )
    text_global = l2n(model.text_fc(attend(regions_for_text, words_for_text, 4.0).mean(0)))
    u = model.image_fc(attend(words_for_image, regions, 9.0).mean(0))
    gate = torch.sigmoid(model.gate(torch.cat([g, u])))
    image_global = l2n(gate * g + (1 - gate) * u)
    return local, text_global, image_global


def naive_pair_scores(model: AsCLFusionHead, images: VectorSets, texts: VectorSets, u1: float) -> torch.Tensor:
    """Every pair with its global branch pooled within the pair."""
    scores = torch.zeros(len(images), len(texts), dtype=torch.float64)
    for i, n_regions in enumerate(images.lengths.tolist()):
        regions = images.vectors[i, :n_regions]
        for j, n_words in enumerate(texts.lengths.tolist()):
            words = texts.vectors[j, :n_words]
            local, text_global, image_global = naive_parts(model, regions, images.summary[i], words, regions, words)
            scores[i, j] = u1 * local + (1 - u1) * image_global @ text_global
    return scores


def naive_partner_scores(model, images: VectorSets, texts: VectorSets, image_of_caption: list[int], u1: float):
    """Caption j pooled with its image, image i with its first caption (the public code)."""
    def regions_of(i):
        return images.vectors[i, : images.lengths[i]]

    def words_of(j):
        return texts.vectors[j, : texts.lengths[j]]

    scores = torch.zeros(len(images), len(texts), dtype=torch.float64)
    for i in range(len(images)):
        first = image_of_caption.index(i)
        for j in range(len(texts)):
            local, text_global, image_global = naive_parts(
                model, regions_of(i), images.summary[i], words_of(j), regions_of(image_of_caption[j]), words_of(first)
            )
            scores[i, j] = u1 * local + (1 - u1) * image_global @ text_global
    return scores


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    return make_sets(REGIONS, generator, summary=True, unit=True), make_sets(WORDS, generator)


@pytest.mark.parametrize("u1", [0.0, 0.8, 1.0])
def test_pair_scores_equal_the_naive_per_pair_computation(batch, u1):
    images, texts = batch
    model = head(u1=u1, pair_chunk=5)  # blocks of 1 image x 5 captions, then 1 x 1
    torch.testing.assert_close(model(images, texts), naive_pair_scores(model, images, texts, u1), rtol=0, atol=1e-10)


@pytest.mark.parametrize("u1", [0.0, 0.8, 1.0])
def test_ground_truth_partner_scores_equal_the_naive_code_computation(batch, u1):
    images, texts = batch
    image_of_caption = [0, 1, 2, 2, 1, 0]
    model = head(u1=u1, global_pooling="ground-truth-partner", pair_chunk=4)
    scores = model.score_with_pairing(images, texts, torch.tensor(image_of_caption))
    torch.testing.assert_close(scores, naive_partner_scores(model, images, texts, image_of_caption, u1), rtol=0, atol=1e-10)


def test_training_batch_pairs_caption_k_and_generated_column_b_plus_k_with_image_k(batch):
    images, texts = batch
    model = head(global_pooling="ground-truth-partner")
    scores = model(images, texts)  # 3 images, 6 columns: 3 real + 3 generated
    expected = naive_partner_scores(model, images, texts, [0, 1, 2, 0, 1, 2], 0.8)
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-10)


def rows(sets: VectorSets) -> list[torch.Tensor]:
    """The real vectors of each set."""
    return [vectors[:n] for vectors, n in zip(sets.vectors, sets.lengths.tolist())]


def pack(parts: list[torch.Tensor], summary: torch.Tensor | None = None) -> VectorSets:
    """Sets [n_k, d] -> zero-padded VectorSets."""
    width = max(len(part) for part in parts)
    vectors = torch.stack([F.pad(part, (0, 0, 0, width - len(part))) for part in parts])
    return VectorSets(vectors, torch.tensor([len(part) for part in parts]), summary)


def test_pair_mode_score_depends_on_its_pair_only(batch):
    images, texts = batch
    model = head()
    before = model(images, texts)
    generator = torch.Generator().manual_seed(7)
    others = make_sets([4, 6], generator, summary=True, unit=True)
    other_texts = make_sets([9], generator)  # longer than any caption: the batch pads wider
    image_rows, other_rows = rows(images), rows(others)
    new_images = pack(
        [other_rows[0], image_rows[2], image_rows[0], other_rows[1]],
        torch.stack([others.summary[0], images.summary[2], images.summary[0], others.summary[1]]),
    )
    new_texts = pack([rows(other_texts)[0], rows(texts)[5], rows(texts)[1]])
    after = model(new_images, new_texts)
    # images 2, 0 are now rows 1, 2; captions 5, 1 are columns 1, 2
    torch.testing.assert_close(after[1:3, 1:3], before[[2, 0]][:, [5, 1]], rtol=0, atol=1e-12)


def test_ground_truth_partner_mode_leaks_the_partner_into_other_pairs(batch):
    """The public code's leak: caption 1's global embedding is pooled with its paired image (image 1
    in a training batch), so image 0's score with caption 1 moves when image 1 changes; the head
    declares it."""
    images, texts = batch
    leaky, clean = head(global_pooling="ground-truth-partner"), head()
    assert leaky.reads_pairing_labels is True and clean.reads_pairing_labels is False
    replacement = make_sets([3], torch.Generator().manual_seed(3), summary=True, unit=True)
    image_rows = rows(images)
    changed = pack([image_rows[0], rows(replacement)[0], image_rows[2]], torch.stack([images.summary[0], replacement.summary[0], images.summary[2]]))
    assert abs(leaky(changed, texts)[0, 1] - leaky(images, texts)[0, 1]) > 1e-4
    torch.testing.assert_close(clean(changed, texts)[0, 1], clean(images, texts)[0, 1], rtol=0, atol=1e-12)


def random_pairs(n_pairs: int, n_images: int, n_captions: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, n_images, (n_pairs,), generator=generator),
        torch.randint(0, n_captions, (n_pairs,), generator=generator),
    )


@pytest.mark.parametrize("u1", [0.0, 0.8, 1.0])
@pytest.mark.parametrize("pair_chunk", [4, 256])
def test_score_pairs_equal_the_dense_entries(batch, u1, pair_chunk):
    images, texts = (sets.float() for sets in batch)
    model = head(u1=u1, pair_chunk=pair_chunk).float()
    image_index, caption_index = random_pairs(11, len(images), len(texts), seed=4)  # 11: not a multiple of 4
    scores = model.score_pairs(images, texts, image_index, caption_index)
    assert scores.shape == (11,) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, model(images, texts)[image_index, caption_index])


def test_score_pairs_of_a_re_rank_list_with_every_candidate(batch):
    images, texts = batch
    model = head(pair_chunk=5)
    image_index, caption_index = torch.arange(3).repeat_interleave(6), torch.arange(6).repeat(3)
    torch.testing.assert_close(model.score_pairs(images, texts, image_index, caption_index), model(images, texts).flatten())


@pytest.mark.parametrize("u1", [0.0, 0.8, 1.0])
@pytest.mark.parametrize("pair_chunk", [5, 256])
@pytest.mark.parametrize("by", ["image", "caption"])
@pytest.mark.parametrize("words", [WORDS, [9, 2, 12, 7, 4]], ids=["narrow-captions", "wide-captions"])
def test_score_pairs_of_grouped_lists_equal_the_dense_entries(batch, u1, pair_chunk, by, words):
    # 7 candidates per query (candidates repeat), a short last group; k = 19 pads to 32 at 256.
    # Wide captions make score_pairs group by caption (gathering images per pair), narrow by image.
    images, texts = (sets.float() for sets in batch)
    if words is not WORDS:
        texts = make_sets(words, torch.Generator().manual_seed(2)).float()
    model = head(u1=u1, pair_chunk=pair_chunk).float()
    dense = model(images, texts)
    n_queries, n_candidates = (len(images), len(texts)) if by == "image" else (len(texts), len(images))
    for k, last in [(7, 2), (19, 18)]:
        image_index, caption_index = grouped_pairs(n_queries, n_candidates, k, last, seed=7, by=by)
        torch.testing.assert_close(model.score_pairs(images, texts, image_index, caption_index), dense[image_index, caption_index])


@pytest.mark.parametrize("u1", [0.0, 0.8, 1.0])
def test_score_pairs_of_a_mixed_ungrouped_list_equal_the_dense_entries(batch, u1):
    images, texts = (sets.float() for sets in batch)
    model = head(u1=u1, pair_chunk=6).float()
    n_images, n_captions = len(images), len(texts)
    parts = [grouped_pairs(n_images, n_captions, 4, 2, seed=8, by="image"), grouped_pairs(n_captions, n_images, 3, 1, seed=9, by="caption")]
    parts.append(random_pairs(13, n_images, n_captions, seed=10))
    image_index, caption_index = (torch.cat(part) for part in zip(*parts))
    shuffle = torch.randperm(len(image_index), generator=torch.Generator().manual_seed(11))
    image_index, caption_index = image_index[shuffle], caption_index[shuffle]
    torch.testing.assert_close(
        model.score_pairs(images, texts, image_index, caption_index), model(images, texts)[image_index, caption_index]
    )


def test_score_pairs_of_no_pairs_is_empty(batch):
    images, texts = batch
    empty = torch.zeros(0, dtype=torch.int64)
    scores = head().score_pairs(images, texts, empty, empty)
    assert scores.shape == (0,) and scores.dtype == torch.float64


def test_score_pairs_with_ground_truth_partners_is_refused(batch):
    images, texts = batch
    with pytest.raises(UserError, match='re-rank evaluation needs global_pooling = "pair"'):
        head(global_pooling="ground-truth-partner").score_pairs(images, texts, torch.tensor([0]), torch.tensor([0]))


def leaves(images: VectorSets, texts: VectorSets) -> tuple[VectorSets, VectorSets, list[torch.Tensor]]:
    regions, summary, words = (t.clone().requires_grad_() for t in (images.vectors, images.summary, texts.vectors))
    return VectorSets(regions, images.lengths, summary), VectorSets(words, texts.lengths), [regions, summary, words]


@pytest.mark.parametrize(
    "global_pooling, entry",
    [("pair", "forward"), ("pair", "score_pairs"), ("ground-truth-partner", "forward")],
)
@pytest.mark.parametrize("u1", [0.0, 0.8, 1.0])
def test_checkpointed_blocks_give_the_same_scores_and_gradients(batch, u1, global_pooling, entry):
    image_index, caption_index = random_pairs(10, 3, 6, seed=5)
    results = []
    for checkpoint_blocks in (False, True):
        model = head(u1=u1, global_pooling=global_pooling, pair_chunk=4, checkpoint_blocks=checkpoint_blocks)
        images, texts, inputs = leaves(*batch)
        if entry == "forward":
            scores = model(images, texts)
        else:
            scores = model.score_pairs(images, texts, image_index, caption_index)
        weights = torch.randn(scores.shape, generator=torch.Generator().manual_seed(6), dtype=scores.dtype)
        trained = inputs + [p for p in model.parameters() if p.requires_grad]
        results.append((scores, torch.autograd.grad((weights * scores).sum(), trained, allow_unused=True)))
    (plain, plain_grads), (checkpointed, checkpointed_grads) = results
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=0)
    assert len(checkpointed_grads) == len(plain_grads)
    for checkpointed_grad, plain_grad in zip(checkpointed_grads, plain_grads):
        if plain_grad is None:  # the global vector, with u1 = 1
            assert checkpointed_grad is None
        else:
            torch.testing.assert_close(checkpointed_grad, plain_grad)


@pytest.mark.parametrize("global_pooling", ["pair", "ground-truth-partner"])
def test_training_keeps_no_block_intermediates_by_default(batch, global_pooling):
    # 3 images × 6 captions in blocks of 4 pairs: with gradients, autograd keeps only what lies
    # outside the blocks, far less than every block's intermediates.
    model = head(global_pooling=global_pooling, pair_chunk=4)
    assert model.checkpoint_blocks is True
    images, texts, _ = leaves(*batch)
    _, default = saved_elements(lambda: model(images, texts))
    model.checkpoint_blocks = False
    _, kept = saved_elements(lambda: model(images, texts))
    assert default < kept / 5

