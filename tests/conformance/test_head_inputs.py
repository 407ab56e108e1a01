"""A head checked on its own is fed each kind of embeddings it declares (``accepts``), each kind a
block of rows; a head that declares none, the first kind it scores."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.conformance import run_checks
from harness.embeddings import VectorSets
from harness.hookspecs import hookimpl
from harness.plugin_manager import PluginHost
from tests.conformance import toy_components


class MeanCosineHead(nn.Module):
    """Cosine of global vectors, or of the means of vector sets: it scores both, and says so."""

    accepts = ("vectors", "sets")

    def __init__(self, ctx) -> None:
        super().__init__()

    def forward(self, images: torch.Tensor | VectorSets, texts: torch.Tensor | VectorSets) -> torch.Tensor:
        images, texts = (x.mean() if isinstance(x, VectorSets) else x for x in (images, texts))
        return F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).T


class DeclaringPlugin:
    @hookimpl
    def register_similarity_heads(self, register):
        register("mean-cosine", MeanCosineHead)


@pytest.fixture(scope="module")
def registry():
    return PluginHost(extra_plugins=[toy_components, DeclaringPlugin()]).registry


def blocks(report) -> dict[str, list[str]]:
    """component -> the statuses of its rows, in order."""
    found: dict[str, list[str]] = {}
    for result in report:
        found.setdefault(result.component, []).append(result.status)
    return found


def test_a_head_is_checked_on_each_input_kind_it_declares(registry):
    report = run_checks(registry, "similarity-head:mean-cosine")
    assert list(blocks(report)) == ["similarity-head:mean-cosine on vectors", "similarity-head:mean-cosine on sets"]
    assert report.ok, report.table()
    assert "from vector sets [n, 6, 32]" in report.get("interface", "similarity-head:mean-cosine on sets").reason


def test_a_declared_kind_the_head_cannot_score_fails_that_kinds_interface(registry):
    report = run_checks(registry, "similarity-head:toy-claims-sets")
    statuses = blocks(report)
    assert set(statuses["similarity-head:toy-claims-sets on vectors"]) <= {"pass", "skip"}
    assert statuses["similarity-head:toy-claims-sets on sets"][0] == "FAIL"
    reason = report.get("interface", "similarity-head:toy-claims-sets on sets").reason
    assert reason.startswith("it accepts 'sets', but scoring vector sets [n, 6, 32] raised")


def test_a_declaration_naming_no_input_kind_fails_the_interface_with_the_closest(registry):
    report = run_checks(registry, "similarity-head:toy-misnamed-inputs")
    assert report.get("interface").status == "FAIL"
    assert "accepts names an unknown input kind 'set' (did you mean 'sets'?)" in report.get("interface").reason


def test_a_head_without_a_declaration_is_checked_once_on_the_first_kind_it_scores(registry):
    report = run_checks(registry, "similarity-head:cosine")
    assert list(blocks(report)) == ["similarity-head:cosine"]
    assert "from global vectors" in report.get("interface").reason
