"""Rankings by dataset ids, end to end: a tiny Karpathy file over demo images with COCO ids and a
COCO captions file, `itr run` (the training-free class bridge), the run's rankings artifact,
`itr export-rankings` as JSON and Parquet; and the one-line refusals of the protocols that
need COCO's ids (eccv-caption, cxc) before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from baselines.datasets import coco_demo
from harness.evaluation.extended import package_ground_truth
from harness.evaluation.rankings import Rankings
from tests.helpers import itr_in_process, search_runs, store_uri

DEMO = Path(coco_demo.__file__).parent / "coco_demo"
N_IMAGES = 6


def demo_records() -> list[dict]:
    """The first demo images as a Karpathy test split (their cocoids, their captions)."""
    records = json.loads((DEMO / "dataset_coco.json").read_text())["images"][:N_IMAGES]
    return [{**record, "split": "test"} for record in records]


def annotation_id(cocoid: int, number: int) -> int:
    return 7_000_000 + 10 * cocoid + number


def write_captions_json(path: Path, records: list[dict], drop: int | None = None) -> Path:
    """COCO's captions_*.json for `records`, texts re-cased and punctuated as COCO's are (the
    `drop`-th annotation left out)."""
    annotations = [
        {"id": annotation_id(record["cocoid"], n), "image_id": record["cocoid"], "caption": sentence["raw"].capitalize() + "."}
        for record in records
        for n, sentence in enumerate(record["sentences"])
    ]
    if drop is not None:
        del annotations[drop]
    path.write_text(json.dumps({"images": [{"id": r["cocoid"]} for r in records], "annotations": annotations}))
    return path


def write_experiment(folder: Path, protocols: str = '["full"]', captions_json: Path | None = None, top_k: int = 4) -> Path:
    annotations = folder / "dataset_tiny.json"
    annotations.write_text(json.dumps({"images": demo_records()}))
    options = f"annotations = {json.dumps(str(annotations))}, image_root = {json.dumps(str(DEMO))}"
    if captions_json is not None:
        options += f", captions_json = {json.dumps(str(captions_json))}"
    experiment = folder / "rankings.toml"
    experiment.write_text(
        f"""
name = "rankings"
[[datasets]]
name = "karpathy"
protocols = {protocols}
options = {{ {options} }}

[methods.class-bridge]
eval.rankings_top_k = {top_k}
"""
    )
    return experiment


@pytest.fixture(scope="module")
def ranked_run(tmp_path_factory) -> tuple[Path, str]:
    """(results folder, job run id) of one class-bridge run on the tiny Karpathy file."""
    folder = tmp_path_factory.mktemp("rankings")
    captions = write_captions_json(folder / "captions_test.json", demo_records())
    out = itr_in_process("run", str(write_experiment(folder, captions_json=captions)), "--results-dir", str(folder / "results"))
    assert out.code == 0, out.stderr[-3000:]
    runs = search_runs(folder / "results", "rankings")
    job = runs[runs["tags.itr.kind"] == "job"] if "tags.itr.kind" in runs else runs.dropna(subset=["metrics.full/rsum"])
    return folder / "results", job["run_id"].iloc[0]


def test_the_run_stores_top_k_rankings_keyed_by_coco_ids(ranked_run, tmp_path):
    results, run_id = ranked_run
    path = mlflow.MlflowClient(store_uri(results)).download_artifacts(run_id, "rankings/full.npz", str(tmp_path))
    rankings = Rankings.load(Path(path))
    records = demo_records()
    assert list(rankings.image_ids) == [str(record["cocoid"]) for record in records]
    assert list(rankings.caption_ids) == [str(annotation_id(r["cocoid"], n)) for r in records for n in range(len(r["sentences"]))]
    assert rankings.i2t_top.shape == (N_IMAGES, 4) and rankings.t2i_top.shape == (len(rankings.caption_ids), 4)
    assert (np.diff(rankings.i2t_score, axis=1) <= 0).all() and (np.diff(rankings.t2i_score, axis=1) <= 0).all()


def test_export_rankings_writes_json_and_parquet_that_read_back(ranked_run, tmp_path):
    results, run_id = ranked_run
    written = {}
    for fmt in ("json", "parquet"):
        written[fmt] = tmp_path / f"out.{fmt}"
        out = itr_in_process("export-rankings", run_id, "--format", fmt, "--top", "3", "-o", str(written[fmt]), "--results-dir", str(results))
        assert out.code == 0, out.stderr[-2000:]
    document = json.loads(written["json"].read_text())
    frame = pd.read_parquet(written["parquet"])
    assert document["protocol"] == "full"
    cocoids = {str(record["cocoid"]) for record in demo_records()}
    assert set(document["i2t"]) == cocoids and set(frame[frame.direction == "t2i"].candidate_id) <= cocoids
    for direction in ("i2t", "t2i"):
        rows = frame[frame.direction == direction]
        from_frame = {query: dict(zip(group.candidate_id, group.score)) for query, group in rows.groupby("query_id", sort=False)}
        assert list(from_frame) == list(document[direction])
        for query, candidates in document[direction].items():
            assert list(from_frame[query]) == list(candidates) and len(candidates) == 3  # the same ids, best first
            assert list(from_frame[query].values()) == pytest.approx(list(candidates.values()))
            assert list(candidates.values()) == sorted(candidates.values(), reverse=True)
        assert rows.groupby("query_id")["rank"].apply(list).map(lambda ranks: ranks == [1, 2, 3]).all()


def test_export_rankings_refuses_more_than_the_run_stored(ranked_run, tmp_path):
    results, run_id = ranked_run
    out = itr_in_process("export-rankings", run_id, "--top", "9", "-o", str(tmp_path / "x.json"), "--results-dir", str(results))
    assert out.code == 2 and "--top 9: the run stored the top 4 of each query" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("protocol", "with_captions", "drop", "expected"),
    [
        ("eccv-caption", False, None, "protocol 'eccv-caption' on dataset_tiny:test: needs COCO caption ids; give the dataset option captions_json"),
        ("cxc", True, None, "{missing} of the 5000 COCO 5K test image ids of the eccv-caption package are not in the split (e.g. "),
        ("cxc", True, 2, "no unused caption of image 790 matches dataset_tiny:test caption"),
    ],
)
def test_id_protocols_refuse_a_split_before_it_runs(tmp_path, protocol, with_captions, drop, expected):
    captions = write_captions_json(tmp_path / "captions.json", demo_records(), drop) if with_captions else None
    experiment = write_experiment(tmp_path, f'["{protocol}"]', captions)
    out = itr_in_process("run", str(experiment), "--results-dir", str(tmp_path / "results"))
    assert out.code == 2, out.stderr[-2000:]
    test_images = package_ground_truth("cxc").test_images
    expected = expected.format(missing=len(test_images - {record["cocoid"] for record in demo_records()}))
    assert expected in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
