"""`itr check` as a user meets it: a table, exit 0 / 1 / 2, one-line errors with a hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli import main

TOYS = Path(__file__).with_name("toy_components.py")


def itr_check(capsys, *args: str) -> tuple[int, str, str]:
    """Run `itr` in process; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture
def toys_dir(tmp_path):
    shutil.copy(TOYS, tmp_path / "toys.py")
    return tmp_path


def test_a_passing_component_prints_the_table_and_exits_0(capsys):
    code, out, err = itr_check(capsys, "check", "similarity-head:cosine")
    assert code == 0, out + err
    assert out.splitlines()[0].split() == ["component", "check", "result", "reason"]
    assert "leakage/batch-order" in out and "FAIL" not in out
    assert "similarity-head:cosine: 8 checks, 6 passed, 0 failed, 2 skipped" in err


def test_an_unqualified_name_is_found_in_its_kind(capsys):
    code, out, _ = itr_check(capsys, "check", "ascl-infonce")
    assert code == 0 and "loss:ascl-infonce" in out


def test_a_failing_check_exits_1_with_the_check_named(capsys, toys_dir):
    code, out, err = itr_check(capsys, "--plugins-dir", str(toys_dir), "check", "toy-position-bias")
    assert code == 1
    row = next(line for line in out.splitlines() if "leakage/batch-order" in line)
    assert "FAIL" in row and "reordered" in row
    assert "2 failed" in err  # reordering, and evaluation's chunks (positions restart per chunk)


def test_the_ascl_leaky_option_exits_1_and_the_default_exits_0(capsys):
    code, out, _ = itr_check(
        capsys, "check", "ascl-fusion", "--option", "embed_dim=32", "--option", "global_pooling=ground-truth-partner"
    )
    assert code == 1
    assert sum("FAIL" in line and "leakage/" in line for line in out.splitlines()) == 3
    code, out, _ = itr_check(capsys, "check", "ascl-fusion", "--option", "embed_dim=32")
    assert code == 0 and "FAIL" not in out


def test_a_method_takes_dotted_overrides(capsys):
    code, out, _ = itr_check(
        capsys, "check", "method:scan", "--option", "image_encoder.embed_dim=16", "--option", "text_encoder.embed_dim=16"
    )
    assert code == 0, out
    assert "method:scan" in out and "pipeline" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cosin"], "unknown component or method 'cosin' (did you mean 'cosine'?)"),
        (["loss:hardest-negative-triplett"], "unknown loss 'hardest-negative-triplett' (did you mean 'hardest-negative-triplet'?)"),
        (["vse-inf-bigru"], "say which: method:vse-inf-bigru or text-encoder:vse-inf-bigru"),
        (["coco-demo"], "a dataset has no contract checks"),
        (["loss:ascl-infonce", "--option", "temprature=1"], "unknown option 'temprature' for loss 'ascl-infonce' (did you mean 'temperature'?)"),
        (["method:ascl", "--option", "similarity_head.global_pooling=gt"], "input should be 'pair' or 'ground-truth-partner'"),
        (["cosine", "--option", "normalize"], "expected KEY=VALUE"),
    ],
    ids=["typo", "typo-in-kind", "ambiguous", "dataset", "option-typo", "option-value", "option-syntax"],
)
def test_bad_input_is_one_line_with_exit_2(capsys, args, message):
    code, out, err = itr_check(capsys, "check", *args)
    assert code == 2
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_a_component_of_a_plugin_that_failed_to_load_names_the_plugin_and_its_error(capsys, tmp_path):
    (tmp_path / "myheads.py").write_text("import itr_no_such_dependency\n")
    code, out, err = itr_check(capsys, "--plugins-dir", str(tmp_path), "check", "my-head")
    assert code == 2 and out == "" and "Traceback" not in err
    warning, error = err.strip().splitlines()
    assert warning.startswith("warning: plugin 'myheads' skipped")
    assert error.startswith("error: itr check: unknown component or method 'my-head'")
    assert error.endswith(
        "; plugin 'myheads' did not load (import failed: ModuleNotFoundError: No module named 'itr_no_such_dependency')"
    )
