"""CLIP and SigLIP towers against the checkpoint's own model, and their losses against the papers'
formulas (tiny random checkpoints written in the test)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.clip.encoders import CLIPImageEncoder, CLIPTextEncoder
from baselines.clip.heads import CLIPLogitsHead
from baselines.clip.losses import CLIPInfoNCE, SigLIPSigmoid
from harness.errors import UserError
from harness.interfaces import BuildContext

CTX = BuildContext(image_feature_shapes={}, train_captions=(), frozen_text=None)
CAPTIONS = ["a dog runs on the beach", "two cats", "a red bus in the rain", "a man"]


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_head_over_both_towers_gives_the_models_own_logits(tiny_checkpoints, kind):
    from transformers import AutoModel

    folder = tiny_checkpoints[kind]
    image, text = CLIPImageEncoder(CTX, model=folder).eval(), CLIPTextEncoder(CTX, model=folder).eval()
    head = CLIPLogitsHead(CTX, model=folder)
    inputs = text.prepare(CAPTIONS)
    pixels = torch.randn(3, 3, 32, 32)
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        ours = head(image({"pixels": pixels}), text(inputs))
        mask = None if kind == "siglip" else inputs["attention_mask"]
        theirs = model(input_ids=inputs["input_ids"], attention_mask=mask, pixel_values=pixels).logits_per_image
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert (head.logit_bias is not None) == (kind == "siglip")
    assert inputs["input_ids"].shape[1] == (64 if kind == "siglip" else max(len(text.tokenizer(c)["input_ids"]) for c in CAPTIONS))


def test_a_folder_of_another_model_is_refused_in_one_line(tiny_checkpoints):
    with pytest.raises(UserError, match=r"^model: .* holds a 'vit' model; clip needs a CLIP or SigLIP checkpoint$"):
        CLIPImageEncoder.check_options(model=tiny_checkpoints["vit"])


def test_infonce_is_clips_symmetric_cross_entropy_and_leaves_out_captions_of_the_same_image():
    scores = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    targets = torch.arange(4)
    expected = (F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)) / 2
    assert torch.allclose(CLIPInfoNCE(CTX)(scores, torch.arange(4)), expected)
    shared = torch.tensor([0, 1, 1, 2])  # pairs 1 and 2 show one image
    masked = scores.clone()
    masked[1, 2] = masked[2, 1] = float("-inf")
    expected = (F.cross_entropy(masked, targets) + F.cross_entropy(masked.T, targets)) / 2
    assert torch.allclose(CLIPInfoNCE(CTX)(scores, shared), expected)


def test_sigmoid_loss_labels_every_pair_of_an_image_and_its_captions_positive():
    scores = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))  # 3 generated negative columns
    ids = torch.tensor([0, 0, 1])
    labels = torch.tensor([[1, 1, -1], [1, 1, -1], [-1, -1, 1]], dtype=torch.float32)
    labels = torch.cat([labels, -torch.ones(3, 3)], dim=1)
    expected = -F.logsigmoid(labels * scores).sum() / 3
    assert torch.allclose(SigLIPSigmoid(CTX)(scores, ids), expected)
