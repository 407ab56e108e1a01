"""`hf-vision`: a fine-tuned Hugging Face vision model as an image encoder (reads pixels).

Any local model transformers loads that reads ``pixel_values`` works: ViT, Swin, DINOv2, the
vision towers of CLIP and SigLIP checkpoints, and CNNs such as ResNet and ConvNeXt. Its output
tokens (``last_hidden_state``: patch tokens, ViT's class token included; a CNN's final feature
map as a grid of vectors) go through a `TokenHead`: size augmentation, projection to the joint
space, pooling. This is D2S-VSE's ``VisionTransEncoder`` and VSE∞'s backbone branch.
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch
from torch import nn

from baselines.vision.backbone import FineTunedBackbone
from baselines.vision.local_models import VisionCheckpoint, vision_checkpoint
from baselines.vision.token_head import TokenHead, TokenOutput, TokenPooling
from harness.errors import UserError
from harness.interfaces import BuildContext, PixelSpec
from harness.options import AtLeastOne, DropRate, NonNegative
from harness.training.feeds import PIXELS

PixelPipeline = Literal["resized", "sides"]


class HFVisionEncoder(nn.Module):
    """`hf-vision`: pixels [B, 3, S, S] -> a local HF vision model's tokens -> `TokenHead`.

    Options:
        model: the model's folder (a Hugging Face cache snapshot or a ``save_pretrained`` folder).
        embed_dim: the joint space (D2S-VSE: 512).
        pooling: ``gpo`` (VSE∞, D2S-VSE), ``mean``, or ``cls`` (the class token; ViT, DINOv2, CLIP).
        output: ``global`` (one vector) or ``regions`` (one vector per token, for a
            cross-attention head).
        image_size: the side images are read at (default: the model's own). Another size needs
            a model that interpolates its position embeddings (ViT, CLIP, SigLIP, DINOv2, Swin);
            D2S-VSE reads its 224-px ViT at 384.
        crop: ``resized`` (random resized crop, centre-crop tests, the model's normalisation) or
            ``sides`` (the VSE∞ / D2S-VSE code: a U[0.6, 1) crop of each side, whole test
            images, ImageNet normalisation).
        token_drop: the size augmentation's top drop rate (D2S-VSE and VSE∞: 0.2; 0 disables).
        lr_scale: the backbone's learning-rate multiplier (D2S-VSE, VSE∞: 0.1; 0 freezes it).
        gradient_checkpointing: recompute the backbone's activations in the backward pass
            (memory for time, for large images or batches).
        freeze_batchnorm: keep a CNN's batch-norm statistics and weights as pretrained (VSE∞).
    """

    pixels: PixelSpec  # it reads pixels (`harness.capabilities.ReadsPixels`)

    def __init__(
        self,
        ctx: BuildContext,
        *,
        model: str,
        embed_dim: AtLeastOne = 1024,
        pooling: TokenPooling = "gpo",
        output: TokenOutput = "global",
        image_size: AtLeastOne | None = None,
        crop: PixelPipeline = "resized",
        token_drop: DropRate = 0.0,
        lr_scale: NonNegative = 0.1,
        gradient_checkpointing: bool = False,
        freeze_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        checkpoint = _checked(model, image_size, pooling, token_drop)
        size = image_size or checkpoint.image_size
        self.pixels = checkpoint.pixel_spec(size, crop)
        self.interpolate = size != checkpoint.image_size
        backbone = checkpoint.load()
        if gradient_checkpointing:
            backbone.gradient_checkpointing_enable()
        self.backbone = FineTunedBackbone(backbone, lr_scale, freeze_batchnorm)
        self.head = TokenHead(checkpoint.hidden_size, embed_dim, pooling, output, token_drop)

    @staticmethod
    def check_options(*, model: str, image_size: int | None, pooling: str, token_drop: float, **_: object) -> None:
        """What `itr plan` refuses before anything runs: see `_checked`."""
        _checked(model, image_size, pooling, token_drop)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        extra = {"interpolate_pos_encoding": True} if self.interpolate else {}
        tokens = self.backbone.model(pixel_values=features[PIXELS], **extra).last_hidden_state
        if tokens.dim() == 4:  # a CNN's map [B, C, H, W]: its H·W cells are the tokens
            tokens = tokens.flatten(2).transpose(1, 2)
        return self.head(tokens)


def _checked(model: str, image_size: int | None, pooling: str, token_drop: float) -> VisionCheckpoint:
    """The checkpoint in `model`, refused in one line if missing, not a vision model, unable to
    read `image_size`, or without the class token `pooling` asks for."""
    checkpoint = vision_checkpoint(model)
    problem = checkpoint.resolution_problem(image_size or checkpoint.image_size)
    if problem:
        raise UserError(f"image_size: {problem}")
    if pooling == "cls" and not checkpoint.has_cls_token:
        raise UserError(f"pooling: a '{checkpoint.model_type}' model has no class token; use 'gpo' or 'mean'")
    if pooling == "cls" and token_drop > 0:
        raise UserError("token_drop: class-token pooling reads one token; the size augmentation needs 'gpo' or 'mean'")
    return checkpoint
