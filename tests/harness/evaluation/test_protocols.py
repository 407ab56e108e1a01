"""Protocols: fold averaging, size checks, and the named paper protocols."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UserError
from harness.interfaces import RetrievalSplit
from harness.evaluation.protocols import RecallAtK
from harness.metrics import recall_metrics
from harness.plugin_manager import PluginHost

REGISTRY = PluginHost().registry
PROTOCOLS = {name: REGISTRY.get("protocol", name).build({}, "test") for name in REGISTRY.names("protocol")}
"""The built-in protocols, as the plugin manager hands them to a job."""


def random_split_scores(n_images: int, per_image: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    image_of_caption = np.repeat(np.arange(n_images), per_image)
    scores = rng.standard_normal((n_images, len(image_of_caption))).astype(np.float32)
    scores[image_of_caption, np.arange(len(image_of_caption))] += 1.5  # learnable signal
    return scores, image_of_caption


def split_of(n_images: int, per_image: int = 5) -> RetrievalSplit:
    image_of_caption = np.repeat(np.arange(n_images), per_image)
    return RetrievalSplit("d", "test", tuple(map(str, range(n_images))), ("c",) * len(image_of_caption), image_of_caption)


def test_fold_metrics_are_the_mean_of_separate_fold_evaluations():
    scores, image_of_caption = random_split_scores(50)
    folded = RecallAtK("five-folds", n_images=50, folds=5).metrics(scores, image_of_caption)
    separate = [
        recall_metrics(scores[10 * f : 10 * f + 10, 50 * f : 50 * f + 50], image_of_caption[50 * f : 50 * f + 50] - 10 * f)
        for f in range(5)
    ]
    for key in folded:
        assert folded[key] == pytest.approx(np.mean([fold[key] for fold in separate])), key


def test_fold_rsum_is_the_sum_of_the_mean_recalls():
    scores, image_of_caption = random_split_scores(50, seed=1)
    folded = RecallAtK("five-folds", folds=5).metrics(scores, image_of_caption)
    recalls = [folded[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10)]
    assert folded["rsum"] == pytest.approx(sum(recalls))


def test_one_fold_protocol_equals_recall_metrics():
    scores, image_of_caption = random_split_scores(12, per_image=3)
    assert PROTOCOLS["full"].metrics(scores, image_of_caption) == recall_metrics(scores, image_of_caption)


def test_paper_protocols_have_the_published_sizes():
    assert (PROTOCOLS["coco-1k"].n_images, PROTOCOLS["coco-1k"].folds) == (5000, 5)
    assert (PROTOCOLS["coco-5k"].n_images, PROTOCOLS["coco-5k"].folds) == (5000, 1)
    assert PROTOCOLS["f30k-1k"].n_images == 1000


def test_a_protocol_refuses_a_split_of_the_wrong_size():
    with pytest.raises(UserError, match="protocol 'f30k-1k' on d:test: needs 1000 test images, the split has 20"):
        PROTOCOLS["f30k-1k"].check(split_of(20))


def test_a_protocol_refuses_uneven_captions_per_image():
    split = split_of(1000)
    uneven = RetrievalSplit("d", "test", split.image_ids, split.captions[:-1], split.image_of_caption[:-1])
    with pytest.raises(UserError, match="needs 5 captions per image, image 999 has 4"):
        PROTOCOLS["f30k-1k"].check(uneven)


def test_full_accepts_any_split():
    PROTOCOLS["full"].check(split_of(3, per_image=2))


def test_the_built_in_protocols_are_registered_components_of_the_evaluation_plugin():
    assert set(PROTOCOLS) == {"full", "coco-1k", "coco-5k", "f30k-1k", "eccv-caption", "cxc"}
    assert {spec.plugin for spec in REGISTRY if spec.kind == "protocol"} == {"protocols"}
    assert all(protocol.name == name for name, protocol in PROTOCOLS.items())
