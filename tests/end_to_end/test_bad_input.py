"""Bad input, one case per kind: exit code 2, one line naming the culprit, no traceback, and
nothing written (no MLflow store, no results files).

Each case builds its broken input in a temporary folder and runs the real command line
(`harness.cli.main`, in this process so the table stays fast) with the real plugin manager.
"""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness.cli import main
from tests.helpers import REPO_ROOT

DEMO = REPO_ROOT / "baselines" / "datasets" / "coco_demo"
PLUGIN_HEADER = "from harness.hookspecs import hookimpl\n"


@dataclass
class Refusal:
    """The outcome of one command: exit code and stderr."""

    code: int
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture
def itr_here(capsys, monkeypatch):
    """Run `itr ARGS` in this process: its exit code and what it printed on stderr."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(*args: str) -> Refusal:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return Refusal(code, capsys.readouterr().err)

    return run


# -- building broken inputs ----------------------------------------------------------------


def experiment(folder: Path, body: str, dataset: str = 'name = "coco-demo"', header: str = "") -> Path:
    """An experiment file with one dataset table and `body` (method tables) after it."""
    path = folder / "experiment.toml"
    path.write_text(f'name = "bad"\n{header}[[datasets]]\n{dataset}\n{body}')
    return path


VSE = '[methods."vse++"]\n'


def precomp_dir(folder: Path, features: np.ndarray, captions_per_image: int = 5) -> Path:
    """A precomp directory whose test split holds `features` and generated captions."""
    root = folder / "precomp"
    root.mkdir()
    np.save(root / "test_ims.npy", features)
    rows = features.shape[0] if features.ndim else 0
    (root / "test_caps.txt").write_text("".join(f"a photo of thing {i}\n" for i in range(rows * captions_per_image)))
    return root


def precomp_experiment(folder: Path, features: np.ndarray) -> Path:
    root = precomp_dir(folder, features)
    return experiment(folder, "[methods.class-bridge]\n", f'name = "precomp"\noptions = {{ path = {json.dumps(str(root))} }}')


def demo_copy(folder: Path) -> Path:
    """A writable copy of the demo set in the Karpathy layout (its JSON file)."""
    shutil.copytree(DEMO, folder / "demo")
    return folder / "demo" / "dataset_coco.json"


def karpathy_experiment(folder: Path, annotations: Path, protocols: str = '["full"]') -> Path:
    options = f"{{ annotations = {json.dumps(str(annotations))}, image_root = {json.dumps(str(annotations.parent))} }}"
    return experiment(folder, "[methods.class-bridge]\n", f'name = "karpathy"\nprotocols = {protocols}\noptions = {options}')


def first_test_image(annotations: Path) -> Path:
    record = next(r for r in json.loads(annotations.read_text())["images"] if r["split"] == "test")
    return annotations.parent / record.get("filepath", "") / record["filename"]


def plugins_dir(folder: Path, name: str, source: str) -> Path:
    target = folder / "plugins"
    target.mkdir(exist_ok=True)
    (target / f"{name}.py").write_text(PLUGIN_HEADER + source)
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the cases: (build the input, return the command line) -> what the error line must name ----

Case = Callable[[Path], list[str]]


def _toml_syntax(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, '[methods."vse++"\nstages.main.epochs = 1\n'))]


def _top_level_key(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE, header="seed = [1]\n"))]


def _method(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, '[methods."vse+"]\n'))]


def _component(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE + 'image_encoder.name = "vse-linaer"\n'))]


def _grid_key(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE + '[methods."vse++".grid]\n"train.lrr" = [1e-4, 2e-4]\n'))]


def _option_name(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE + "text_encoder.min_cont = 2\n"))]


def _dataset(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE, 'name = "coco-dem"'))]


def _option_type(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE + 'train.batch_size = "big"\n'))]


def _negative_lr(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE + "train.lr = -1e-4\n"))]


def _empty_seed_list(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE, header="seeds = []\n"))]


def _empty_milestone_list(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, VSE + 'train.lr_schedule = "multistep"\ntrain.lr_milestones = []\n'))]


def _u1_out_of_range(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, "[methods.ascl]\nsimilarity_head.u1 = 1.5\n"))]


def _missing_dataset_path(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, "[methods.class-bridge]\n", f'name = "precomp"\noptions = {{ path = {json.dumps(str(tmp / "nowhere"))} }}'))]


def _missing_annotations(tmp: Path) -> list[str]:
    return ["run", str(karpathy_experiment(tmp, tmp / "dataset_flickr30k.json"))]


def _precomp_rank(tmp: Path) -> list[str]:
    return ["run", str(precomp_experiment(tmp, np.zeros(12, np.float32)))]


def _precomp_dtype(tmp: Path) -> list[str]:
    return ["run", str(precomp_experiment(tmp, np.zeros((12, 8), np.int64)))]


def _nan_features(tmp: Path) -> list[str]:
    features = np.ones((12, 4, 8), np.float32)
    features[7, 2, 3] = np.nan
    return ["run", str(precomp_experiment(tmp, features))]


def _inf_features(tmp: Path) -> list[str]:
    features = np.ones((12, 8), np.float32)
    features[3, 0] = -np.inf
    return ["run", str(precomp_experiment(tmp, features))]


def _four_captions(tmp: Path) -> list[str]:
    """f30k-1k needs 1,000 test images with 5 captions each; image 7 has 4."""
    image = tmp / "one.png"
    shutil.copyfile(next(DEMO.rglob("*.png"), None) or next(DEMO.rglob("*.jpg")), image)
    images = [
        {"filename": image.name, "split": "test", "imgid": i, "sentences": [{"raw": f"caption {j}"} for j in range(4 if i == 7 else 5)]}
        for i in range(1000)
    ]
    annotations = tmp / "dataset_flickr30k.json"
    annotations.write_text(json.dumps({"images": images}))
    return ["run", str(karpathy_experiment(tmp, annotations, protocols='["f30k-1k"]'))]


def _corrupt_image(tmp: Path) -> list[str]:
    annotations = demo_copy(tmp)
    first_test_image(annotations).write_bytes(b"<html>404 Not Found</html>" * 40)
    return ["run", str(karpathy_experiment(tmp, annotations))]


def _truncated_image(tmp: Path) -> list[str]:
    annotations = demo_copy(tmp)
    image = first_test_image(annotations)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return ["run", str(karpathy_experiment(tmp, annotations))]


def _empty_split(tmp: Path) -> list[str]:
    return ["run", str(precomp_experiment(tmp, np.zeros((0, 36, 8), np.float32)))]


def _no_test_images(tmp: Path) -> list[str]:
    annotations = demo_copy(tmp)
    document = json.loads(annotations.read_text())
    for record in document["images"]:
        record["split"] = "train"
    annotations.write_text(json.dumps(document))
    return ["run", str(karpathy_experiment(tmp, annotations))]


def _plugin_import_fails(tmp: Path) -> list[str]:
    folder = plugins_dir(tmp, "broken", "import itr_no_such_dependency\n")
    return ["--plugins-dir", str(folder), "run", str(experiment(tmp, "[methods.broken-method]\n"))]


def _plugin_import_fails_strict(tmp: Path) -> list[str]:
    folder = plugins_dir(tmp, "broken", "import itr_no_such_dependency\n")
    return ["--strict-plugins", "--plugins-dir", str(folder), "run", str(experiment(tmp, VSE))]


def _plugin_registers_twice(tmp: Path) -> list[str]:
    source = '@hookimpl\ndef register_methods(register):\n    register("vse++", "plugins.nowhere:RECIPE")\n'
    folder = plugins_dir(tmp, "copycat", source)
    return ["--plugins-dir", str(folder), "run", str(experiment(tmp, VSE))]


def _unreachable_tracking_uri(tmp: Path) -> list[str]:
    return ["run", str(experiment(tmp, "[methods.class-bridge]\n")), "--tracking-uri", f"http://127.0.0.1:{free_port()}"]


CASES: dict[str, tuple[Case, list[str]]] = {
    # Every expected string appears in the one error line; "{tmp}" is the case's folder.
    "toml syntax": (_toml_syntax, ["{tmp}/experiment.toml", "invalid TOML", "line 4"]),
    "unknown top-level key": (_top_level_key, ["seed: unknown key 'seed' (did you mean 'seeds'?)"]),
    "unknown method": (_method, ["unknown method 'vse+' (did you mean 'vse++'?)"]),
    "unknown component": (_component, ["methods.vse++.image_encoder", "'vse-linaer' (did you mean 'vse-linear'?)"]),
    "unknown grid key": (_grid_key, ["train.lrr", "unknown key 'lrr' (did you mean 'lr'?)"]),
    "unknown option": (_option_name, ["methods.vse++.text_encoder", "unknown option 'min_cont'", "(did you mean 'min_count'?)"]),
    "unknown dataset": (_dataset, ["unknown dataset 'coco-dem' (did you mean 'coco-demo'?)"]),
    "wrong option type": (_option_type, ["methods.vse++: train.batch_size", "valid integer", "'big'"]),
    "negative lr": (_negative_lr, ["methods.vse++: train.lr", "greater than 0", "-0.0001"]),
    "empty seed list": (_empty_seed_list, ["seeds: list should have at least 1 item"]),
    "empty milestone list": (_empty_milestone_list, ["methods.vse++: train", "needs lr_milestones, a non-empty list"]),
    "u1 outside [0, 1]": (_u1_out_of_range, ["methods.ascl.similarity_head.u1", "less than or equal to 1", "1.5"]),
    "missing dataset path": (_missing_dataset_path, ["{tmp}/nowhere: precomp directory not found"]),
    "missing annotation file": (_missing_annotations, ["{tmp}/dataset_flickr30k.json", "not found"]),
    "precomp wrong rank": (_precomp_rank, ["{tmp}/precomp/test_ims.npy", "rank 1"]),
    "precomp wrong dtype": (_precomp_dtype, ["{tmp}/precomp/test_ims.npy", "dtype int64; expected float32"]),
    "NaN in features": (_nan_features, ["{tmp}/precomp/test_ims.npy", "NaN or inf", "image row 7"]),
    "inf in features": (_inf_features, ["{tmp}/precomp/test_ims.npy", "NaN or inf", "image row 3"]),
    "4 captions where the protocol needs 5": (_four_captions, ["protocol 'f30k-1k'", "needs 5 captions per image, image 7 has 4"]),
    "corrupt image file": (_corrupt_image, ["{tmp}/demo/", "not a readable image"]),
    "truncated image file": (_truncated_image, ["{tmp}/demo/", "truncated JPEG file"]),
    "empty split (no rows)": (_empty_split, ["{tmp}/precomp/test_ims.npy", "empty split"]),
    "empty split (no images)": (_no_test_images, ["{tmp}/demo/dataset_coco.json", "no images in split 'test'"]),
    "plugin import fails": (_plugin_import_fails, ["unknown method 'broken-method'", "plugin 'broken' did not load", "itr_no_such_dependency"]),
    "plugin import fails (strict)": (_plugin_import_fails_strict, ["plugin 'broken'", "{tmp}/plugins/broken.py", "itr_no_such_dependency"]),
    "plugin registers a name twice": (_plugin_registers_twice, ["method 'vse++' is registered twice", "plugin 'copycat'"]),
    "unreachable tracking URI": (_unreachable_tracking_uri, ["http://127.0.0.1:", "does not answer"]),
}


def written_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_refused_with_one_line_and_nothing_written(itr_here, tmp_path, case):
    build, expected = CASES[case]
    results = tmp_path / "results"
    args = build(tmp_path)
    inputs = written_files(tmp_path)
    refusal = itr_here(*args, "--results-dir", str(results))
    assert refusal.code == 2, refusal.stderr
    assert "Traceback" not in refusal.stderr
    assert len(refusal.error_lines) == 1, refusal.stderr
    assert all(line.startswith(("error: ", "warning: ")) for line in refusal.stderr.splitlines()), refusal.stderr
    for culprit in expected:
        assert culprit.format(tmp=tmp_path) in refusal.error_lines[0]
    assert written_files(tmp_path) == inputs, "nothing but the case's own inputs"


def test_a_results_dir_below_a_file_is_one_line(itr_here, tmp_path):
    (tmp_path / "afile").write_text("in the way")
    refusal = itr_here("run", str(experiment(tmp_path, "[methods.class-bridge]\n")), "--results-dir", str(tmp_path / "afile" / "results"))
    assert refusal.code == 2 and "Traceback" not in refusal.stderr, refusal.stderr
    [line] = refusal.error_lines
    assert f"{tmp_path}/afile/results" in line and "Not a directory" in line


def test_debug_shows_the_traceback(itr_here, tmp_path):
    refusal = itr_here("--debug", *_negative_lr(tmp_path))
    assert refusal.code == 2
    assert "Traceback" in refusal.stderr and refusal.stderr.rstrip().splitlines()[-1].startswith("error: ")


# -- checkpoints from strangers (`itr eval FOLDER`) -------------------------------------------

CHECKPOINT_EXPERIMENT = """
[methods."vse++"]
image_encoder = { feature = "regions", embed_dim = 16 }
text_encoder = { embed_dim = 16, word_dim = 8, min_count = 1 }
[methods.scan]
image_encoder.embed_dim = 16
text_encoder = { embed_dim = 16, word_dim = 8, min_count = 1 }
"""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Untrained vse++ and scan models on a small precomp set, saved as `itr run` saves them."""
    from harness.experiment.plan import plan
    from harness.features import FeatureCache
    from harness.job import checkpoints as store
    from harness.job.assemble import assemble
    from harness.job.catalog import DataCatalog
    from harness.job.inputs import JobData
    from harness.plugin_manager import PluginHost

    folder = tmp_path_factory.mktemp("checkpoints")
    root = precomp_dir(folder, np.random.default_rng(0).normal(size=(12, 4, 8)).astype(np.float32))
    for name in ("ims.npy", "caps.txt"):
        shutil.copyfile(root / f"test_{name}", root / f"train_{name}")
    path = experiment(folder, CHECKPOINT_EXPERIMENT, f'name = "precomp"\noptions = {{ path = {json.dumps(str(root))} }}')
    registry = PluginHost().registry
    _, jobs = plan(path, registry)
    catalog, cache = DataCatalog(registry, str(path)), FeatureCache(folder / "cache")
    models = {job.label: assemble(job, registry, JobData(job, registry, catalog, cache).context()).model for job in jobs}
    return {job.label: store.save(models[job.label], job, folder / job.label) for job in jobs}


