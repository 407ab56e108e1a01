"""Training images/s of an image encoder that reads pixels, with 0, 1 and 2 loader workers,
against the same training on frozen cached features, in one run.

Run with ``pytest benchmarks/test_loader_workers.py --benchmark-only -p no:cacheprovider -s``;
``ITR_BENCH_FULL=1`` trains at 224 px, batch 32, 1024-d, 8 timed steps a setting (default
128 px, batch 16, 256-d, 3 timed steps), 3 rounds either way; ``ITR_BENCH_DEVICE=cuda`` trains
on a GPU (the loader then pins memory, as a job does). ``ITR_BENCH_THREADS=N`` sets torch's
intra-op threads for the run (default torch's own, all usable cores, as a job runs): on cores
other jobs share, two OpenMP threads that wait on each other at every operator can run 10×
slower than one, which drowns the differences this file measures.

Everything is the harness's own: `harness.training.trainer.fit` trains a `RetrievalModel` for
one epoch capped by ``train.steps_per_epoch``; its images come from a `PixelFeed` (decoded and
augmented, random resized crop and flip, in 0, 1 or 2 `DataLoader` worker processes, as a job
with ``train.loader_workers`` reads them) into `efficientnet-lite0-ft` (EfficientNet-Lite0 with
its real ImageNet weights, fine-tuned at lr × 0.1 under a GPO head). The reference trains the
same network's frozen output instead: the `efficientnet-lite0` backbone's 7 × 7 grid
(``regions``, 49 × 1280 at its own 224 px), computed once outside the timing and stored as a
job's feature cache stores it (float16 ``.npy``, memory-mapped), under `vse-inf-region`'s head
(fc + MLP, GPO). Both share the text side (`vse-gru`, cheap beside the image side), the cosine
head and VSE++'s hardest-negative triplet loss.

Images: the coco-demo set's 47 real COCO JPEGs (256-px thumbnails), repeated to a few hundred
items, one of each image's real captions per item.

Images/s per setting: the batch size × the timed steps over the time from the loss call of the
step after the warm-up step to the loss call `STEPS` steps later (each interval one whole
step: backward, optimizer, the next batch's wait and forward), so neither the first step's
allocations nor the loader's start-up count; the median over `ROUNDS` rounds, the settings'
order rotated each round (``best_images_per_s``: the fastest round, nearer a quiet machine's
figure when other jobs share the cores). ``whole_fit_images_per_s`` divides every image of the
epoch by the whole `fit` call instead (the worker processes' start and the first batch included: a job pays
them once per epoch). Loader workers prefetch 2 batches each while the warm-up step runs, so a
short timed window hides decoding when it is slower than the network; the decode-only figures
(the same `PixelFeed` read with no model, worker start included) say which of the two is the
bottleneck (``steady_images_per_s``: from the first batch's arrival on, the workers' start
left out). Ratios: to the frozen-feature reference and to 0 workers, of the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from baselines.backbones.efficientnet_lite import EfficientNetLite0Backbone
from baselines.heads.cosine import CosineHead
from baselines.vision.efficientnet import EfficientNetEncoder
from baselines.vse.encoders import GRUTextEncoder
from baselines.vse.losses import HardestNegativeTriplet
from baselines.vse_infinity.encoders import RegionImageEncoder
from benchmarks.methods import build_context, memory_mapped
from benchmarks.shapes import DEVICE
from harness.config.job_config import TrainConfig
from harness.progress import QUIET_VARIABLE
from harness.training.feeds import PIXELS, FeatureFeed, PixelFeed
from harness.training.model import RetrievalModel, SplitInputs
from harness.training.trainer import Stage, fit, seed_everything

FULL = bool(os.environ.get("ITR_BENCH_FULL"))
IMAGE_SIZE = 224 if FULL else 128
BATCH = 32 if FULL else 16
EMBED_DIM = 1024 if FULL else 256
WARMUP, STEPS = 1, (8 if FULL else 3)
ROUNDS = 3
WORKERS = (0, 1, 2)
DECODE_BATCHES = 20
THREADS = int(os.environ.get("ITR_BENCH_THREADS", "0"))  # 0: torch's default
DEMO = Path(__file__).resolve().parents[1] / "baselines" / "datasets" / "coco_demo"
PHOTOS = sorted((DEMO / "images").glob("*.jpg"))
STEPS_PER_EPOCH = WARMUP + STEPS + 1  # the last step's loss call ends the timed window
ITEMS = len(PHOTOS) * max(8, -(-BATCH * STEPS_PER_EPOCH // len(PHOTOS)))  # whole repeats of the demo set
FROZEN = "frozen features"


class TimedTriplet(HardestNegativeTriplet):
    """VSE++'s loss, noting the time of every call (once per training step)."""

    def __init__(self) -> None:
        super().__init__(None, margin=0.2)
        self.calls: list[float] = []

    def forward(self, scores: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        if scores.is_cuda:
            torch.cuda.synchronize()
        self.calls.append(time.perf_counter())
        return super().forward(scores, image_ids)


def demo_items() -> tuple[list[Path], list[str]]:
    """`ITEMS` items cycling through the demo photos, each with one of its real captions (a
    different one on each repeat)."""
    entries = {entry["filename"]: entry for entry in json.loads((DEMO / "dataset_coco.json").read_text())["images"]}
    paths, captions = [], []
    for item in range(ITEMS):
        photo = PHOTOS[item % len(PHOTOS)]
        sentences = entries[photo.name]["sentences"]
        paths.append(photo)
        captions.append(sentences[(item // len(PHOTOS)) % len(sentences)]["raw"])
    return paths, captions


def train_once(setting: str, paths: list[Path], captions: list[str], features: dict) -> dict[str, float]:
    """One epoch of `STEPS_PER_EPOCH` steps from fresh, identically seeded weights: the timed
    steps' images/s and the whole fit's."""
    seed_everything(0)
    ctx = build_context(features, captions)
    if setting == FROZEN:
        image_encoder = RegionImageEncoder(ctx, feature="regions", embed_dim=EMBED_DIM)
        images = FeatureFeed(features)
    else:
        image_encoder = EfficientNetEncoder(ctx, embed_dim=EMBED_DIM, image_size=IMAGE_SIZE)
        images = PixelFeed(paths, image_encoder.pixels, seed=0, workers=int(setting))
    model = RetrievalModel(image_encoder, GRUTextEncoder(ctx, word_dim=128, embed_dim=EMBED_DIM, min_count=1), CosineHead(ctx))
    data = SplitInputs(images, model.text_encoder.prepare(captions), torch.arange(len(captions)), captions)
    loss = TimedTriplet()
    cfg = TrainConfig(batch_size=BATCH, steps_per_epoch=STEPS_PER_EPOCH)
    start = time.perf_counter()
    fit(model, data, [Stage("main", 1, loss)], cfg, torch.device(DEVICE))
    whole = time.perf_counter() - start
    assert len(loss.calls) == STEPS_PER_EPOCH
    timed = loss.calls[WARMUP + STEPS] - loss.calls[WARMUP]
    return {"images_per_s": BATCH * STEPS / timed, "whole_fit_images_per_s": BATCH * STEPS_PER_EPOCH / whole}


def decode_once(paths: list[Path], spec, workers: int) -> dict[str, float]:
    """`DECODE_BATCHES` training batches read through a `PixelFeed` with no model."""
    feed = PixelFeed(paths, spec, seed=0, workers=workers)
    order = torch.arange(DECODE_BATCHES * BATCH) % len(paths)
    start = time.perf_counter()
    arrivals = []
    for batch in feed.batches(list(order.split(BATCH)), torch.device(DEVICE), train=True):
        assert batch[PIXELS].shape == (BATCH, 3, spec.size, spec.size)
        arrivals.append(time.perf_counter())
    return {
        "images_per_s": DECODE_BATCHES * BATCH / (arrivals[-1] - start),
        "steady_images_per_s": (DECODE_BATCHES - 1) * BATCH / (arrivals[-1] - arrivals[0]),
        "first_batch_s": arrivals[0] - start,
    }


def test_training_images_per_s_by_loader_workers(benchmark, capsys, tmp_path, monkeypatch, request):
    monkeypatch.setenv(QUIET_VARIABLE, "1")
    if THREADS:
        default_threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        request.addfinalizer(lambda: torch.set_num_threads(default_threads))
    paths, captions = demo_items()
    backbone = EfficientNetLite0Backbone(batch_size=BATCH, device=DEVICE)
    photo_features = backbone.encode_images(PHOTOS)["regions"]  # once, outside the timing
    features = memory_mapped(tmp_path / "features", {"regions": photo_features[np.arange(ITEMS) % len(PHOTOS)]})
    settings = [FROZEN, *map(str, WORKERS)]
    load_before = os.getloadavg()

    def measure() -> dict[str, list[dict[str, float]]]:
        runs: dict[str, list[dict[str, float]]] = {setting: [] for setting in settings}
        for round_ in range(ROUNDS):
            for setting in settings[round_ % len(settings) :] + settings[: round_ % len(settings)]:
                runs[setting].append(train_once(setting, paths, captions, features))
        return runs

    runs = benchmark.pedantic(measure, rounds=1, iterations=1)
    spec = EfficientNetEncoder(build_context(features, captions), embed_dim=EMBED_DIM, image_size=IMAGE_SIZE).pixels
    decode_runs = {workers: [decode_once(paths, spec, workers) for _ in range(ROUNDS)] for workers in WORKERS}
    load_after = os.getloadavg()

    def median(values: list[dict[str, float]], key: str) -> float:
        return statistics.median(value[key] for value in values)

    rates = {setting: median(values, "images_per_s") for setting, values in runs.items()}
    training = {
        setting: {
            "images_per_s": rates[setting],
            "best_images_per_s": max(value["images_per_s"] for value in values),
            "whole_fit_images_per_s": median(values, "whole_fit_images_per_s"),
            "ratio_to_frozen": rates[setting] / rates[FROZEN],
            "ratio_to_0_workers": rates[setting] / rates["0"],
            "rounds": values,
        }
        for setting, values in runs.items()
    }
    decoding = {
        str(workers): {
            "images_per_s": median(values, "images_per_s"),
            "steady_images_per_s": median(values, "steady_images_per_s"),
            "first_batch_s": median(values, "first_batch_s"),
            "rounds": values,
        }
        for workers, values in decode_runs.items()
    }
    benchmark.extra_info.update(
        device=DEVICE,
        image_size=IMAGE_SIZE,
        frozen_feature_size=EfficientNetLite0Backbone.image_size,
        batch_size=BATCH,
        embed_dim=EMBED_DIM,
        items=ITEMS,
        warmup_steps=WARMUP,
        timed_steps=STEPS,
        rounds=ROUNDS,
        usable_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        load_average_before=load_before,
        load_average_after=load_after,
        training=training,
        decode_only=decoding,
    )
    with capsys.disabled():
        print(
            f"\nefficientnet-lite0-ft on {DEVICE}, {IMAGE_SIZE} px, batch {BATCH}, {EMBED_DIM}-d; "
            f"{STEPS} timed steps after {WARMUP} warm-up, median of {ROUNDS} rounds; {torch.get_num_threads()} torch threads; "
            f"load average (1, 5, 15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
            f"{'/'.join(f'{x:.1f}' for x in load_after)} after"
        )
        print(
            f"  {'setting':<17}{'images/s':>9}{'best':>8}{'whole fit':>10}{'× frozen':>10}{'× 0 workers':>12}"
            f"{'decode only':>13}{'steady':>8}"
        )
        for setting, row in training.items():
            name = setting if setting == FROZEN else f"{setting} worker{'s' if setting != '1' else ''}"
            decode = decoding.get(setting)
            decoded = f"{decode['images_per_s']:>13,.0f}{decode['steady_images_per_s']:>8,.0f}" if decode else ""
            print(
                f"  {name:<17}{row['images_per_s']:>9,.1f}{row['best_images_per_s']:>8,.1f}{row['whole_fit_images_per_s']:>10,.1f}"
                f"{row['ratio_to_frozen']:>10.3f}{row['ratio_to_0_workers']:>12.2f}{decoded}"
            )
