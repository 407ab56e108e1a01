"""Plugin loading: entry points, loose files, isolation of broken plugins, selection by env."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import harness
from harness.errors import UserError
from harness.hookspecs import hookimpl
from harness.plugin_manager import PluginHost
from tests.helpers import itr_in_process

BUILTINS = {"backbones", "class-bridge", "datasets", "heads", "vse"}


def write_plugin(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text("from harness.hookspecs import hookimpl\n" + textwrap.dedent(body))
    return path


def test_builtins_register_through_the_entry_point_group():
    host = PluginHost()
    assert BUILTINS <= set(host.plugins)
    assert all(host.plugins[name].source.startswith("entry point") for name in BUILTINS)
    assert host.plugins["vse"].version == harness.__version__
    assert {"vse++", "class-bridge"} <= set(host.registry.names("method"))


def test_components_know_the_plugin_that_registered_them():
    host = PluginHost()
    assert host.registry.get("loss", "hardest-negative-triplet").plugin == "vse"
    assert host.registry.get("image-backbone", "efficientnet-lite0").plugin == "backbones"


def test_broken_plugin_is_reported_and_the_others_still_load(tmp_path, capsys):
    write_plugin(tmp_path, "broken", "import itr_no_such_dependency\n")
    host = PluginHost(plugins_dir=tmp_path)
    assert "ModuleNotFoundError" in host.plugins["broken"].error
    assert "vse++" in host.registry.names("method")
    assert "plugin 'broken' skipped" in capsys.readouterr().err


def test_strict_plugins_makes_a_broken_plugin_fatal(tmp_path):
    write_plugin(tmp_path, "broken", "raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match="plugin 'broken'.*RuntimeError: boom"):
        PluginHost(plugins_dir=tmp_path, strict=True)


def test_plugin_raising_while_registering_is_isolated(tmp_path):
    write_plugin(
        tmp_path,
        "half",
        """
        @hookimpl
        def register_losses(register):
            register("half-loss", "x:y")
            raise ValueError("second registration failed")
        """,
    )
    host = PluginHost(plugins_dir=tmp_path)
    assert "register_losses raised ValueError" in host.plugins["half"].error
    assert "half-loss" not in host.registry.names("loss")


def test_plugins_dir_component_is_registered_with_its_plugin_name(tmp_path):
    write_plugin(
        tmp_path,
        "extra",
        """
        @hookimpl
        def register_losses(register):
            register("extra-loss", "itr_extra_module:Loss")
        """,
    )
    host = PluginHost(plugins_dir=tmp_path)
    assert host.registry.get("loss", "extra-loss").plugin == "extra"
    assert host.plugins["extra"].hooks == ["register_losses"]


def test_duplicate_component_across_plugins_names_both(tmp_path):
    write_plugin(
        tmp_path,
        "copycat",
        """
        @hookimpl
        def register_methods(register):
            register("vse++", "itr_copycat:RECIPE")
        """,
    )
    with pytest.raises(UserError, match="method 'vse\\+\\+' is registered twice: by plugin 'vse' and by plugin 'copycat'"):
        PluginHost(plugins_dir=tmp_path)


def test_encoder_registration_requires_a_kind():
    class NoKind:
        @hookimpl
        def register_encoders(self, register):
            register("mystery", "x:y")

    with pytest.raises(UserError, match="register_encoders needs kind="):
        PluginHost(entry_points=False, extra_plugins=[NoKind()])


def test_itr_load_plugins_selects_entry_point_plugins(monkeypatch):
    monkeypatch.setenv("ITR_LOAD_PLUGINS", "heads, datasets")
    assert set(PluginHost().plugins) == {"heads", "datasets"}


def test_itr_disable_plugins_skips_entry_point_plugins(monkeypatch):
    monkeypatch.setenv("ITR_DISABLE_PLUGINS", "vse")
    host = PluginHost()
    assert "vse" not in host.plugins
    assert "vse++" not in host.registry.names("method")
    assert "class-bridge" in host.registry.names("method")


MISSPELT = """
@hookimpl
def register_loss(register):
    register("typo-loss", "itr_typo:Loss")