def _other_method(tmp: Path, saved: dict[str, Path]) -> Path:
    """scan's job record with vse++'s weights."""
    target = shutil.copytree(saved["scan"], tmp / "checkpoint")
    shutil.copyfile(saved["vse++"] / "model.safetensors", target / "model.safetensors")
    return target


def _truncated(tmp: Path, saved: dict[str, Path]) -> Path:
    target = shutil.copytree(saved["vse++"], tmp / "checkpoint")
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return target


def _corrupt_record(tmp: Path, saved: dict[str, Path]) -> Path:
    target = shutil.copytree(saved["vse++"], tmp / "checkpoint")
    (target / "job.json").write_text('{"label": "vse++",\n "resolved": ')
    return target


CHECKPOINT_CASES = {
    "checkpoint from another method": (_other_method, ["{tmp}/checkpoint/model.safetensors", "weights do not fit this model"]),
    "truncated checkpoint": (_truncated, ["{tmp}/checkpoint/model.safetensors", "unreadable checkpoint"]),
    "corrupt checkpoint record": (_corrupt_record, ["{tmp}/checkpoint/job.json", "corrupt checkpoint record (line 2"]),
}


def test_an_intact_checkpoint_folder_evaluates(itr_here, checkpoints, tmp_path):
    outcome = itr_here("eval", str(checkpoints["vse++"]), "--results-dir", str(tmp_path / "results"))
    assert outcome.code == 0, outcome.stderr


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=list(CHECKPOINT_CASES))
def test_bad_checkpoint_is_refused_with_one_line(itr_here, checkpoints, tmp_path, case):
    damage, expected = CHECKPOINT_CASES[case]
    folder = damage(tmp_path, checkpoints)
    inputs = written_files(tmp_path)
    refusal = itr_here("eval", str(folder), "--results-dir", str(tmp_path / "results"))
    assert refusal.code == 2, refusal.stderr
    assert "Traceback" not in refusal.stderr and len(refusal.error_lines) == 1, refusal.stderr
    for culprit in expected:
        assert culprit.format(tmp=tmp_path) in refusal.error_lines[0]
    assert written_files(tmp_path) == inputs
