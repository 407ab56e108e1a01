"""Cross-attention heads: a training step with and without block checkpointing, and re-rank's
`score_pairs`, in the same run.

Run with ``pytest benchmarks/test_cross_attention_training.py --benchmark-only -p no:cacheprovider``.

Training step (forward + backward through the head alone, its inputs standing in for the
encoders' outputs): each configuration runs in a fresh subprocess (this file run as a script), so
one configuration's allocations cannot hide another's. Peak memory, on the CPU, is measured twice:
the rise of the process's high-water mark, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, from
after the inputs are built to after the steps (one warm-up step and `STEPS` timed ones), which is
what the machine sees; and the tensor peak of one more step under the torch profiler
(``profile_memory``: the running sum of torch's allocations minus frees, maximised over time, as
in test_scan_scoring.py). The two differ by what glibc keeps after torch frees it: with
``MALLOC_MMAP_THRESHOLD_=65536`` (every large buffer its own mapping, returned when freed) the
checkpointed AsCL step's RSS rise fell from 823 MB to 249 MB against 144 MB of tensors, and its
step took twice as long (page faults). With CUDA, peak memory is ``torch.cuda.max_memory_allocated``
above the memory held before the first step. Step time is the median of the timed steps; on a
shared 2-core machine it varies by ±25 % from run to run. Shapes (the recipes' own, not scaled):

- `ascl-fusion`, the AsCL recipe's head (u1 = 0.8, pair global pooling, 8 heads, 256-pair blocks):
  64 images × 49 regions (+ a global vector) against 64 captions of 12–20 words, embed_dim 1024
  (the recipe's ``EMBED_DIM``). A real AsCL step scores 64 × 128 columns (captions and generated
  negatives) in two passes before one backward, four times these pairs.
- `scan-attention`, SCAN's recipe head (t-i AVG, λ1 = 9): 128 images × 36 regions against 128
  captions of 12 words, 1024-d. At the default pair_chunk (16,384) that batch is one block,
  which runs plainly either way (recomputing a lone block saves nothing); the pair_chunk = 2048
  rows show the bound that checkpointing buys.

`score_pairs`: pairs/s for a re-rank list of 128 candidates per query (both retrieval
directions: image queries, then caption queries), against the dense `forward` on a block with
as many pairs, on 256 images × 1280 captions.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.shapes import make_head, make_sets, median_seconds, rerank_list

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
CANDIDATES = 128
ROUNDS = 3

TRAINING = {  # configuration: (head, head options, images, regions, captions, min words, max words, dim)
    "ascl": ("ascl", {}, 64, 49, 64, 12, 20, 1024),
    "scan": ("scan", {}, 128, 36, 128, 12, 12, 1024),
    "scan-2048": ("scan", {"pair_chunk": 2048}, 128, 36, 128, 12, 12, 1024),
}


def contrastive_loss(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE-like loss on the diagonal pairs; any loss would do, its cost is negligible."""
    return (scores.logsumexp(1) - scores.diagonal()).mean() + (scores.logsumexp(0) - scores.diagonal()).mean()


def measure_training_step(configuration: str, checkpoint_blocks: bool) -> dict:
    """Peak memory (MB) and median step time (s) of forward + backward, in this process."""
    name, options, n_images, n_regions, n_captions, min_words, max_words, dim = TRAINING[configuration]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    head = make_head(name, {**options, "checkpoint_blocks": checkpoint_blocks}, dim).to(device)
    images, texts = make_sets(
        n_images, n_regions, n_captions, min_words, max_words, dim, summary=name == "ascl", device=device,
        requires_grad=True,
    )
    leaves = [t for t in (images.vectors, images.summary, texts.vectors) if t is not None] + list(head.parameters())
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    times = []
    for _ in range(1 + STEPS):
        for leaf in leaves:
            leaf.grad = None
        start = time.perf_counter()
        contrastive_loss(head(images, texts)).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device == "cuda":
        peak = tensor_peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            contrastive_loss(head(images, texts)).backward()
        events = sorted(prof.events(), key=lambda event: event.time_range.start)
        tensor_peak = max(itertools.accumulate((event.self_cpu_memory_usage for event in events), initial=0))
    return {
        "configuration": configuration,
        "checkpoint_blocks": checkpoint_blocks,
        "device": device,
        "pairs": n_images * n_captions,
        "peak_mb": peak / 1e6,
        "tensor_peak_mb": tensor_peak / 1e6,
        "step_s": statistics.median(times[1:]),
        "peak_method": "cuda max_memory_allocated" if device == "cuda" else "ru_maxrss rise; torch profiler",
    }


