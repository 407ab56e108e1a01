"""Damaged datasets through the real command line, one case per kind of damage: `itr run` exits
with code 2 and one error line naming the file and the position, no traceback, and writes
nothing (no MLflow store, no results files, no feature cache entries).

The damages are the ones the fuzz tests draw (tests/baselines/datasets/test_*_damaged.py), here
with fixed arguments, each run in a fresh interpreter as a user would run it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest

from tests.baselines.datasets.damage import (
    INVALID_UTF8,
    TALLY,
    Expected,
    PrecompSpec,
    append_to_features,
    digest_of,
    duplicated,
    edit_document,
    npy_bytes,
    truncate_features,
    undecodable_document,
    undecodable_line,
    with_value,
    write_karpathy,
    write_precomp,
)
from tests.helpers import run_itr

SPEC = PrecompSpec(
    n_images=4, row_shape=(3, 8), dtype="float32", captions=tuple(f"a photo of thing {i}" for i in range(20)),
    newline="\n", ids=False, seed=0,
)
HEADER_BYTES = len(npy_bytes(SPEC.features())) - SPEC.features().nbytes
ROW_BYTES = SPEC.features()[0].nbytes
DOCUMENT = {
    "images": [
        {"filename": f"im{i}.png", "split": "test", "imgid": i, "sentences": [{"raw": f"a photo of thing {i}"}]}
        for i in range(3)
    ]
}


def precomp_case(damage: Callable[[Path], Expected]) -> Callable[[Path], tuple[str, Expected]]:
    """A damaged precomp folder under `tmp` and the dataset table that points at it."""

    def build(tmp: Path) -> tuple[str, Expected]:
        root = write_precomp(tmp / "data", SPEC)
        return f'name = "precomp"\noptions = {{ path = {json.dumps(str(root))} }}', damage(root)

    return build


def karpathy_case(damage: Callable[[Path], Expected]) -> Callable[[Path], tuple[str, Expected]]:
    """A damaged Karpathy file and image folder under `tmp` and the dataset table that points at them."""

    def build(tmp: Path) -> tuple[str, Expected]:
        annotations = write_karpathy(tmp / "data", DOCUMENT)
        options = f"annotations = {json.dumps(str(annotations))}, image_root = {json.dumps(str(annotations.parent / 'images'))}"
        return f'name = "karpathy"\nprotocols = ["full"]\noptions = {{ {options} }}', damage(annotations.parent)

    return build


CASES = {
    "precomp feature file cut short": precomp_case(lambda root: truncate_features(root, keep=HEADER_BYTES + 2 * ROW_BYTES + 5)),
    "precomp bytes after the last row": precomp_case(lambda root: append_to_features(root, b"\0" * 7)),
    "precomp caption line not UTF-8": precomp_case(lambda root: undecodable_line(root, "test_caps.txt", 3, 2, INVALID_UTF8[0])),
    "karpathy folder of the wrong type": karpathy_case(
        lambda root: edit_document(root, lambda document: with_value(1, "filepath", None, None, document))
    ),
    "karpathy duplicate image id": karpathy_case(lambda root: edit_document(root, lambda document: duplicated(0, 2, document))),
    "karpathy annotation file not UTF-8": karpathy_case(lambda root: undecodable_document(root, 9, 12, INVALID_UTF8[3])),
}


def written_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_damaged_data_is_refused_with_one_line_and_nothing_written(tmp_path, case):
    dataset, expected = CASES[case](tmp_path)
    experiment = tmp_path / "experiment.toml"
    experiment.write_text(f'name = "damaged"\n[[datasets]]\n{dataset}\n[methods.class-bridge]\n')
    inputs, digest = written_files(tmp_path), digest_of(tmp_path)
    TALLY.tried.add(digest)
    cache = tmp_path / "cache"
    completed = run_itr(
        "run", str(experiment), "--results-dir", str(tmp_path / "results"), "--cache-dir", str(cache),
        env={"ITR_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    assert completed.code == 2, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(line.startswith(("error: ", "warning: ")) for line in completed.stderr.splitlines()), completed.stderr
    assert errors[0].startswith(f"error: {expected.file}:"), errors[0]
    for position in expected.positions:
        assert re.search(position, errors[0]), (position, errors[0])
    assert written_files(tmp_path) == inputs, "nothing but the case's own inputs"
    TALLY.one_line.add(digest)
