"""The two towers of a CLIP or SigLIP checkpoint as the harness's image and text encoders.

Each returns the model's own embedding (the projected pooled output: CLIP's ``image_embeds`` /
``text_embeds``, SigLIP's attention-pooled or last-token ``pooler_output``), unnormalised; the
`clip-logits` head normalises and scales, as the model's forward does.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from baselines.clip.checkpoints import dual_encoder_checkpoint
from baselines.vision.backbone import FineTunedBackbone
from harness.interfaces import BuildContext, PixelSpec
from harness.options import NonNegative
from harness.training.feeds import PIXELS


def _embedding(output: object) -> torch.Tensor:
    """The tower's embedding: CLIP's projected output, else (SigLIP) its pooled output."""
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise AttributeError(f"{type(output).__name__} carries no embedding")


class CLIPImageEncoder(nn.Module):
    """`clip-image`: pixels -> the checkpoint's vision tower -> its image embedding [B, D].

    Options:
        model: the CLIP or SigLIP checkpoint folder.
        lr_scale: the tower's learning-rate multiplier (0 freezes it).
    """

    pixels: PixelSpec  # it reads pixels (`harness.capabilities.ReadsPixels`)

    def __init__(self, ctx: BuildContext, *, model: str, lr_scale: NonNegative = 1.0) -> None:
        super().__init__()
        checkpoint = dual_encoder_checkpoint(model)
        self.pixels = checkpoint.pixel_spec()
        self.tower = FineTunedBackbone(checkpoint.tower("image"), lr_scale)

    @staticmethod
    def check_options(*, model: str, **_: object) -> None:
        dual_encoder_checkpoint(model)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return _embedding(self.tower.model(pixel_values=features[PIXELS]))


class CLIPTextEncoder(nn.Module):
    """`clip-text`: captions -> the checkpoint's tokenizer and text tower -> its text embedding [B, D].

    CLIP pools at the end-of-text token, so its captions are padded to the split's longest;
    SigLIP pools the last position and was trained on captions padded to a fixed length, so
    they are padded to it (64 for the released models).

    Options:
        model: the CLIP or SigLIP checkpoint folder (its tokenizer included).
        lr_scale: the tower's learning-rate multiplier (0 freezes it).
    """

    def __init__(self, ctx: BuildContext, *, model: str, lr_scale: NonNegative = 1.0) -> None:
        super().__init__()
        from transformers import AutoTokenizer

        checkpoint = dual_encoder_checkpoint(model)
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint.path, local_files_only=True)
        self.max_length = checkpoint.config.text_config.max_position_embeddings
        self.fixed_length = checkpoint.kind == "siglip"
        self.tower = FineTunedBackbone(checkpoint.tower("text"), lr_scale)

    @staticmethod
    def check_options(*, model: str, **_: object) -> None:
        dual_encoder_checkpoint(model)

    def prepare(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention masks [n_captions, L], truncated to the model's positions."""
        padding = "max_length" if self.fixed_length else "longest"
        tokens = self.tokenizer(list(captions), padding=padding, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        mask = None if self.fixed_length else inputs["attention_mask"]
        return _embedding(self.tower.model(input_ids=inputs["input_ids"], attention_mask=mask))