def in_fresh_process(configuration: str, checkpoint_blocks: bool) -> dict:
    """`measure_training_step` in a new interpreter (this file as a script)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    argument = json.dumps([configuration, checkpoint_blocks])
    out = subprocess.run(
        [sys.executable, __file__, argument], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("configuration", list(TRAINING))
def test_training_step_with_and_without_checkpointing(benchmark, capsys, configuration):
    def both() -> list[dict]:
        return [in_fresh_process(configuration, checkpoint) for checkpoint in (False, True)]

    without, with_ = benchmark.pedantic(both, rounds=1, iterations=1)
    benchmark.extra_info.update(without=without, with_checkpointing=with_)
    with capsys.disabled():
        print(
            f"\n{configuration} training step, {without['pairs']} pairs on {without['device']}: "
            f"without checkpointing {without['peak_mb']:.0f} MB ({without['tensor_peak_mb']:.0f} MB tensors), "
            f"{without['step_s']:.2f} s; with {with_['peak_mb']:.0f} MB ({with_['tensor_peak_mb']:.0f} MB tensors), "
            f"{with_['step_s']:.2f} s (median of {STEPS} steps; peak as {without['peak_method']})"
        )


SCORING = {  # head: (images, regions, captions, min words, max words, dim)
    "scan": (256, 36, 1280, 12, 12, 1024),
    "ascl": (256, 49, 1280, 12, 20, 1024),
}


@pytest.mark.parametrize("name", list(SCORING))
@torch.inference_mode()
def test_score_pairs_throughput(benchmark, capsys, name):
    n_images, n_regions, n_captions, min_words, max_words, dim = SCORING[name]
    images, texts = make_sets(n_images, n_regions, n_captions, min_words, max_words, dim, summary=name == "ascl")
    head = make_head(name, {}, dim)
    generator = torch.Generator().manual_seed(1)
    n_queries = 64
    query_images, candidate_captions = rerank_list(n_queries, n_captions, CANDIDATES, generator)
    query_captions, candidate_images = rerank_list(n_queries, n_images, CANDIDATES, generator)
    n_pairs = n_queries * CANDIDATES

    i2t_seconds = median_seconds(head.score_pairs, images, texts, query_images, candidate_captions, rounds=ROUNDS)
    t2i_seconds = benchmark.pedantic(
        lambda: median_seconds(head.score_pairs, images, texts, candidate_images, query_captions, rounds=ROUNDS),
        rounds=1, iterations=1,
    )
    dense_block = (images[:n_queries], texts[:CANDIDATES])  # as many pairs, scored densely
    dense_seconds = median_seconds(head, *dense_block, rounds=ROUNDS)
    checked = slice(0, 4 * CANDIDATES)  # the first 4 queries' pairs, against their dense rows
    scores = head.score_pairs(images, texts, query_images[checked], candidate_captions[checked])
    dense = head(images[:4], texts)[query_images[checked], candidate_captions[checked]]
    benchmark.extra_info.update(
        pairs=n_pairs,
        image_query_pairs_per_s=n_pairs / i2t_seconds,
        caption_query_pairs_per_s=n_pairs / t2i_seconds,
        dense_pairs_per_s=n_pairs / dense_seconds,
        max_abs_difference=float((scores - dense).abs().max()),
    )
    with capsys.disabled():
        print(
            f"\n{name} score_pairs, {CANDIDATES} candidates × {n_queries} queries: image queries "
            f"{n_pairs / i2t_seconds:,.0f} pairs/s, caption queries {n_pairs / t2i_seconds:,.0f} pairs/s; "
            f"dense forward {n_pairs / dense_seconds:,.0f} pairs/s (median of {ROUNDS})"
        )
    torch.testing.assert_close(scores, dense, rtol=0, atol=1e-5)


if __name__ == "__main__":  # one training-step configuration, for `in_fresh_process`
    configuration, checkpoint_blocks = json.loads(sys.argv[1])
    print(json.dumps(measure_training_step(configuration, checkpoint_blocks)))
