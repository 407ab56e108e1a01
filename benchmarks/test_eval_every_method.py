"""Evaluation time of every built-in method at COCO-5K shape: global heads scored fully,
cross-attention heads (SCAN, AsCL) by re-rank at k = 128.

Run with ``pytest benchmarks/test_eval_every_method.py --benchmark-only -p no:cacheprovider -s``;
``ITR_BENCH_FULL=1`` for the full COCO-5K shape (5,000 images × 25,000 captions) at each
recipe's own joint size; ``ITR_BENCH_DEVICE=cuda`` to run on a GPU, with ``eval.amp`` (bfloat16
autocast; the cross-attention heads keep their attention in float32 either way). The default,
200 images × 1,000 captions with every ``embed_dim`` at 256, took 6.5 minutes on two shared
CPU cores, 4.7 of them AsCL's re-rank (550 pairs/s, its head: test_cross_attention_rate.py).

Models: each recipe (vse++, vse-inf, scan, ascl, d2s-vse, class-bridge) resolved and assembled
through the registry as a job is (`benchmarks/methods.py`), untrained: the cost of an
evaluation does not depend on the weights. Data: synthetic and COCO-shaped: precomp regions
36 × 2048 per image (plus a pooled vector, their mean, and 1,000 ImageNet logits for the class
bridge), float16 on disk in a temp dir and memory-mapped; 5 captions per image, each a real
coco-demo caption with its words shuffled (COCO's lengths and words), prepared by each text
encoder itself: word ids for the GRUs, MiniLM word pieces for the fine-tuned transformers (VSE∞,
D2S-VSE), frozen 384-d token or sentence features for AsCL and the class bridge (the synthetic
frozen backbone). Timed: one `evaluate_split` per method (embedding both sides, scoring by the
mode, ranking by the ``full`` protocol, i.e. COCO 5K at full size), its logged `eval_seconds`.
Preparing the texts (tokenising, or the frozen features a real job reads from its cache) is
not timed. Pairs scored are what the head scored; pairs/s divides them by the whole evaluation.
"""

from __future__ import annotations

import contextlib
import io
import os
import random

import numpy as np
import pytest
import torch

from baselines.datasets.coco_demo import coco_demo
from benchmarks.methods import (
    assemble_method,
    build_context,
    embed_dim_overrides,
    memory_mapped,
)
from benchmarks.shapes import DEVICE
from harness.config.job_config import EvalConfig
from harness.evaluation.evaluate import EVAL_SECONDS, evaluate_split
from harness.evaluation.protocols import full
from harness.job.assemble import split_inputs
from harness.plugin_manager import PluginHost

FULL = bool(os.environ.get("ITR_BENCH_FULL"))
N_IMAGES = 5000 if FULL else 200
EMBED_DIM = None if FULL else 256
CAPTIONS_PER_IMAGE, REGIONS, REGION_DIM, K = 5, 36, 2048, 128
METHODS = {
    "vse++": "full",
    "vse-inf": "full",
    "scan": "rerank",
    "ascl": "rerank",
    "d2s-vse": "full",
    "class-bridge": "full",
}
VOCABULARY_CAPTIONS = 5000
"""Training captions the vocabularies are built from (shuffled demo captions, as the test's)."""


def shuffled_demo_captions(n: int, seed: int) -> list[str]:
    """n captions: the coco-demo captions in turn, each with its words shuffled (seeded)."""
    demo = coco_demo()
    real = [caption for split in demo.splits() for caption in demo.load(split).captions]
    rng = random.Random(seed)
    captions = []
    for index in range(n):
        words = real[index % len(real)].split()
        rng.shuffle(words)
        captions.append(" ".join(words))
    return captions


@pytest.fixture(scope="module")
def coco_shaped(tmp_path_factory):
    """Memory-mapped float16 features of N_IMAGES images, their captions, image of each caption."""
    generator = torch.Generator().manual_seed(0)
    regions = torch.randn(N_IMAGES, REGIONS, REGION_DIM, generator=generator).numpy()
    features = memory_mapped(
        tmp_path_factory.mktemp("coco-shaped"),
        {
            "regions": regions,
            "pooled": regions.mean(1),
            "logits": 3 * torch.randn(N_IMAGES, 1000, generator=generator).numpy(),
        },
    )
    captions = shuffled_demo_captions(N_IMAGES * CAPTIONS_PER_IMAGE, seed=1)
    return features, captions, np.repeat(np.arange(N_IMAGES), CAPTIONS_PER_IMAGE)


@pytest.fixture(scope="module")
def registry():
    return PluginHost().registry


@pytest.fixture(scope="module")
def table():
    """Rows (method, mode, pairs, seconds), printed as one table after the last method."""
    rows: list[tuple[str, str, int, float]] = []
    yield rows
    print(
        f"\nevaluation at {N_IMAGES} images × {N_IMAGES * CAPTIONS_PER_IMAGE} captions on {DEVICE}:"
    )
    print(
        f"{'method':<14}{'mode':<9}{'pairs scored':>14}{'seconds':>10}{'pairs/s':>12}"
    )
    for method, mode, pairs, seconds in rows:
        print(
            f"{method:<14}{mode:<9}{pairs:>14,}{seconds:>10.1f}{pairs / seconds:>12,.0f}"
        )


@pytest.mark.parametrize("method", list(METHODS))
def test_evaluation_time(benchmark, registry, coco_shaped, table, method):
    features, captions, image_of_caption = coco_shaped
    ctx = build_context(features, shuffled_demo_captions(VOCABULARY_CAPTIONS, seed=2))
    _, built = assemble_method(
        registry, method, embed_dim_overrides(registry, method, EMBED_DIM), ctx
    )
    data = split_inputs(built.model, features, captions, image_of_caption)
    mode = METHODS[method]
    cfg = EvalConfig(
        device=DEVICE, mode=mode, rerank_k=K, amp=DEVICE.startswith("cuda")
    )

    def run():
        # untrained scores tie, and evaluation warns of it
        with contextlib.redirect_stderr(io.StringIO()):
            return evaluate_split(built.model, data, {"full": full()}, cfg)

    evaluation = benchmark.pedantic(run, rounds=1, iterations=1)
    metrics = evaluation.metrics
    pairs, seconds = int(metrics["full/pairs_scored"]), metrics[EVAL_SECONDS]
    table.append((method, mode, pairs, seconds))
    benchmark.extra_info.update(
        images=N_IMAGES,
        captions=len(captions),
        device=DEVICE,
        mode=mode,
        embed_dim=EMBED_DIM or "recipe",
        pairs_scored=pairs,
        eval_seconds=seconds,
        pairs_per_s=pairs / seconds,
        **{
            key.removeprefix("full/"): value
            for key, value in metrics.items()
            if "prefilter" in key
        },
    )
    n_captions = len(captions)
    reranked = N_IMAGES * min(K, n_captions) + n_captions * min(K, N_IMAGES)
    assert pairs == (reranked if mode == "rerank" else N_IMAGES * n_captions)
