"""Shared by the experiment-file tests: the installed plugins' registry."""

from __future__ import annotations

import pytest

from harness.plugin_manager import PluginHost


@pytest.fixture(scope="module")
def registry():
    return PluginHost().registry
