"""Local CLIP and SigLIP checkpoints: which kind a folder holds, and its towers' classes.

A checkpoint is a folder (a Hugging Face cache snapshot or a ``save_pretrained`` folder) with
the model's ``config.json``, weights and tokenizer; only what a component needs is loaded: the
image encoder loads the vision tower, the text encoder the text tower, the head two scalars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baselines.vision.local_models import local_config, quiet_loading, vision_checkpoint
from harness.errors import UserError
from harness.interfaces import PixelSpec

TOWERS = {
    "clip": ("CLIPVisionModelWithProjection", "CLIPTextModelWithProjection"),
    "siglip": ("SiglipVisionModel", "SiglipTextModel"),
}
"""Per checkpoint kind: the transformers classes of its (image, text) towers with their
projections, whose pooled output is the model's embedding."""

OPENCLIP_SCALE = (0.9, 1.0)
"""The random crop of fine-tuning (OpenCLIP's training transform: 90-100 % of the area)."""


@dataclass(frozen=True)
class DualEncoderCheckpoint:
    """A CLIP or SigLIP checkpoint folder: `kind` is ``clip`` or ``siglip``."""

    path: Path
    kind: str
    config: Any

    def tower(self, side: str) -> Any:
        """The image (``side="image"``) or text tower with its projection, weights loaded."""
        import transformers

        name = TOWERS[self.kind][0 if side == "image" else 1]
        with quiet_loading():
            return getattr(transformers, name).from_pretrained(self.path, local_files_only=True)

    def pixel_spec(self) -> PixelSpec:
        """The checkpoint's resolution and normalisation. CLIP's processor centre-crops test
        images, SigLIP's resizes them whole: ``crop`` is ``resized`` or ``sides`` to match; the
        training crop keeps 90-100 % of the image either way."""
        base = vision_checkpoint(self.path).pixel_spec(self.config.vision_config.image_size, "resized")
        crop = "sides" if self.kind == "siglip" else "resized"
        return PixelSpec(size=base.size, mean=base.mean, std=base.std, crop=crop, scale=OPENCLIP_SCALE)

    def scalars(self) -> dict[str, float]:
        """The trained ``logit_scale`` (and SigLIP's ``logit_bias``), read from the weights alone."""
        from safetensors import safe_open

        files = sorted(self.path.glob("*.safetensors"))
        found: dict[str, float] = {}
        for file in files:
            with safe_open(str(file), framework="pt") as weights:
                for key in ("logit_scale", "logit_bias"):
                    if key in weights.keys():
                        found[key] = float(weights.get_tensor(key).reshape(-1)[0])
        if "logit_scale" not in found:
            raise UserError(f"model: {self.path} has no logit_scale in its *.safetensors weights")
        return found


def dual_encoder_checkpoint(path: str | Path) -> DualEncoderCheckpoint:
    """The CLIP or SigLIP checkpoint in `path`; a `UserError` ``"model: ..."`` if it is missing or
    holds another kind of model."""
    folder, config = local_config(path)
    if config.model_type not in TOWERS:
        raise UserError(f"model: {folder} holds a '{config.model_type}' model; clip needs a CLIP or SigLIP checkpoint")
    return DualEncoderCheckpoint(folder, config.model_type, config)
