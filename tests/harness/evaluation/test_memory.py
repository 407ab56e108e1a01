"""Out of memory in evaluation: the score chunk halves and the same block is scored again, a
memory budget lowers it up front, and what cannot fit is one line naming the setting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.config.job_config import EvalConfig
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.evaluation.evaluate import EVAL_SECONDS, evaluate_split
from harness.evaluation.memory import SCORE_CHUNK_USED, OutOfMemory, ScoreChunk, peak_bytes
from harness.evaluation.protocols import full
from harness.evaluation.scoring import score_matrix
from harness.evaluation.strategies import top_candidates
from harness.plugin_manager import PluginHost
from harness.training.model import RetrievalModel, SplitInputs

ALLOCATION_FAILURES = {
    "cuda": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cpu allocator": lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 2147483648 bytes"),
    "memory error": MemoryError,
}


class FailsAbove(nn.Module):
    """`head`, except that a block of more than `fits` pairs runs out of memory as `failure()`."""

    def __init__(self, head: nn.Module, fits: int, failure=ALLOCATION_FAILURES["cuda"]) -> None:
        super().__init__()
        self.head, self.fits, self.failure = head, fits, failure

    def forward(self, images, texts):
        if len(images) * len(texts) > self.fits:
            raise self.failure()
        return self.head(images, texts)


class Take(nn.Module):
    def forward(self, inputs):
        return inputs["x"].float()


class Outer(nn.Module):
    """s = Σ_d v_d u_d through an [n_i, n_c, D] product: working memory grows with the pairs."""

    def forward(self, images, texts):
        return (images[:, None, :] * texts[None, :, :]).sum(-1)


def built_in_head(name: str) -> nn.Module:
    return PluginHost().registry.get("similarity-head", name).build({}, f"similarity_head {name}").eval()


def embeddings(name: str, seed: int = 0):
    """(images, captions) as the head reads them: 11 and 23 items, vectors or vector sets."""
    generator = torch.Generator().manual_seed(seed)
    if name == "cosine":
        return torch.randn(11, 8, generator=generator), torch.randn(23, 8, generator=generator)
    lengths = [torch.randint(1, 5, (n,), generator=generator) for n in (11, 23)]
    return tuple(VectorSets(torch.randn(n, 4, 8, generator=generator), length) for n, length in zip((11, 23), lengths))


def scorer(head: nn.Module) -> RetrievalModel:
    return RetrievalModel(nn.Identity(), nn.Identity(), head).eval()


@pytest.mark.parametrize("head_name", ["cosine", "scan-attention"])
def test_a_block_out_of_memory_is_scored_again_at_half_the_chunk_with_the_same_scores(head_name, capsys):
    head = built_in_head(head_name)
    images, texts = embeddings(head_name)
    with torch.inference_mode():
        whole = head(images, texts)
    chunk = ScoreChunk(16)
    scores = score_matrix(scorer(FailsAbove(head, fits=16)), images, texts, chunk)
    assert chunk.size == 4
    torch.testing.assert_close(scores, whole)
    err = capsys.readouterr().err
    assert "warning: eval.score_chunk 16 → 8 after out of memory" in err and "eval.score_chunk 8 → 4" in err


@pytest.mark.parametrize("failure", ALLOCATION_FAILURES, ids=list(ALLOCATION_FAILURES))
def test_each_kind_of_allocation_failure_halves_the_chunk(failure):
    images, texts = embeddings("cosine")
    chunk = ScoreChunk(8)
    scores = score_matrix(scorer(FailsAbove(built_in_head("cosine"), fits=20, failure=ALLOCATION_FAILURES[failure])), images, texts, chunk)
    assert chunk.size == 4
    torch.testing.assert_close(scores, built_in_head("cosine")(images, texts))


def test_an_error_that_is_not_out_of_memory_is_not_retried():
    images, texts = embeddings("cosine")
    chunk = ScoreChunk(8)
    with pytest.raises(ValueError, match="not memory"):
        score_matrix(scorer(FailsAbove(built_in_head("cosine"), fits=0, failure=lambda: ValueError("not memory"))), images, texts, chunk)
    assert chunk.size == 8


def test_a_block_that_never_fits_fails_in_one_line_naming_the_score_chunk():
    images, texts = embeddings("cosine")
    with pytest.raises(OutOfMemory) as failed:
        score_matrix(scorer(FailsAbove(built_in_head("cosine"), fits=0)), images, texts, ScoreChunk(64))
    assert isinstance(failed.value, UserError)
    message = str(failed.value)
    assert "\n" not in message and "eval.score_chunk = 1 (configured 64)" in message


def test_evaluation_logs_the_chunk_it_ended_with_and_its_metrics_do_not_move():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(12, 8, generator=generator)
    image_of_caption = torch.arange(12).repeat_interleave(2)
    texts = images[image_of_caption] + torch.randn(24, 8, generator=generator)
    data = SplitInputs({"x": images.numpy()}, {"x": texts}, image_of_caption, captions=("a caption",) * 24)
    cfg = EvalConfig(device="cpu", batch_size=5, score_chunk=32)
    cosine = built_in_head("cosine")
    plain = evaluate_split(RetrievalModel(Take(), Take(), cosine), data, {"full": full()}, cfg).metrics
    halved = evaluate_split(RetrievalModel(Take(), Take(), FailsAbove(cosine, fits=30)), data, {"full": full()}, cfg).metrics
    assert (plain[SCORE_CHUNK_USED], halved[SCORE_CHUNK_USED]) == (32, 4)
    moved = {key for key in plain if key not in (SCORE_CHUNK_USED, EVAL_SECONDS) and plain[key] != halved[key]}
    assert moved == set() and plain["full/rsum"] > 0


def test_embedding_out_of_memory_fails_in_one_line_naming_the_batch_size():
    class Hungry(nn.Module):
        def forward(self, inputs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    data = SplitInputs({"x": torch.randn(4, 3).numpy()}, {"x": torch.randn(8, 3)}, torch.arange(4).repeat_interleave(2))
    with pytest.raises(OutOfMemory, match=r"out of memory embedding the test split at eval.batch_size = 3: lower eval.batch_size"):
        evaluate_split(RetrievalModel(Hungry(), Take(), built_in_head("cosine")), data, {"full": full()}, EvalConfig(device="cpu", batch_size=3))


def test_a_memory_budget_halves_the_chunk_until_one_block_fits(capsys):
    images, texts = torch.randn(70, 64), torch.randn(90, 64)
    budget_mb = 1.0
    chunk = ScoreChunk(256, budget_mb)
    scores = score_matrix(scorer(Outer()), images, texts, chunk)
    with torch.inference_mode():
        fits, too_big = (peak_bytes(lambda size=size: Outer()(images[:size], texts[:size])) / 2**20 for size in (chunk.size, 2 * chunk.size))
    assert fits <= budget_mb < too_big
    torch.testing.assert_close(scores, images @ texts.T, rtol=1e-5, atol=1e-4)
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"warning: eval.score_chunk 256 → {chunk.size} to fit eval.memory_budget_mb = 1 (about ")


def test_a_budget_too_small_for_one_pair_names_the_budget():
    images, texts = torch.randn(20, 4096), torch.randn(20, 4096)
    with pytest.raises(OutOfMemory, match=r"eval.memory_budget_mb = 0.001: scoring one image against one caption needs about .* MB; raise eval.memory_budget_mb"):
        score_matrix(scorer(Outer()), images, texts, ScoreChunk(16, 0.001))


def test_the_prefilter_search_keeps_to_the_budget_and_stays_exact():
    queries, gallery = torch.randn(200, 8), torch.randn(4000, 8)
    chunk = ScoreChunk(1024, 0.5)
    found = top_candidates(queries, gallery, 5, EvalConfig(), chunk)
    assert chunk.size < len(queries)
    assert torch.equal(found, (queries @ gallery.T).topk(5, dim=1).indices)
