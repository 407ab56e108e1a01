"""The leakage checks catch heads whose test scores depend on the batch or on the answer."""

from __future__ import annotations

import pytest

from harness.conformance import run_checks
from harness.plugin_manager import PluginHost
from tests.conformance import toy_components

ASCL_TINY = {"embed_dim": 32}


@pytest.fixture(scope="module")
def registry():
    return PluginHost(extra_plugins=[toy_components]).registry


def failures(report) -> dict[str, str]:
    return {result.check: result.reason for result in report.failed}


def test_a_head_normalising_over_the_batch_fails_batch_composition(registry):
    report = run_checks(registry, "similarity-head:toy-batch-softmax")
    assert set(failures(report)) == {"leakage/batch-composition"}
    assert "a pair's score changed when the batch was scored in 3 × 3 blocks" in failures(report)["leakage/batch-composition"]


def test_a_head_whose_scores_depend_on_batch_order_fails_batch_order(registry):
    report = run_checks(registry, "similarity-head:toy-position-bias")
    assert "leakage/batch-order" in failures(report)
    assert "reordered" in failures(report)["leakage/batch-order"]


def test_a_head_reading_the_pairing_labels_fails_pairing_labels(registry):
    report = run_checks(registry, "similarity-head:toy-pairing-reader")
    assert set(failures(report)) == {"leakage/pairing-labels"}
    assert "reads_pairing_labels" in failures(report)["leakage/pairing-labels"]


def test_ascl_ground_truth_partner_pooling_is_caught_by_every_leak_check(registry):
    report = run_checks(registry, "similarity-head:ascl-fusion", {**ASCL_TINY, "global_pooling": "ground-truth-partner"})
    assert set(failures(report)) == {"leakage/pairing-labels", "leakage/batch-order", "leakage/batch-composition"}
    assert "ground-truth pairing" in failures(report)["leakage/pairing-labels"]


def test_ascl_default_pair_pooling_passes(registry):
    report = run_checks(registry, "similarity-head:ascl-fusion", ASCL_TINY)
    report.assert_ok()
    assert report.get("leakage/batch-order").status == "pass"


def test_the_ascl_method_with_the_leaky_option_fails_its_head_checks(registry):
    overrides = {f"{role}.embed_dim": 32 for role in ("image_encoder", "text_encoder", "similarity_head")}
    report = run_checks(registry, "method:ascl", {**overrides, "similarity_head.global_pooling": "ground-truth-partner"})
    failed = {(result.component, result.check) for result in report.failed}
    assert failed == {
        ("similarity-head:ascl-fusion", "leakage/pairing-labels"),
        ("similarity-head:ascl-fusion", "leakage/batch-order"),
        ("similarity-head:ascl-fusion", "leakage/batch-composition"),
    }
    assert report.exit_code == 1
