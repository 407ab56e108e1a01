"""Re-rank evaluation: the head scores each query's top k prefilter candidates only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.config.job_config import EvalConfig
from harness.embeddings import VectorSets
from harness.evaluation.evaluate import evaluate_split
from harness.evaluation.protocols import RecallAtK, full
from harness.evaluation.strategies import global_vectors, pair_scores, top_candidates
from harness.training.model import RetrievalModel, SplitInputs

CPU = {"device": "cpu", "batch_size": 7, "score_chunk": 5}


class Take(nn.Module):
    def forward(self, inputs):
        return inputs["x"].float()


class Cosine(nn.Module):
    def forward(self, images, texts):
        return nn.functional.normalize(images, dim=-1) @ nn.functional.normalize(texts, dim=-1).T


class Bilinear(nn.Module):
    """A head whose ranking differs from the embeddings' cosine: the prefilter is not the head."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, dim, generator=torch.Generator().manual_seed(3)))

    def forward(self, images, texts):
        return images @ self.weight @ texts.T


class PairwiseBilinear(Bilinear):
    """The same head with a batched pair entry point (`ScoresPairs`)."""

    calls = 0

    def score_pairs(self, images, texts, image_index, caption_index):
        PairwiseBilinear.calls += 1
        return ((images[image_index] @ self.weight) * texts[caption_index]).sum(-1)


def split(n_images: int = 30, per_image: int = 5, dim: int = 16, seed: int = 0) -> SplitInputs:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, dim, generator=generator)
    image_of_caption = torch.arange(n_images).repeat_interleave(per_image)
    texts = images[image_of_caption] + 0.9 * torch.randn(len(image_of_caption), dim, generator=generator)
    return SplitInputs({"x": images.numpy()}, {"x": texts}, image_of_caption, captions=("a caption",) * len(image_of_caption))


def evaluate(head: nn.Module, data: SplitInputs, protocols=None, **eval_options):
    model = RetrievalModel(Take(), Take(), head)
    return evaluate_split(model, data, protocols or {"full": full()}, EvalConfig(**CPU, **eval_options))


RECALL_AND_RANK = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_medr", "t2i_medr", "i2t_meanr", "t2i_meanr"]


@pytest.mark.parametrize("head", [Bilinear(16), PairwiseBilinear(16)], ids=["forward", "score_pairs"])
def test_a_k_as_large_as_the_gallery_gives_the_full_metrics_exactly(head):
    data = split()
    dense = evaluate(head, data).metrics
    reranked = evaluate(head, data, mode="rerank", rerank_k=1000).metrics
    assert {key: reranked[f"full/{key}"] for key in RECALL_AND_RANK} == {key: dense[f"full/{key}"] for key in RECALL_AND_RANK}
    assert reranked["full/prefilter_i2t_recall"] == reranked["full/prefilter_t2i_recall"] == 100.0


def test_with_the_head_as_its_own_prefilter_every_recall_up_to_k_is_unchanged():
    data = split(seed=1)
    dense = evaluate(Cosine(), data).metrics
    reranked = evaluate(Cosine(), data, mode="rerank", rerank_k=10).metrics
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"):
        assert reranked[f"full/{key}"] == dense[f"full/{key}"], key
    assert reranked["full/pairs_scored"] == 30 * 10 + 150 * 10
    assert dense["full/pairs_scored"] == 30 * 150


def test_a_positive_outside_the_candidates_ranks_below_every_candidate(capsys):
    data = split(seed=2)
    reranked = evaluate(Bilinear(16), data, mode="rerank", rerank_k=3)
    ranks = reranked.ranks["full"]
    recall = reranked.metrics["full/prefilter_t2i_recall"]
    assert 0 < recall < 100, "the test needs some positives outside the candidates"
    assert (ranks.t2i_rank <= 3).all() and (ranks.t2i_rank == 3).mean() == pytest.approx(1 - recall / 100)
    assert reranked.metrics["full/t2i_r1"] <= recall
    assert "R@5 and R@10 count a positive outside the 3 candidates as rank 4" in capsys.readouterr().err


def test_the_batched_pair_entry_point_replaces_per_query_calls():
    PairwiseBilinear.calls = 0
    evaluate(PairwiseBilinear(16), split(), mode="rerank", rerank_k=4)
    assert PairwiseBilinear.calls == 2, "one call per direction"


def test_candidates_are_picked_within_each_fold():
    data = split(n_images=40)
    five_folds = RecallAtK("folds", folds=4)
    evaluation = evaluate(Bilinear(16), data, {"folds": five_folds}, mode="rerank", rerank_k=1000)
    dense = evaluate(Bilinear(16), data, {"folds": five_folds})
    assert evaluation.metrics["folds/rsum"] == dense.metrics["folds/rsum"]
    assert evaluation.metrics["folds/pairs_scored"] == 2 * 4 * (10 * 50), "each fold: 10 images × 50 captions, both directions"


@pytest.mark.parametrize("search", ["torch", "faiss"])
def test_top_candidates_are_exact_in_any_chunking(search):
    queries, gallery = torch.randn(23, 8), torch.randn(40, 8)
    expected = (queries @ gallery.T).topk(6, dim=1).indices
    for chunk in (1, 7, 64):
        cfg = EvalConfig(score_chunk=chunk, prefilter_search=search)
        assert torch.equal(top_candidates(queries, gallery, 6, cfg), expected)


def test_faiss_search_re_ranks_as_the_torch_search_does():
    data = split(n_images=12, per_image=3)
    by_faiss = evaluate(Bilinear(16), data, mode="rerank", rerank_k=4, prefilter_search="faiss").metrics
    by_torch = evaluate(Bilinear(16), data, mode="rerank", rerank_k=4).metrics
    timing = {"full/eval_seconds", "eval_seconds"}
    assert {k: v for k, v in by_faiss.items() if k not in timing} == pytest.approx({k: v for k, v in by_torch.items() if k not in timing})
    assert by_faiss["full/pairs_scored"] == 12 * 4 + 36 * 4


def test_vector_sets_prefilter_on_their_summary_or_their_mean():
    vectors = torch.tensor([[[3.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, -1.0]]])
    sets = VectorSets(vectors, torch.tensor([1, 2]))
    torch.testing.assert_close(global_vectors(sets), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    with_summary = VectorSets(vectors, torch.tensor([1, 2]), summary=torch.tensor([[0.0, 2.0], [0.0, -5.0]]))
    torch.testing.assert_close(global_vectors(with_summary), torch.tensor([[0.0, 1.0], [0.0, -1.0]]))


def test_the_per_query_fallback_scores_each_pair_as_the_dense_head_does():
    head = Bilinear(4)
    model = RetrievalModel(Take(), Take(), head)
    images, texts = torch.randn(5, 4), torch.randn(9, 4)
    rows, columns = torch.tensor([0, 0, 0, 3, 3]), torch.tensor([8, 1, 2, 2, 0])
    got = pair_scores(model, images, texts, rows, columns, EvalConfig(**CPU), "i2t")
    torch.testing.assert_close(got, head(images, texts)[rows, columns])
    got = pair_scores(model, images, texts, columns[:4] % 5, rows[:4] + 1, EvalConfig(**CPU), "t2i")
    torch.testing.assert_close(got, head(images, texts)[columns[:4] % 5, rows[:4] + 1])
