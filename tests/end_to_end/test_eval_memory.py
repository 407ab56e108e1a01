"""Out of memory in evaluation, through the real command line: a cell whose head runs out of
memory above a block size finishes at a smaller score chunk with the scores of a head that
never did; a cell that cannot fit even one pair fails in one line naming ``eval.score_chunk``,
and the grid goes on."""

from __future__ import annotations

from tests.helpers import itr_in_process, search_runs, write_experiment

OUT_OF_MEMORY_HEAD = '''
import torch
from torch import nn

from harness.hookspecs import hookimpl


class OutOfMemoryAbove(nn.Module):
    """Cosine scores; a block of more than `fits_pairs` pairs raises CUDA's out of memory, as a
    cross-attention head on a full GPU does."""

    def __init__(self, ctx, *, fits_pairs: int = 0):
        super().__init__()
        self.fits_pairs = fits_pairs

    def forward(self, images, texts):
        if len(images) * len(texts) > self.fits_pairs:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return nn.functional.normalize(images, dim=-1) @ nn.functional.normalize(texts, dim=-1).T


@hookimpl
def register_similarity_heads(register):
    register("out-of-memory-above", OutOfMemoryAbove)
'''

EXPERIMENT = """
name = "eval-memory"
[[datasets]]
name = "coco-demo"
[methods.class-bridge]
eval.score_chunk = 64
[methods.class-bridge.grid]
similarity_head = [{ name = "cosine" }, { name = "out-of-memory-above", fits_pairs = 64 }, { name = "out-of-memory-above", fits_pairs = 0 }]
"""


def test_out_of_memory_halves_the_chunk_and_a_cell_that_cannot_fit_fails_in_one_line(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "out_of_memory.py").write_text(OUT_OF_MEMORY_HEAD)
    results = tmp_path / "results"
    out = itr_in_process("--plugins-dir", str(plugins), "run", str(write_experiment(tmp_path, EXPERIMENT)), "--results-dir", str(results))
    assert out.code == 1, out.stderr[-3000:]
    assert "2 jobs finished, 1 failed" in out.stderr and "Traceback" not in out.stderr, out.stderr[-3000:]
    progress, summary = [line.strip() for line in out.stderr.splitlines() if "FAILED" in line]
    assert progress == summary, "the failure is one line, in the progress and in the summary"
    failed = summary
    assert failed.endswith("out of memory scoring at eval.score_chunk = 1 (configured 64): one pair does not fit beside the "
                           'split\'s embeddings; free the device, set eval.amp = true, or set eval.device = "cpu"'), failed
    assert "warning: eval.score_chunk 64 → 32 after out of memory" in out.stderr

    runs = search_runs(results, "eval-memory", "tags.`itr.kind` = 'job'")
    finished = runs[runs["status"] == "FINISHED"].set_index("params.similarity_head.name")
    assert sorted(runs["status"]) == ["FAILED", "FINISHED", "FINISHED"]
    assert finished.loc["cosine", "metrics.eval_score_chunk_used"] == 64
    assert finished.loc["out-of-memory-above", "metrics.eval_score_chunk_used"] == 8
    metrics = [column for column in runs if column.startswith("metrics.full/")]
    assert len(metrics) > 5
    assert finished.loc["cosine", metrics].to_dict() == finished.loc["out-of-memory-above", metrics].to_dict()
