"""Local Hugging Face vision checkpoints: what a folder holds, checked without loading weights.

`itr plan` reads only a folder's ``config.json`` (and ``preprocessor_config.json``), so a
missing folder, a text-only model or a resolution the model cannot take is refused in one line
before anything runs; the weights load when the job is built. Nothing is ever fetched from a hub:
a model is a folder, e.g. a snapshot in the Hugging Face cache
(``~/.cache/huggingface/hub/models--google--vit-base-patch16-224-in21k/snapshots/<hash>``).
"""

from __future__ import annotations

import inspect
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.errors import UserError
from harness.interfaces import IMAGENET_MEAN, IMAGENET_STD, PixelSpec

DUAL_ENCODERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}
"""Image-text checkpoints whose vision tower is a model of its own."""

CNN_IMAGE_SIZE = 224
"""The resolution of a CNN whose config names none (ResNet, ConvNeXt: ImageNet's 224)."""

CLS_TOKEN_MODELS = {"vit", "deit", "dinov2", "beit", "data2vec-vision", "clip", "clip_vision_model"}
"""Vision transformers whose first output token is a class token (SigLIP and Swin have none)."""


@dataclass(frozen=True)
class VisionCheckpoint:
    """A local vision model, as its config describes it.

    Attributes:
        path: the folder.
        model_type: the config's ``model_type`` (``vit``, ``swin``, ``clip``, ...).
        model_class: the transformers class of the vision model (the vision tower of a CLIP or
            SigLIP checkpoint).
        image_size: the resolution it was trained at (a CNN's config has none: 224).
        patch_size: its patch side; None for a CNN, which reads any size.
        hidden_size: the width of its output tokens.
    """

    path: Path
    model_type: str
    model_class: Any
    image_size: int
    patch_size: int | None
    hidden_size: int

    @property
    def has_cls_token(self) -> bool:
        return self.model_type in CLS_TOKEN_MODELS

    def resolution_problem(self, size: int) -> str | None:
        """Why the model cannot read size × size images, or None."""
        if self.patch_size is None:
            return None
        if size % self.patch_size:
            return f"{size} px is not a multiple of the model's {self.patch_size}-px patches"
        if size != self.image_size and not self.interpolates:
            return f"{self.model_class.__name__} reads {self.image_size} px only (no position-embedding interpolation)"
        return None

    @property
    def interpolates(self) -> bool:
        """Whether the model takes ``interpolate_pos_encoding`` (DINOv2 always interpolates)."""
        return self.model_type == "dinov2" or "interpolate_pos_encoding" in inspect.signature(self.model_class.forward).parameters

    def load(self) -> Any:
        """The vision model with its weights, on the CPU; without the pooler layer the
        encoders never read (it would sit in the optimiser without a gradient)."""
        unused = {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(self.model_class.__init__).parameters else {}
        with quiet_loading():
            return self.model_class.from_pretrained(self.path, local_files_only=True, **unused)


    def pixel_spec(self, size: int, crop: str) -> PixelSpec:
        """The model's own normalisation (``preprocessor_config.json``; ImageNet's when absent)
        with the standard crop (``"resized"``), or the VSE∞ / D2S-VSE code's pipeline
        (``"sides"``: ImageNet normalisation, whatever the checkpoint)."""
        if crop == "sides":
            return PixelSpec(size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop="sides", scale=(0.6, 1.0))
        processor = self.path / "preprocessor_config.json"
        settings = json.loads(processor.read_text()) if processor.is_file() else {}
        mean = tuple(settings.get("image_mean", IMAGENET_MEAN))
        std = tuple(settings.get("image_std", IMAGENET_STD))
        return PixelSpec(size=size, mean=mean, std=std)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers without its per-load progress bar and load report: a tower loaded from a
    whole checkpoint reports the other tower's weights as unused, which is intended."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def local_config(path: str | Path) -> tuple[Path, Any]:
    """(the folder, its transformers config), read from ``config.json`` alone.

    Raises:
        UserError: ``"model: ..."``, the folder is missing or has no readable config.
    """
    import transformers

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"model: no model folder {folder}")
    try:
        return folder, transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"model: {folder} holds no readable Hugging Face config.json ({str(exc).splitlines()[0]})") from None


def vision_checkpoint(path: str | Path) -> VisionCheckpoint:
    """The vision model in folder `path`.

    Raises:
        UserError: ``"model: ..."``, the folder is missing, has no readable ``config.json``, or
            holds no vision model.
    """
    import transformers

    folder, config = local_config(path)
    model_type = config.model_type
    if model_type in DUAL_ENCODERS:
        model_class, config = getattr(transformers, DUAL_ENCODERS[model_type]), config.vision_config
    else:
        model_class = transformers.MODEL_MAPPING[type(config)] if type(config) in transformers.MODEL_MAPPING else None
        if model_class is None or getattr(model_class, "main_input_name", None) != "pixel_values":
            raise UserError(f"model: {folder} holds a '{model_type}' model, not a vision model (it does not read pixel_values)")
    return VisionCheckpoint(
        path=folder,
        model_type=model_type,
        model_class=model_class,
        image_size=_side(getattr(config, "image_size", CNN_IMAGE_SIZE)),
        patch_size=_side(config.patch_size) if hasattr(config, "patch_size") else None,
        hidden_size=int(config.hidden_sizes[-1] if hasattr(config, "hidden_sizes") else config.hidden_size),
    )


def _side(value: int | tuple[int, int] | list[int]) -> int:
    """A square side from a config value that may be a pair."""
    return int(value[0] if isinstance(value, (tuple, list)) else value)
