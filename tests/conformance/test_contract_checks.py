"""Each of the other checks catches the contract violation it exists for, naming it."""

from __future__ import annotations

import pytest

from harness.conformance import run_checks
from harness.plugin_manager import PluginHost
from tests.conformance import toy_components


@pytest.fixture(scope="module")
def registry():
    return PluginHost(extra_plugins=[toy_components]).registry


def failed(report) -> dict[str, str]:
    return {result.check: result.reason for result in report.failed}


def test_an_encoder_centred_on_its_batch_fails_batch_composition(registry):
    report = run_checks(registry, "image-encoder:toy-batch-centred")
    assert "leakage/batch-composition" in failed(report)
    assert "item 4 embedded alone vs in the batch" in failed(report)["leakage/batch-composition"]


def test_state_outside_the_state_dict_fails_the_checkpoint_round_trip(registry):
    report = run_checks(registry, "image-encoder:toy-unsaved-projection")
    assert set(failed(report)) == {"checkpoint"}
    assert "after save and load" in failed(report)["checkpoint"]


def test_a_parameter_no_gradient_reaches_fails_gradients(registry):
    report = run_checks(registry, "similarity-head:toy-unused-parameter")
    assert set(failed(report)) == {"gradients"}
    assert "forgotten.weight" in failed(report)["gradients"]


def test_a_loss_rewarding_the_wrong_ranking_fails_ranking_direction(registry):
    report = run_checks(registry, "loss:toy-rewarding")
    assert "ranking-direction" in failed(report)
    assert "it must fall as the positives rise" in failed(report)["ranking-direction"]


def test_a_loss_with_its_own_trainable_parameters_fails_gradients(registry):
    report = run_checks(registry, "loss:toy-learnable-temperature")
    assert set(failed(report)) == {"gradients"}
    assert "log_temperature" in failed(report)["gradients"] and "never change" in failed(report)["gradients"]


def test_a_generator_drawing_from_the_global_rng_fails_determinism(registry):
    report = run_checks(registry, "sample-generator:toy-global-noise")
    assert set(failed(report)) == {"determinism"}
    assert "only from the rng it is given" in failed(report)["determinism"]


def test_checks_after_a_failed_interface_are_skipped_not_failed(registry):
    report = run_checks(registry, "similarity-head:toy-batch-softmax", {"temperature": float("nan")})
    assert [r.status for r in report][0] == "FAIL" and "NaN" in report.get("interface").reason
    assert {r.status for r in list(report)[1:]} == {"skip"}


def test_a_method_reports_each_component_it_resolves_to(registry):
    report = run_checks(registry, "method:vse++", {"image_encoder.embed_dim": 16, "text_encoder.embed_dim": 16})
    components = {result.component for result in report}
    assert components == {
        "image-encoder:vse-linear",
        "text-encoder:vse-gru",
        "similarity-head:cosine",
        "loss:hardest-negative-triplet",
        "image-backbone:efficientnet-lite0",
        "text-backbone:minilm",
        "method:vse++",
    }
    assert report.ok


def test_a_method_checks_a_swapped_in_component_with_its_options(registry):
    report = run_checks(
        registry,
        "method:vse++",
        {"image_encoder.embed_dim": 16, "text_encoder.embed_dim": 16, "stages.main.loss.name": "toy-rewarding"},
    )
    assert {(r.component, r.check) for r in report.failed} == {("loss:toy-rewarding", "ranking-direction")}


def test_the_report_table_names_component_check_result_and_reason(registry):
    report = run_checks(registry, "loss:toy-rewarding")
    table = report.table().splitlines()
    assert table[0].split() == ["component", "check", "result", "reason"]
    row = next(line for line in table if "ranking-direction" in line)
    assert row.startswith("loss:toy-rewarding") and " FAIL " in row
    with pytest.raises(AssertionError, match="loss:toy-rewarding ranking-direction: the loss is"):
        report.assert_ok()
