"""A training job's peak memory and training pairs/s as its training split grows, in one run.

Run with ``pytest benchmarks/test_training_memory.py --benchmark-only -p no:cacheprovider -s``;
``ITR_BENCH_FULL=1`` trains on 10,000, 40,000 and 113,287 images (COCO's training split), the
default on a tenth of each (1,000, 4,000 and 11,329), so that the data written stays at 2.4 GB.

Data: synthetic COCO-shaped ``precomp`` written on the fly to a temp dir: 36 regions × 2048
float16 per image (BUTD's shape; 17 GB at 113k images), 5 captions of 8–12 words per image, and
a 100-image test split. AsCL reads frozen text tokens: here from ``hashed-tokens``, a text
backbone plugin loaded from a plugins folder (one fixed random 384-d vector per word), because
MiniLM on 566k captions takes hours on two cores; the tokens still go through the harness's
sharded feature cache, the memory path under test.

Each job is one ``itr run`` of the method's recipe (VSE∞ with fine-tuned MiniLM, 1024-d;
AsCL with ``global_feature = "regions"``, as on any precomp data, 1024-d), with
``train.steps_per_epoch`` capping each epoch, in a fresh process that samples its own memory
every 20 ms. Figures per job:

- ``rss_anon_mb``: the peak of the process's anonymous resident memory (``RssAnon``), the memory
  it holds itself; pages of memory-mapped files it has read are the kernel's to reclaim and are
  not counted here;
- ``vm_hwm_mb``: the peak of its whole resident set (``VmHWM``), mapped file pages included:
  they grow with the batches read, not with the split;
- ``pairs_per_s``: (image, caption) pairs scored per second of training (``train_seconds``
  from the job's MLflow run): B × B per step for VSE∞ (B = 128), two passes of
  B × 2B (captions and generated negatives) for AsCL (B = 64).

The target (issue 16): peak memory at the largest split at most 1.2× that at the smallest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

FULL = bool(os.environ.get("ITR_BENCH_FULL"))
SIZES = (10_000, 40_000, 113_287) if FULL else (1_000, 4_000, 11_329)
REGIONS, DIM, CAPTIONS_PER_IMAGE, TEST_IMAGES = 36, 2048, 5, 100
VOCABULARY = [f"w{index}" for index in range(2000)]
METHODS = {  # label: (recipe overrides, training steps per epoch, pairs per step)
    "vse-inf": ({"train.steps_per_epoch": 10}, 10, 128 * 128),
    "ascl": ({"train.steps_per_epoch": 4, "image_encoder.global_feature": "regions"}, 4, 2 * 64 * 128),
}
STAGES = {"vse-inf": {"warmup": 1, "main": 0}, "ascl": {"main": 1}}

TEXT_BACKBONE_PLUGIN = '''
"""hashed-tokens: one fixed random vector per word, a text backbone as fast as a table lookup."""

import zlib

import numpy as np

from harness.hookspecs import hookimpl


class HashedTokens:
    fingerprint = "hashed-tokens/v1"

    def encode_texts(self, texts):
        words = [text.split()[:16] for text in texts]
        width = max((len(w) for w in words), default=0)
        tokens = np.zeros((len(texts), width, 384), dtype=np.float32)
        for row, text_words in enumerate(words):
            for column, word in enumerate(text_words):
                tokens[row, column] = np.random.default_rng(zlib.crc32(word.encode())).standard_normal(384)
        sentence = tokens.sum(axis=1)
        sentence /= np.maximum(np.linalg.norm(sentence, axis=1, keepdims=True), 1e-9)
        return {"tokens": tokens, "lengths": np.array([len(w) for w in words], dtype=np.int64), "sentence": sentence}


def hashed_tokens(ctx=None):
    return HashedTokens()


@hookimpl
def register_encoders(register):
    register("hashed-tokens", hashed_tokens, kind="text-backbone")
'''


def write_precomp(root: Path, split: str, n_images: int, seed: int) -> None:
    """``{split}_ims.npy`` float16 [n, 36, 2048] written in blocks, and 5 captions per image."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    features = np.lib.format.open_memmap(root / f"{split}_ims.npy", mode="w+", dtype=np.float16, shape=(n_images, REGIONS, DIM))
    for start in range(0, n_images, 1000):
        block = features[start : start + 1000]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
    features.flush()
    del features
    lengths = rng.integers(8, 13, n_images * CAPTIONS_PER_IMAGE)
    words = rng.integers(len(VOCABULARY), size=(n_images * CAPTIONS_PER_IMAGE, 12))
    captions = (" ".join(VOCABULARY[w] for w in row[:length]) for row, length in zip(words, lengths))
    (root / f"{split}_caps.txt").write_text("".join(f"{caption}\n" for caption in captions))


