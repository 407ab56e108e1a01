"""Cross-attention scoring throughput against the fp32 matrix-product rate measured in the same run.

Run with ``pytest benchmarks/test_cross_attention_rate.py --benchmark-only -p no:cacheprovider -s``;
``ITR_BENCH_DEVICE=cuda`` on a GPU (larger blocks there, to fill it).

Reference: the median time of ``torch.matmul`` of two fp32 n × n matrices (n = 2,048 on the CPU,
8,192 on CUDA; TF32 off, PyTorch's default), counted as 2·n³ FLOPs.

Heads (the recipes' own, `benchmarks/shapes.py`): SCAN t-i AVG (λ1 = 9) and AsCL's `ascl-fusion`
(u1 = 0.8, 8 heads, pair global pooling), at COCO precomp shapes: 36 unit-norm regions per image
(+ a global vector for AsCL), 1024-d, against captions of 12 words (SCAN) or 12–16 tokens (AsCL:
MiniLM's word pieces with [CLS] and [SEP]). Each is timed on a dense `forward` block and on
re-rank lists of 128 candidates per query (`score_pairs`, image queries and caption queries),
median of 3 calls after a warm-up. The FLOP count per pair is the work that depends on both sets
of the pair, derived from each head's code below (`scan_flops_per_pair`, `ascl_flops_per_pair`);
work done once per image or per caption (Gram matrices, squared norms, the gate's g half) is
left out (under 1 % of a dense block's). FLOP/s = pairs/s × FLOPs per pair, reported as a
fraction of the matrix-product rate (the issue's target: at least 40 %). For SCAN the count of
the reference formulation (which builds each attended vector) is reported beside it.

One dense call and one call on the image-query list of each head run under the torch profiler;
their top operators by self time say where the time goes.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.shapes import DEVICE, make_head, make_sets, median_seconds, rerank_list

GPU = DEVICE.startswith("cuda")
MATMUL_N = 8192 if GPU else 2048
REGIONS, DIM, ASCL_HEADS, K = 36, 1024, 8, 128
# head: (images, captions, min words, max words, dense block images × captions, queries per direction)
SHAPES = {
    "scan": (256, 1280, 12, 12, (128, 640), 64),
    "ascl": (256, 1280, 12, 16, (16, 128), 16),
}
SCALE = 8 if GPU else 1
"""Blocks and query counts are this many times larger on a GPU."""
TOP_OPERATORS = 8


def scan_flops_per_pair(n_regions: float, n_words: float, dim: int) -> dict[str, float]:
    """SCAN t-i per (image, caption) pair, R regions (contexts) × W words (queries), D dims, as
    `baselines.scan.attention.stacked_cross_attention` computes it:

    - affinities s_rw, one [R, D] × [D, W] block of the product: 2·R·W·D;
    - the attended vectors' dot products with the words and squared norms from the region Gram
      matrix instead of the vectors (``gram @ attention``): 2·R²·W;
    - elementwise over [R, W]: LeakyReLU and its l2 norm over the words (4), λ-scaled bias and
      softmax over the regions (6), α·s summed (2), α·(Gα) summed (2): 14·R·W.

    ``reference``: SCAN's own formulation, which builds each attended vector a_w = Σ_r α_rw v_r:
    2·R·W·D for the affinities, 2·R·W·D for the attended vectors, 4·W·D for cos(w, a_w)'s dot
    and ‖a_w‖² (‖w‖ is per caption), plus the same 14·R·W.
    """
    elementwise = 14 * n_regions * n_words
    return {
        "executed": 2 * n_regions * n_words * dim
        + 2 * n_regions**2 * n_words
        + elementwise,
        "reference": 4 * n_regions * n_words * dim + 4 * n_words * dim + elementwise,
    }


def ascl_flops_per_pair(
    n_regions: float, n_words: float, dim: int, heads: int
) -> dict[str, float]:
    """`ascl-fusion` per (image, caption) pair, R regions × L words, d dims, H heads, as
    `plugins.ascl.heads` computes it (`cross_attention`, `local_score`, `pooled_text`,
    `pooled_image`, `_text_global`, `_image_global`):

    - per-head affinities A_hrt: 2·R·L·d;
    - ‖ŵ_r‖² and ‖v̂_t‖² through the word and region Gram matrices: 2·H·R·L² + 2·H·R²·L;
    - the pooled attended sets a^T, a^I: 2·L·d + 2·R·d;
    - the global branch's per-pair layers W_c, W_a and the gate's u half: 3 × 2·d²;
    - elementwise over [H, R, L]: two λ-scaled biased softmaxes (2 × 6), α·A and β·A summed
      (2 × 2), α·(αG) and β·(Gβ) summed (2 × 2), the mean weights of both pools (2 × 2): 24·H·R·L;
      over d: biases, sigmoid gate, mixing, two l2 norms and the final dot, about 16·d.
    """
    r, l_, d, h = n_regions, n_words, dim, heads
    return {
        "executed": 2 * r * l_ * d
        + 2 * h * r * l_**2
        + 2 * h * r**2 * l_
        + 2 * (r + l_) * d
        + 6 * d**2
        + 24 * h * r * l_
        + 16 * d
    }


def flops_per_pair(name: str, mean_words: float) -> dict[str, float]:
    if name == "scan":
        return scan_flops_per_pair(REGIONS, mean_words, DIM)
    return ascl_flops_per_pair(REGIONS, mean_words, DIM, ASCL_HEADS)


def matmul_flops_per_s() -> float:
    """fp32 FLOP/s of one n × n by n × n ``torch.matmul`` (median of 5, 2·n³ FLOPs each)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(MATMUL_N, MATMUL_N, generator=generator).to(DEVICE)
        for _ in range(2)
    )
    return 2 * MATMUL_N**3 / median_seconds(torch.matmul, a, b, rounds=5)


