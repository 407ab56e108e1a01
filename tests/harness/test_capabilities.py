"""Optional capabilities: claimed by a marker, implemented or refused when the job is built."""

from __future__ import annotations

import pytest
from torch import nn

from harness.capabilities import READS_BATCH, READS_PAIRING_LABELS, READS_TEXT_SOURCE, STAGE_HOOK, check_capabilities, claims
from harness.errors import UserError


class BatchLoss(nn.Module):
    reads_batch = True

    def forward(self, scores, image_ids, *, batch):
        return scores.sum()


class ClaimsBatchOnly(nn.Module):
    reads_batch = True

    def forward(self, scores, image_ids):
        return scores.sum()


def test_a_component_claims_a_capability_by_its_marker_or_its_hook():
    assert claims(BatchLoss(), READS_BATCH) and not claims(nn.Identity(), READS_BATCH)

    class Hooked(nn.Module):
        def begin_stage(self, model):
            pass

    assert claims(Hooked(), STAGE_HOOK) and not claims(BatchLoss(), STAGE_HOOK)


def test_a_component_that_implements_what_it_claims_passes():
    check_capabilities(BatchLoss(), "loss", "methods.m.stages.main.loss")


def test_a_loss_claiming_the_batch_without_taking_it_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"^methods.m.stages.main.loss: ClaimsBatchOnly declares reads_batch = True \(ReadsBatch\) but its forward\(\) takes no keyword 'batch'$"):
        check_capabilities(ClaimsBatchOnly(), "loss", "methods.m.stages.main.loss")


def test_a_head_claiming_the_pairing_labels_needs_score_with_pairing():
    class Leaky(nn.Module):
        reads_pairing_labels = True

    with pytest.raises(UserError, match=r"declares reads_pairing_labels = True \(ReadsPairingLabels\) but has no method score_with_pairing\(\)"):
        check_capabilities(Leaky(), "similarity-head", "h")
    assert claims(Leaky(), READS_PAIRING_LABELS)


def test_a_text_encoder_claiming_text_sources_needs_a_source_keyword():
    class Deaf:
        reads_text_source = True

        def prepare(self, texts):
            return {}

    with pytest.raises(UserError, match=r"its prepare\(\) takes no keyword 'source'"):
        check_capabilities(Deaf(), "text-encoder", "t")
    assert claims(Deaf(), READS_TEXT_SOURCE)


@pytest.mark.parametrize("scale", [-0.1, float("nan"), "0.1", True])
def test_an_lr_scale_must_be_a_finite_number_at_least_zero(scale):
    encoder = nn.Sequential(nn.Linear(2, 2))
    encoder[0].lr_scale = scale
    with pytest.raises(UserError, match=r"t \(module '0'\): lr_scale must be a finite number ≥ 0"):
        check_capabilities(encoder, "text-encoder", "t")


def test_a_job_refuses_a_component_that_claims_what_it_lacks(tmp_path):
    """Through the real plugin manager and job layer: the error names the role."""
    from harness.job.assemble import assemble
    from harness.job.job import Job
    from harness.config.experiment_file import DatasetEntry
    from harness.job.resolve import resolve_method
    from harness.conformance.synthetic import SyntheticData
    from harness.hookspecs import hookimpl
    from harness.plugin_manager import PluginHost

    class Plugin:
        @hookimpl
        def register_losses(self, register):
            register("claims-batch", lambda ctx: ClaimsBatchOnly())

    registry = PluginHost(extra_plugins=[Plugin()]).registry
    method, config = resolve_method(registry, "vse++", {"stages": {"main": {"loss": {"name": "claims-batch"}}}}, "f.toml: methods.vse++")
    job = Job.create("vse++", method, DatasetEntry(name="coco-demo"), 0, config)
    with pytest.raises(UserError, match=r"^methods.vse\+\+.stages.main.loss: ClaimsBatchOnly declares reads_batch"):
        assemble(job, registry, SyntheticData(seed=0).context())
