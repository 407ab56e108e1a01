"""`itr search`: your own caption or image against a finished job's test split.

Three finished jobs on the demo set: the training-free class bridge (global vectors, frozen
EfficientNet image and MiniLM text features), SCAN trained for one epoch (cross attention over
region and word sets) and a tiny zero-shot CLIP (an image encoder that reads pixels). Each hit
list must be the ranking the job's own evaluation gives the same query (its score matrix,
computed here through the `itr eval` pipeline), so a query that is a test caption, or a test
image, checks the whole query path against the gallery's."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import itr_in_process, search_runs, store_uri

EXPERIMENT = """
name = "search"
[[datasets]]
name = "coco-demo"
[methods.class-bridge]
[methods.scan]
image_encoder.embed_dim = 32
text_encoder = { embed_dim = 32, word_dim = 16, min_count = 1 }
train.batch_size = 32
stages.main.epochs = 1
[methods.clip]
image_encoder.model = "{clip}"
text_encoder.model = "{clip}"
"""
JOBS = ["class-bridge", "scan", "clip"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_checkpoints):
    """(results folder, {label: job run id}), the jobs run once."""
    folder = tmp_path_factory.mktemp("search")
    (folder / "exp.toml").write_text(EXPERIMENT.replace("{clip}", tiny_checkpoints["clip"]))
    out = itr_in_process("run", str(folder / "exp.toml"), "--results-dir", str(folder / "results"), "--quiet")
    assert out.code == 0, out.stderr[-3000:]
    runs = search_runs(folder / "results", "search", "tags.`itr.kind` = 'job'")
    return folder / "results", {row["tags.itr.label"]: row["run_id"] for _, row in runs.iterrows()}


@pytest.fixture(scope="module")
def evaluated(finished):
    """{label: (test split, the job's score matrix [n_images, n_captions])}, through the
    evaluation `itr eval` runs."""
    from harness.evaluation.evaluate import evaluate_split
    from harness.experiment.finished import reopen
    from harness.features import FeatureCache
    from harness.job.assemble import assemble
    from harness.job.catalog import DataCatalog, protocols_of
    from harness.job.checkpoints import load_weights
    from harness.job.inputs import JobData
    from harness.plugin_manager import PluginHost

    results, runs = finished
    registry = PluginHost().registry
    out = {}
    for label, run_id in runs.items():
        with tempfile.TemporaryDirectory() as scratch:
            found = reopen(run_id, {}, {}, results, store_uri(results), Path(scratch))
            data = JobData(found.job, registry, DataCatalog(registry, "test"), FeatureCache())
            model = assemble(found.job, registry, data.context()).model
            load_weights(model, found.folder)
            split, inputs = data.test_inputs(model)
            evaluation = evaluate_split(model, inputs, protocols_of(registry, found.target, "test"), found.job.config.eval)
        out[label] = (split, evaluation.scores)
    return out


def hits(stdout: str) -> list[list[str]]:
    """The rows of the printed hit table, cells stripped."""
    rows = [line for line in stdout.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]


def assert_ranked_as(printed: list[float], found: list[int], scores: torch.Tensor) -> None:
    """The hits `found` (indices into `scores`, the job's scores of the query, [n_gallery]) with
    their `printed` scores are the gallery's best, best first: each hit's printed score is its
    score in the job's matrix, and the printed scores are the matrix's top ones (so the order
    is the matrix's up to exact ties)."""
    assert len(set(found)) == len(found)
    assert printed == pytest.approx(scores[found].tolist(), abs=1.5e-4)
    assert printed == pytest.approx(scores.sort(descending=True).values[: len(found)].tolist(), abs=1.5e-4)


@pytest.mark.parametrize("label", JOBS)
def test_a_test_caption_finds_the_images_the_jobs_scores_rank_first(finished, evaluated, label):
    results, runs = finished
    split, scores = evaluated[label]
    caption = 7
    out = itr_in_process("search", runs[label], "--results-dir", str(results), "--text", split.captions[caption], "--top", "5")
    assert out.code == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0].startswith(f"{label} (run {runs[label]}) on coco-demo:test: 20 images searched for the text")
    rows = hits(out.stdout)
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    found = [split.image_ids.index(row[2]) for row in rows]
    assert [row[3] for row in rows] == [split.image_paths[i].name for i in found]
    first_captions = [split.captions[int(np.flatnonzero(split.image_of_caption == i)[0])] for i in found]
    assert [row[4] for row in rows] == first_captions
    assert_ranked_as([float(row[1]) for row in rows], found, scores[:, caption])


@pytest.mark.parametrize("label", JOBS)
def test_a_test_image_finds_the_captions_the_jobs_scores_rank_first(finished, evaluated, label):
    results, runs = finished
    split, scores = evaluated[label]
    image = 3
    out = itr_in_process("search", runs[label], "--results-dir", str(results), "--image", str(split.image_paths[image]))
    assert out.code == 0, out.stderr[-2000:]
    assert "100 captions searched for the image" in out.stdout.splitlines()[0]
    rows = hits(out.stdout)
    assert len(rows) == 10
    candidates = {(text, split.image_ids[split.image_of_caption[c]]): c for c, text in enumerate(split.captions)}
    found = [candidates[(row[2], row[3])] for row in rows]
    assert_ranked_as([float(row[1]) for row in rows], found, scores[image])


def test_the_class_bridge_finds_the_image_of_a_caption_it_retrieves(finished, evaluated):
    """The training-free bridge retrieves well on the demo set (t2i R@5 above 80%): a
    caption its evaluation ranks first puts its own image first in a search too."""
    results, runs = finished
    split, scores = evaluated["class-bridge"]
    caption = next(c for c in range(split.n_captions) if int(scores[:, c].argmax()) == split.image_of_caption[c])
    out = itr_in_process("search", runs["class-bridge"], "--results-dir", str(results), "--text", split.captions[caption], "--top", "1")
    assert out.code == 0, out.stderr[-2000:]
    assert hits(out.stdout)[0][2] == split.image_ids[split.image_of_caption[caption]]


def test_a_second_search_reads_the_gallery_from_the_cache(finished):
    results, runs = finished
    galleries = results / "search" / "galleries"
    for stored in galleries.glob("*"):
        stored.unlink()
    args = ("search", runs["scan"], "--results-dir", str(results), "--text", "a cat on a sofa")
    first, second = itr_in_process(*args), itr_in_process(*args)
    assert first.code == second.code == 0, first.stderr[-2000:] + second.stderr[-2000:]
    assert "20 images and 100 captions embedded, cached in" in first.stderr
    assert "read from the cache" in second.stderr and "embedded" not in second.stderr
    assert second.stdout == first.stdout
    assert len(list(galleries.glob("*.safetensors"))) == 1 and not list(galleries.glob(".*")), "one entry, no staging file left"
    other = itr_in_process(*args, "--split", "train")
    assert other.code == 0 and "on coco-demo:train: 27 images" in other.stdout
    assert "embedded, cached in" in other.stderr, "another split is another gallery"
    assert len(list(galleries.glob("*.safetensors"))) == 2


def test_a_damaged_gallery_file_is_embedded_again(finished):
    results, runs = finished
    args = ("search", runs["class-bridge"], "--results-dir", str(results), "--text", "two dogs in the snow")
    before = itr_in_process(*args)
    assert before.code == 0, before.stderr[-2000:]
    stored = Path(re.search(r"(?:cached in|from the cache) (\S+\.safetensors)", before.stderr).group(1))
    stored.write_bytes(stored.read_bytes()[:100])
    after = itr_in_process(*args)
    assert after.code == 0, after.stderr[-2000:]
    assert f"warning: gallery cache {stored} is unreadable" in after.stderr and "embedded, cached in" in after.stderr
    assert after.stdout == before.stdout
    assert itr_in_process(*args).stderr.count("read from the cache") == 1


def test_a_checkpoint_folder_keeps_its_gallery_under_results(finished, tmp_path):
    from harness.tracking import download_checkpoint
    from tests.helpers import store_uri

    results, runs = finished
    folder = download_checkpoint(store_uri(results), runs["class-bridge"], tmp_path)
    out = itr_in_process("search", str(folder), "--results-dir", str(tmp_path / "results"), "--text", "a bowl of soup", "--top", "3")
    assert out.code == 0, out.stderr[-2000:]
    assert f"(checkpoint {folder})" in out.stdout and len(hits(out.stdout)) == 3
    assert len(list((tmp_path / "results" / "galleries").glob("*.safetensors"))) == 1


def precomp_split(folder: Path) -> Path:
    """A precomp dataset folder whose test split is 2 images of region features, 5 captions each."""
    np.save(folder / "test_ims.npy", np.random.default_rng(0).random((2, 4, 8), dtype=np.float32))
    (folder / "test_caps.txt").write_text("".join(f"caption {i} of a precomputed image\n" for i in range(10)))
    return folder


@pytest.mark.parametrize(
    "query, message",
    [
        ([], "itr search: give exactly one of --text TEXT (searches the images) or --image PATH (searches the captions)"),
        (["--text", "a dog", "--image", "{image}"], "itr search: give exactly one of --text TEXT"),
        (["--text", "  "], "itr search: --text: the query is empty"),
        (["--image", "{tmp}/nowhere.jpg"], "{tmp}/nowhere.jpg: --image: no such image file"),
        (["--image", "{image}", "--dataset", "precomp", "--option", "path={tmp}"], "has precomputed image features only"),
        (["--text", "a dog", "--option", "eval.chunk=3"], "itr search: eval: chunk: unknown key 'chunk'"),
    ],
    ids=["neither", "both", "empty text", "missing image file", "image on precomp", "unknown eval key"],
)
def test_bad_queries_are_one_line(finished, evaluated, tmp_path, query, message):
    results, runs = finished
    image = str(evaluated["scan"][0].image_paths[0])
    precomp_split(tmp_path)
    fill = {"{image}": image, "{tmp}": str(tmp_path)}
    args = [re.sub("|".join(map(re.escape, fill)), lambda m: fill[m.group()], arg) for arg in query]
    out = itr_in_process("search", runs["scan"], "--results-dir", str(results), *args)
    assert out.code == 2, out.stderr[-2000:]
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert re.sub("|".join(map(re.escape, fill)), lambda m: fill[m.group()], message) in out.stderr


def test_an_unknown_run_is_one_line(finished):
    results, _ = finished
    out = itr_in_process("search", "0" * 32, "--results-dir", str(results), "--text", "a dog")
    assert out.code == 2 and out.stderr.count("\n") == 1 and "not found" in out.stderr
