"""`hf-vision` and the token head on tiny random checkpoints (ViT, ResNet) written in the test."""

from __future__ import annotations

import pytest
import torch

from baselines.vision.hf_vision import HFVisionEncoder
from baselines.vision.token_head import drop_tokens
from harness.embeddings import VectorSets
from harness.interfaces import BuildContext
from harness.training.trainer import lr_scales

CTX = BuildContext(image_feature_shapes={}, train_captions=(), frozen_text=None)


def pixels(n: int, size: int = 32) -> dict[str, torch.Tensor]:
    return {"pixels": torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(n))}


def test_the_vit_tokens_class_token_included_become_one_unit_vector_or_a_set(tiny_checkpoints):
    vit = tiny_checkpoints["vit"]
    pooled = HFVisionEncoder(CTX, model=vit, embed_dim=16).eval()
    out = pooled(pixels(3))
    assert out.shape == (3, 16) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    sets = HFVisionEncoder(CTX, model=vit, embed_dim=16, output="regions").eval()(pixels(3))
    assert isinstance(sets, VectorSets) and sets.vectors.shape == (3, 1 + 16, 16), "16 patches of 8 px plus the class token"
    assert pooled.pixels.mean == (0.5, 0.5, 0.5), "the checkpoint's own normalisation"


def test_another_resolution_interpolates_the_position_embeddings(tiny_checkpoints):
    encoder = HFVisionEncoder(CTX, model=tiny_checkpoints["vit"], embed_dim=8, image_size=48, pooling="cls").eval()
    assert encoder.pixels.size == 48 and encoder(pixels(2, 48)).shape == (2, 8)


def test_the_backbone_trains_at_its_lr_scale_and_the_head_at_the_stage_lr(tiny_checkpoints):
    encoder = HFVisionEncoder(CTX, model=tiny_checkpoints["vit"], embed_dim=8, lr_scale=0.1)
    scales = lr_scales(encoder)
    assert {scale for name, scale in scales.items() if name.startswith("backbone.")} == {0.1}
    assert {scale for name, scale in scales.items() if name.startswith("head.")} == {1.0}
    frozen = HFVisionEncoder(CTX, model=tiny_checkpoints["vit"], embed_dim=8, lr_scale=0)
    assert not any(name.startswith("backbone.") for name in lr_scales(frozen)), "lr_scale 0 freezes the backbone"


def test_gradient_checkpointing_gives_the_same_gradients(tiny_checkpoints):
    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        encoder = HFVisionEncoder(CTX, model=tiny_checkpoints["vit"], embed_dim=8, gradient_checkpointing=checkpointing).train()
        encoder(pixels(4)).sum().backward()
        return {name: p.grad for name, p in encoder.named_parameters() if p.grad is not None}

    plain, recomputed = gradients(False), gradients(True)
    assert plain.keys() == recomputed.keys() and len(plain) > 10
    assert all(torch.allclose(plain[name], recomputed[name], atol=1e-6) for name in plain)


def test_the_size_augmentation_drops_tokens_of_four_images_in_five_at_up_to_the_rate():
    torch.manual_seed(0)
    tokens = torch.randn(2000, 50, 4)
    sets = drop_tokens(tokens, 0.2)
    kept = sets.lengths.float() / 50
    assert 0.15 < (kept == 1).float().mean() < 0.30, "ρ ≤ 0.2 (a fifth) keeps every token, a few more by chance"
    assert kept.min() >= 0.6 and abs(kept.mean().item() - (1 - 0.2 * 0.8 * 0.6)) < 0.01, "mean drop 0.2 · E[ρ; ρ > 0.2]"
    first = sets.vectors[0, : sets.lengths[0]]
    assert all(any(torch.equal(row, token) for token in tokens[0]) for row in first), "kept tokens are the image's own"


def test_a_cnn_map_is_read_as_a_grid_of_tokens(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")).save_pretrained(tmp_path)
    encoder = HFVisionEncoder(CTX, model=str(tmp_path), embed_dim=8, image_size=64, output="regions").train()
    sets = encoder(pixels(2, 64))
    assert sets.vectors.shape == (2, 64, 8), "64 px through a stride-4 stem and one stride-2 stage: an 8 x 8 grid"
    assert not any(m.training for m in encoder.backbone.model.modules() if isinstance(m, torch.nn.BatchNorm2d)), "batch norms stay frozen"


@pytest.mark.parametrize("pooling", ["gpo", "mean"])
def test_pooled_output_is_independent_of_the_batch(tiny_checkpoints, pooling):
    encoder = HFVisionEncoder(CTX, model=tiny_checkpoints["vit"], embed_dim=8, pooling=pooling).eval()
    batch = pixels(4)
    together = encoder(batch)
    alone = torch.cat([encoder({"pixels": batch["pixels"][k : k + 1]}) for k in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)
