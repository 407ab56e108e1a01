"""Expanding experiment files into resolved, hashed jobs."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.experiment.plan import plan
from harness.job.job import Job, config_hash
from tests.helpers import write_experiment


BASE = 'name = "t"\nseeds = [0, 1]\n[[datasets]]\nname = "coco-demo"\n'


def test_one_job_per_method_dataset_and_seed(tmp_path, registry):
    _, jobs = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\n[methods.class-bridge]\n'), registry)
    assert [(job.label, job.seed) for job in jobs] == [("vse++", 0), ("vse++", 1), ("class-bridge", 0), ("class-bridge", 1)]


def test_overrides_merge_into_the_recipe_defaults(tmp_path, registry):
    _, [job, _] = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\nstages.main.epochs = 3\ntrain.lr = 1e-3\n'), registry)
    assert job.config.stages["main"].epochs == 3
    assert job.config.train.lr == 1e-3
    assert job.config.stages["main"].loss.name == "hardest-negative-triplet"


def test_resolved_config_fills_every_component_default(tmp_path, registry):
    _, [job, _] = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\n'), registry)
    assert job.config.text_encoder.options["word_dim"] == 300
    assert job.config.stages["main"].loss.model_dump() == {"name": "hardest-negative-triplet", "margin": 0.2, "mask_same_image": False}
    assert job.params()["stages.main.loss.margin"] == "0.2"


def test_a_label_can_reuse_a_recipe_with_other_settings(tmp_path, registry):
    text = BASE + '[methods.vse0]\nmethod = "vse++"\nstages.main.loss.name = "sum-hinge-triplet"\n'
    _, [job, _] = plan(write_experiment(tmp_path, text), registry)
    assert (job.label, job.method) == ("vse0", "vse++")
    assert job.components()["losses"] == "sum-hinge-triplet"


def test_config_hash_depends_on_seed_and_settings_not_on_label(tmp_path, registry):
    _, jobs_a = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\n'), registry)
    _, jobs_b = plan(write_experiment(tmp_path, BASE + '[methods.renamed]\nmethod = "vse++"\n'), registry)
    _, jobs_c = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\ntrain.lr = 1e-3\n'), registry)
    assert jobs_a[0].config_hash == jobs_b[0].config_hash
    assert jobs_a[0].config_hash != jobs_a[1].config_hash
    assert jobs_a[0].config_hash != jobs_c[0].config_hash


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == config_hash({"b": {"d": 3, "c": 2}, "a": 1})


def test_wrong_stage_loss_option_names_the_stage(tmp_path, registry):
    with pytest.raises(UserError, match=r"methods.vse\+\+.stages.main.loss: unknown option 'margn'"):
        plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\nstages.main.loss.margn = 0.1\n'), registry)


def test_a_job_survives_its_record_unchanged(tmp_path, registry):
    _, [job, _] = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\nstages.main.epochs = 2\n'), registry)
    assert Job.from_record(job.to_record(), "test") == job


def test_a_record_from_before_the_eval_section_moves_its_settings_there(tmp_path, registry):
    _, [job, _] = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\n'), registry)
    old = job.to_record()
    resolved = old.pop("config")
    evaluation = resolved.pop("eval")
    resolved["train"].update(eval_batch_size=64, score_chunk=32)
    old["resolved"] = resolved
    upgraded = Job.from_record(old, "old checkpoint")
    assert (upgraded.config.eval.batch_size, upgraded.config.eval.score_chunk) == (64, 32)
    assert upgraded.config.eval.device == evaluation["device"]


def test_an_unknown_protocol_is_refused_with_its_position(tmp_path, registry):
    text = 'name = "t"\n[[datasets]]\nname = "coco-demo"\nprotocols = ["full", "coco-1K"]\n[methods."vse++"]\n'
    with pytest.raises(UserError, match=r"datasets.0.protocols.1: unknown protocol 'coco-1K' \(did you mean 'coco-1k'\?\)"):
        plan(write_experiment(tmp_path, text), registry)