def top_operators(function, args: tuple) -> list[dict[str, float | str]]:
    """The `TOP_OPERATORS` operators of one call with the most self time (CUDA time on a GPU)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if GPU else [])
    with profile(activities=activities) as prof:
        function(*args)
        if GPU:
            torch.cuda.synchronize()
    key = "self_device_time_total" if GPU else "self_cpu_time_total"
    events = sorted(
        prof.key_averages(), key=lambda event: getattr(event, key), reverse=True
    )
    total = sum(getattr(event, key) for event in events)
    return [
        {
            "op": event.key,
            "ms": getattr(event, key) / 1e3,
            "share": getattr(event, key) / total,
            "calls": event.count,
        }
        for event in events[:TOP_OPERATORS]
    ]


@pytest.fixture(scope="module")
def matmul_rate() -> float:
    return matmul_flops_per_s()


@pytest.mark.parametrize("name", list(SHAPES))
@torch.inference_mode()
def test_cross_attention_rate_against_matmul(benchmark, capsys, matmul_rate, name):
    (
        n_images,
        n_captions,
        min_words,
        max_words,
        (block_images, block_captions),
        n_queries,
    ) = SHAPES[name]
    images, texts = make_sets(
        n_images * SCALE,
        REGIONS,
        n_captions * SCALE,
        min_words,
        max_words,
        DIM,
        summary=name == "ascl",
        device=DEVICE,
    )
    head = make_head(name, {}, DIM).to(DEVICE)
    generator = torch.Generator().manual_seed(1)
    n_queries *= SCALE
    lists = {
        "image queries": rerank_list(n_queries, len(texts), K, generator),
        "caption queries": tuple(
            reversed(rerank_list(n_queries, len(images), K, generator))
        ),
    }
    dense = (images[: block_images * SCALE], texts[: block_captions * SCALE])
    calls = {"dense forward": (head, dense, len(dense[0]) * len(dense[1]))}
    for what, (image_index, caption_index) in lists.items():
        pairs = (images, texts, image_index.to(DEVICE), caption_index.to(DEVICE))
        calls[f"score_pairs, {what}"] = (head.score_pairs, pairs, len(image_index))

    dense_seconds = benchmark.pedantic(
        lambda: median_seconds(head, *dense), rounds=1, iterations=1
    )
    rates = {"dense forward": calls["dense forward"][2] / dense_seconds}
    for what, (function, args, n_pairs) in list(calls.items())[1:]:
        rates[what] = n_pairs / median_seconds(function, *args)
    flops = flops_per_pair(name, float(texts.lengths.float().mean()))
    fractions = {
        what: {
            count: rate * per_pair / matmul_rate for count, per_pair in flops.items()
        }
        for what, rate in rates.items()
    }
    profiled = ("dense forward", "score_pairs, image queries")
    operators = {what: top_operators(*calls[what][:2]) for what in profiled}
    benchmark.extra_info.update(
        device=DEVICE,
        dim=DIM,
        regions=REGIONS,
        words=[min_words, max_words],
        matmul_n=MATMUL_N,
        matmul_flops_per_s=matmul_rate,
        flops_per_pair=flops,
        pairs_per_s=rates,
        fraction_of_matmul=fractions,
        dense_block=[len(dense[0]), len(dense[1])],
        top_operators=operators,
    )
    with capsys.disabled():
        print(
            f"\n{name} on {DEVICE}, {DIM}-d, {REGIONS} regions, {min_words}–{max_words} words: matmul "
            f"{matmul_rate / 1e9:,.1f} GFLOP/s (n = {MATMUL_N}); "
            + ", ".join(
                f"{count} {per_pair / 1e6:.2f} MFLOP"
                for count, per_pair in flops.items()
            )
            + " per pair"
        )
        for what, rate in rates.items():
            shares = ", ".join(
                f"{100 * share:.1f} % ({count})"
                for count, share in fractions[what].items()
            )
            print(f"  {what:<30}{rate:>12,.0f} pairs/s  {shares} of the matmul rate")
        for what, top in operators.items():
            shares = "; ".join(f"{op['op']} {100 * op['share']:.0f} %" for op in top)
            print(f"  {what}, top operators by self time: {shares}")
    rows, columns = (
        torch.arange(2, device=DEVICE).repeat_interleave(64),
        torch.arange(64, device=DEVICE).repeat(2),
    )
    torch.testing.assert_close(  # the pair lists score what the dense head scores
        head.score_pairs(images, texts, rows, columns),
        head(images[:2], texts[:64]).flatten(),
        rtol=0,
        atol=1e-5,
    )