def experiment(method: str, data: Path) -> str:
    overrides, _, _ = METHODS[method]
    lines = [f"{key} = {json.dumps(value)}" for key, value in overrides.items()]
    lines += [f"stages.{stage}.epochs = {epochs}" for stage, epochs in STAGES[method].items()]
    if method == "ascl":
        lines.append('backbones.text = { name = "hashed-tokens" }')
    return "\n".join(
        [
            f'name = "memory-{method}"',
            "seeds = [0]",
            "[[datasets]]",
            'name = "precomp"',
            f'options = {{ path = "{data}", name = "coco-synthetic" }}',
            'train = "train"',
            'test = "test"',
            'protocols = ["full"]',
            f"[methods.{json.dumps(method)}]",
            *lines,
        ]
    )


def run_job(method: str, data: Path, work: Path) -> dict[str, float]:
    """One ``itr run`` in a fresh process; its memory peaks and training pairs/s."""
    work.mkdir(parents=True)
    (work / "experiment.toml").write_text(experiment(method, data))
    plugins = work / "plugins"
    plugins.mkdir()
    (plugins / "hashed_tokens.py").write_text(TEXT_BACKBONE_PLUGIN)
    env = {**os.environ, "ITR_CACHE_DIR": str(work / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ITR_QUIET": "1"}
    command = [sys.executable, __file__, str(work / "experiment.toml"), str(work / "results"), str(plugins)]
    finished = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, check=False)
    if finished.returncode:
        raise AssertionError(f"{method} at {data.name}: exit {finished.returncode}\n{finished.stderr[-3000:]}")
    figures = json.loads(finished.stdout.strip().splitlines()[-1])
    _, steps, pairs_per_step = METHODS[method]
    epochs = sum(STAGES[method].values())
    train_seconds = train_seconds_of(work / "results" / "mlflow.db")
    return {**figures, "train_seconds": train_seconds, "pairs_per_s": epochs * steps * pairs_per_step / train_seconds}


def train_seconds_of(store: Path) -> float:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = [run for run in client.search_runs(experiments) if "train_seconds" in run.data.metrics]
    assert len(runs) == 1, f"expected one job run with train_seconds in {store}, found {len(runs)}"
    return runs[0].data.metrics["train_seconds"]


def test_training_memory_stays_flat_as_the_split_grows(benchmark, tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("memory")
    for n_images in SIZES:
        write_precomp(root / f"coco-{n_images}", "train", n_images, seed=n_images)
        write_precomp(root / f"coco-{n_images}", "test", TEST_IMAGES, seed=0)

    def every_job() -> dict[str, dict[int, dict[str, float]]]:
        return {method: {n: run_job(method, root / f"coco-{n}", root / f"{method}-{n}-{time.monotonic_ns()}") for n in SIZES} for method in METHODS}

    figures = benchmark.pedantic(every_job, rounds=1, iterations=1)
    growth = {method: {key: by_size[SIZES[-1]][key] / by_size[SIZES[0]][key] for key in ("rss_anon_mb", "vm_hwm_mb")} for method, by_size in figures.items()}
    benchmark.extra_info.update(sizes=SIZES, figures=figures, growth=growth)
    with capsys.disabled():
        print(f"\n{'method':8} {'images':>8} {'RssAnon MB':>11} {'VmHWM MB':>9} {'train s':>8} {'pairs/s':>8}")
        for method, by_size in figures.items():
            for n_images, row in by_size.items():
                print(f"{method:8} {n_images:>8,} {row['rss_anon_mb']:>11.0f} {row['vm_hwm_mb']:>9.0f} {row['train_seconds']:>8.1f} {row['pairs_per_s']:>8.0f}")
            print(f"{method}: peak at {SIZES[-1]:,} / at {SIZES[0]:,} images: RssAnon {growth[method]['rss_anon_mb']:.2f}x, VmHWM {growth[method]['vm_hwm_mb']:.2f}x")
    assert all(ratio["rss_anon_mb"] <= 1.2 for ratio in growth.values()), growth


class MemoryPeaks:
    """Samples this process's RssAnon every 20 ms in a thread; VmHWM is the kernel's own peak."""

    def __init__(self) -> None:
        self.rss_anon_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemoryPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._read()

    def _read(self) -> None:
        self.rss_anon_kb = max(self.rss_anon_kb, status_kb("RssAnon"))


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


if __name__ == "__main__":
    from harness.cli import main

    experiment_file, results, plugins_dir = sys.argv[1:4]
    started = time.perf_counter()
    with MemoryPeaks() as peaks:
        main(["--plugins-dir", plugins_dir, "run", experiment_file, "--results-dir", results])
    print(json.dumps({"rss_anon_mb": peaks.rss_anon_kb / 1024, "vm_hwm_mb": status_kb("VmHWM") / 1024, "seconds": time.perf_counter() - started}))
