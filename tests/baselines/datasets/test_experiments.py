"""Both on-disk formats, named in an experiment file, run through the real `itr` command line
(in this process: `itr_in_process`, seconds faster per run than a fresh interpreter)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.helpers import itr_in_process, printed_leaderboard


def test_vse_plus_plus_trains_on_a_precomp_dataset(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "tiny_precomp"
    root.mkdir()
    words = ["dog", "cat", "car", "tree", "boat", "bird", "horse", "house"]
    for split, n_images in (("train", 16), ("test", 8)):
        np.save(root / f"{split}_ims.npy", rng.standard_normal((n_images, 4, 16)).astype(np.float32))
        captions = [f"a {words[i % 8]} and a {words[(i + j) % 8]}" for i in range(n_images) for j in range(5)]
        (root / f"{split}_caps.txt").write_text("\n".join(captions) + "\n")
    experiment = tmp_path / "precomp.toml"
    experiment.write_text(
        f"""
name = "precomp-smoke"
[[datasets]]
name = "precomp"
options = {{ path = {json.dumps(str(root))} }}

[methods."vse++"]
image_encoder.feature = "regions"
image_encoder.embed_dim = 32
text_encoder.embed_dim = 32
text_encoder.word_dim = 16
text_encoder.min_count = 1
train.batch_size = 8
stages.main.epochs = 1
"""
    )
    out = itr_in_process("run", str(experiment), "--results-dir", str(tmp_path / "results"))
    assert out.code == 0, out.stderr[-3000:]
    assert "vse++" in printed_leaderboard(out.stdout)["precomp / full"], out.stdout


def test_the_class_bridge_evaluates_a_karpathy_dataset(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
    records = []
    for index, (colour, rgb) in enumerate(colours.items()):
        filename = f"{colour}.jpg" if index % 2 else f"{colour}.png"
        Image.new("RGB", (64, 48), rgb).save(images / filename)
        records.append(
            {"filename": filename, "split": "test", "imgid": index,
             "sentences": [{"raw": f"a plain {colour} square"}, {"raw": f"the colour {colour}"}]}
        )
    annotations = tmp_path / "dataset_colours.json"
    annotations.write_text(json.dumps({"images": records}))
    experiment = tmp_path / "karpathy.toml"
    experiment.write_text(
        f"""
name = "karpathy-smoke"
[[datasets]]
name = "karpathy"
options = {{ annotations = {json.dumps(str(annotations))}, image_root = {json.dumps(str(images))} }}

[methods.class-bridge]
"""
    )
    out = itr_in_process("run", str(experiment), "--results-dir", str(tmp_path / "results"))
    assert out.code == 0, out.stderr[-3000:]
    assert "class-bridge" in printed_leaderboard(out.stdout)["karpathy / full"], out.stdout


def test_bad_precomp_data_stops_the_run_with_exit_code_2(tmp_path):
    root = tmp_path / "broken_precomp"
    root.mkdir()
    np.save(root / "test_ims.npy", np.zeros((3, 4, 8), np.float32))
    (root / "test_caps.txt").write_text("a\n" * 7)
    experiment = tmp_path / "broken.toml"
    experiment.write_text(
        f'name = "broken"\n[[datasets]]\nname = "precomp"\noptions = {{ path = {json.dumps(str(root))} }}\n[methods.class-bridge]\n'
    )
    out = itr_in_process("run", str(experiment), "--results-dir", str(tmp_path / "results"))
    assert out.code == 2
    assert f"{root / 'test_caps.txt'}: 7 captions for 3 images in test_ims.npy" in out.stderr
    assert "Traceback" not in out.stderr
