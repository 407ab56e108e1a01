"""A pretrained network fine-tuned inside an image encoder, at its own learning rate."""

from __future__ import annotations

from torch import nn

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class FineTunedBackbone(nn.Module):
    """`model` trained at `lr_scale` × the stage's lr (`harness.capabilities.OwnLearningRate`;
    0 freezes it). With `freeze_batchnorm`, its batch norms keep the statistics and affine
    weights pretraining left (VSE∞ keeps its CNN's in eval mode): fine-tuning batches are small,
    and per-process statistics would make data-parallel training differ from one process."""

    def __init__(self, model: nn.Module, lr_scale: float, freeze_batchnorm: bool = False) -> None:
        super().__init__()
        self.model, self.lr_scale, self.freeze_batchnorm = model, lr_scale, freeze_batchnorm
        model.requires_grad_(lr_scale > 0)
        if freeze_batchnorm:
            for norm in self._batch_norms():
                norm.requires_grad_(False)

    def _batch_norms(self) -> list[nn.Module]:
        return [module for module in self.model.modules() if isinstance(module, BATCH_NORMS)]

    def train(self, mode: bool = True) -> "FineTunedBackbone":
        super().train(mode)
        if self.freeze_batchnorm:
            for norm in self._batch_norms():
                norm.eval()
        return self
