"""`itr plan` on random documents: every one is either a plan or one error line with exit code 2,
never a traceback.

The documents are random TOML built from the words experiment files use (top-level keys, config
keys, dotted grid keys, registered names) and from arbitrary ones, so most get past the TOML
parser and deep into validation: datasets, methods, component options, grids, stages.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

WORDS = [
    "name", "seeds", "datasets", "methods", "tracking_uri", "method", "train", "lr", "batch_size", "lr_schedule",
    "lr_milestones", "epochs", "stages", "main", "loss", "restart", "text", "texts", "image_encoder", "text_encoder",
    "similarity_head", "backbones", "image", "u1", "embed_dim", "min_count", "generators", "positives", "negatives",
    "grid", "include", "exclude", "options", "path", "protocols", "label", "train.lr", "similarity_head.u1",
    "stages.main.epochs", "image_encoder.embed_dim", "generators.positives",
]
NAMES = [
    "coco-demo", "precomp", "karpathy", "vse++", "vse-inf", "scan", "ascl", "d2s-vse", "class-bridge", "cosine",
    "vse-gru", "ascl-fusion", "hardest-negative-triplet", "infonce", "full", "coco-1k", "multistep", "cosine",
    "truncate-half", "captions",
]
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)
keys = st.sampled_from(WORDS) | text
scalars = (
    st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.sampled_from(NAMES)
    | text
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=10
)
def mostly(good, anything=values):
    """Values that usually pass the outer checks, so validation goes deeper, else anything."""
    return good | good | anything


METHODS = ["vse++", "vse-inf", "scan", "ascl", "d2s-vse", "class-bridge"]
method_blocks = st.dictionaries(
    mostly(st.sampled_from(METHODS), text), st.dictionaries(keys, values, max_size=4), min_size=1, max_size=2
)
dataset_tables = st.fixed_dictionaries(
    {"name": mostly(st.sampled_from(["coco-demo", "precomp", "karpathy"]), st.sampled_from(NAMES) | text)},
    optional={
        "options": mostly(st.fixed_dictionaries({}, optional={"path": text, "annotations": text, "image_root": text})),
        "protocols": mostly(st.lists(st.sampled_from(["full", "coco-1k", "f30k-1k"]), min_size=1, max_size=2)),
        "test": mostly(st.sampled_from(["test", "dev"])),
    },
)
shaped_documents = st.fixed_dictionaries(
    {"name": mostly(st.just("x"), text), "datasets": st.lists(dataset_tables, min_size=1, max_size=2), "methods": method_blocks},
    optional={"seeds": mostly(st.lists(st.integers(-3, 3), min_size=1, max_size=2)), "tracking_uri": values, "epochs": values},
)
documents = shaped_documents | st.dictionaries(keys, values, max_size=5)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(key, ensure_ascii=False)} = {toml_value(item)}" for key, item in value.items()) + "}"


def toml_document(document: dict) -> str:
    return "".join(f"{json.dumps(key, ensure_ascii=False)} = {toml_value(value)}\n" for key, value in document.items())


def plan_outcome(source: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `itr plan` on a file holding `source`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.toml"
        path.write_text(source, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["plan", str(path)])
                code = 0
            except SystemExit as exc:
                code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_plan_or_one_error_line(source: str) -> None:
    code, out, err = plan_outcome(source)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err, err
    if code == 0:
        assert "jobs in experiment" in out, out
    else:
        assert code == 2 and len(errors) == 1, (code, err)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_plan_or_fail_in_one_line(document):
    assert_plan_or_one_error_line(toml_document(document))


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200))
def test_random_text_plans_or_fails_in_one_line(source):
    assert_plan_or_one_error_line(source)