"""


def test_a_hook_with_no_specification_refuses_its_plugin_naming_plugin_and_hook(tmp_path, capsys):
    write_plugin(tmp_path, "typo", MISSPELT)
    host = PluginHost(plugins_dir=tmp_path)
    error = host.plugins["typo"].error
    assert "hook 'register_loss' is not an itr-harness hook (did you mean 'register_losses'?)" in error
    assert "typo-loss" not in host.registry.names("loss")
    assert host.plugins["typo"].hooks == [], "a refused plugin lists no hooks"
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "typo" in line]
    assert warning.startswith("warning: plugin 'typo' skipped: hook 'register_loss'")
    assert "vse++" in host.registry.names("method"), "the other plugins still load"


def test_a_misspelt_hook_is_one_line_from_the_cli_and_fatal_with_strict_plugins(tmp_path, capsys):
    from harness.cli import main

    write_plugin(tmp_path, "typo", MISSPELT)
    with pytest.raises(SystemExit) as stopped:
        main(["--strict-plugins", "--plugins-dir", str(tmp_path), "plugins"])
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: plugin 'typo' (file ") and "hook 'register_loss' is not an itr-harness hook" in line


def test_observers_are_called_through_the_typed_facade(tmp_path):
    seen = []

    class Watcher:
        @hookimpl
        def before_job(self, job):
            seen.append(("before", job))

        @hookimpl
        def after_job(self, job, metrics):
            seen.append(("after", job, metrics))

    host = PluginHost(entry_points=False, extra_plugins=[Watcher()])
    host.observers.before_job("job-a")
    host.observers.after_job("job-a", {"full/rsum": 1.0})
    assert seen == [("before", "job-a"), ("after", "job-a", {"full/rsum": 1.0})]
    assert not hasattr(host, "hook"), "the raw pluggy hook relay is not handed out"


def test_itr_plugins_lists_the_built_in_protocols_as_components(capsys):
    from harness.cli import main

    main(["plugins"])
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("protocols ")]
    assert "register_protocols" in row
    assert all(f"protocol:{name}" in row for name in ("full", "coco-1k", "coco-5k", "f30k-1k"))


def test_debug_shows_the_import_traceback_of_a_plugin_that_fails_to_load(tmp_path):
    write_plugin(tmp_path, "broken", "def load():\n    import itr_no_such_dependency\nload()\n")
    plain = itr_in_process("--plugins-dir", str(tmp_path), "plugins")
    debug = itr_in_process("--debug", "--plugins-dir", str(tmp_path), "plugins")
    assert plain.code == debug.code == 0
    assert "Traceback" not in plain.stderr and "plugin 'broken' skipped" in plain.stderr
    assert f"plugin 'broken' (file {tmp_path / 'broken.py'}) failed:\nTraceback (most recent call last):" in debug.stderr
    assert 'broken.py", line 3' in debug.stderr and "ModuleNotFoundError: No module named 'itr_no_such_dependency'" in debug.stderr


BROKEN_FACTORIES = """
@hookimpl
def register_losses(register):
    register("ghost-loss", "itr_no_such_module:Loss")
    register("boom-loss", "itr_test_boom:Loss")
    register("fine-loss", "itr_test_boom_free:Loss")
"""


def test_plugins_check_imports_every_factory_and_names_the_broken_ones(tmp_path, monkeypatch):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "itr_test_boom.py").write_text("raise RuntimeError('boom')\n")
    (modules / "itr_test_boom_free.py").write_text("class Loss:\n    pass\n")
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setenv("ITR_LOAD_PLUGINS", "")
    write_plugin(tmp_path, "lossy", BROKEN_FACTORIES)
    listed = itr_in_process("--plugins-dir", str(tmp_path), "plugins")
    assert listed.code == 0 and "itr_test_boom" not in sys.modules, "without --check nothing is imported"
    checked = itr_in_process("--plugins-dir", str(tmp_path), "plugins", "--check")
    assert checked.code == 2
    broken = [line for line in checked.stderr.splitlines() if line.startswith("BROKEN")]
    assert broken == [
        "BROKEN loss:ghost-loss: loss 'ghost-loss' from plugin 'lossy': cannot import 'itr_no_such_module:Loss' "
        "(ModuleNotFoundError: No module named 'itr_no_such_module')",
        "BROKEN loss:boom-loss: loss 'boom-loss' from plugin 'lossy': cannot import 'itr_test_boom:Loss' (RuntimeError: boom)",
    ]
    assert checked.stderr.strip().endswith("1 of 3 component factories import; 2 broken, 0 plugins failed to load")


def test_plugins_check_passes_on_the_installed_plugins():
    checked = itr_in_process("plugins", "--check")
    assert checked.code == 0, checked.stderr
    assert checked.stderr.strip().endswith("broken, 0 plugins failed to load") and " 0 broken" in checked.stderr
