"""Text sources in experiment files: named per job, resolved with their defaults, checked per stage."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.experiment.plan import plan
from tests.helpers import write_experiment

BASE = 'name = "t"\n[[datasets]]\nname = "coco-demo"\n'


def test_a_stage_trains_on_captions_unless_it_names_a_text_source(tmp_path, registry):
    _, [job] = plan(write_experiment(tmp_path, BASE + '[methods."vse++"]\n'), registry)
    assert job.config.stages["main"].text == "captions" and job.config.model_dump()["texts"] == {}


def test_text_sources_are_resolved_with_their_component_defaults(tmp_path, registry):
    text = BASE + '[methods.v]\nmethod = "vse++"\ntexts.long = { name = "dense-text", max_words = 50 }\nstages.main.text = "long"\n'
    _, [job] = plan(write_experiment(tmp_path, text), registry)
    assert job.config.model_dump()["texts"]["long"]["max_words"] == 50 and job.config.model_dump()["texts"]["long"]["fallback"] == "siblings"
    assert job.params()["stages.main.text"] == "long"


def test_a_stage_naming_an_undefined_text_source_is_refused_with_a_hint(tmp_path, registry):
    text = BASE + '[methods.v]\nmethod = "vse++"\ntexts.dense = { name = "dense-text" }\nstages.main.text = "dens"\n'
    with pytest.raises(UserError, match=r"methods.v: stages.main.text: no text source 'dens' \(did you mean 'dense'\?\); known: captions, dense"):
        plan(write_experiment(tmp_path, text), registry)


def test_an_unknown_text_source_component_or_option_is_refused(tmp_path, registry):
    with pytest.raises(UserError, match="unknown text-source 'dense-txt'"):
        plan(write_experiment(tmp_path, BASE + '[methods.v]\nmethod = "vse++"\ntexts.dense = { name = "dense-txt" }\n'), registry)
    with pytest.raises(UserError, match="methods.v.texts.dense: unknown option 'paht'"):
        plan(write_experiment(tmp_path, BASE + '[methods.v]\nmethod = "vse++"\ntexts.dense = { name = "dense-text", paht = "x" }\n'), registry)


def test_generated_positives_need_a_stage_on_captions(tmp_path, registry):
    text = BASE + '[methods.a]\nmethod = "ascl"\ntexts.dense = { name = "dense-text" }\nstages.main.text = "dense"\n'
    with pytest.raises(UserError, match="generated positives rewrite captions"):
        plan(write_experiment(tmp_path, text), registry)
