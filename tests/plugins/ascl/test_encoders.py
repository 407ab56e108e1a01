"""AsCL encoders (docs/methods/ascl.md) and the gradient path through encoders, negatives and head."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from baselines.vse.encoders import l2_normalize
from harness.embeddings import concat
from harness.interfaces import BuildContext
from harness.training.feeds import gather
from plugins.ascl.encoders import AsCLImageEncoder, AsCLTextEncoder
from plugins.ascl.generators import GaussianNoise
from plugins.ascl.heads import AsCLFusionHead
from plugins.ascl.losses import AsCLInfoNCE

TOKEN_DIM = 12


class FakeFrozenText:
    """MiniLM's output format without MiniLM: [CLS] + one fixed vector per word + [SEP]."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode_texts(self, texts):
        self.seen.extend(texts)
        pieces = [["[CLS]", *text.split(), "[SEP]"] for text in texts]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        tokens = np.zeros((len(texts), lengths.max(initial=0), TOKEN_DIM), dtype=np.float32)
        for k, words in enumerate(pieces):
            for t, word in enumerate(words):
                tokens[k, t] = np.random.default_rng(zlib.crc32(word.encode())).standard_normal(TOKEN_DIM)
        return {"tokens": tokens, "lengths": lengths, "sentence": tokens.sum(1)}


def context(frozen_text=None) -> BuildContext:
    return BuildContext(
        image_feature_shapes={"regions": (7, 10), "pooled": (10,)},
        train_captions=(),
        frozen_text=frozen_text or FakeFrozenText(),
    )


def image_features(batch: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"regions": torch.randn(batch, 7, 10, generator=generator), "pooled": torch.randn(batch, 10, generator=generator)}


def test_image_encoder_gives_unit_regions_and_the_projected_global_vector_as_summary():
    encoder = AsCLImageEncoder(context(), embed_dim=16)
    features = image_features(3)
    out = encoder(features)
    assert out.vectors.shape == (3, 7, 16) and out.lengths.tolist() == [7, 7, 7]
    torch.testing.assert_close(out.vectors.norm(dim=-1), torch.ones(3, 7))
    torch.testing.assert_close(out.summary, encoder.global_fc(l2_normalize(features["pooled"])))


def prepared(encoder: AsCLTextEncoder, captions: list[str]) -> dict[str, torch.Tensor]:
    """What the trainer feeds the encoder: the rows of its prepared (memory-mapped) inputs."""
    return gather(encoder.prepare(captions), torch.arange(len(captions)), torch.device("cpu"))


def test_text_encoder_prepares_the_frozen_features_without_copying_them():
    frozen = FakeFrozenText()
    inputs = AsCLTextEncoder(context(frozen), embed_dim=16).prepare(["A dog runs."])
    assert all(isinstance(value, np.ndarray) for value in inputs.values())


def test_text_encoder_projects_every_token_including_cls_and_sep_and_zeroes_padding():
    encoder = AsCLTextEncoder(context(), embed_dim=16)
    inputs = prepared(encoder, ["A dog runs.", "Cat!"])
    assert inputs["lengths"].tolist() == [5, 3]  # [CLS] a dog runs [SEP]; [CLS] cat [SEP]
    out = encoder(inputs)
    torch.testing.assert_close(out.vectors[0], encoder.word_fc(inputs["tokens"][0]))
    torch.testing.assert_close(out.vectors[1, :3], encoder.word_fc(inputs["tokens"][1, :3]))
    assert not out.vectors[1, 3:].any()


def test_text_encoder_cleans_captions_like_pre_caption():
    frozen = FakeFrozenText()
    cleaning, raw = AsCLTextEncoder(context(frozen), embed_dim=16), AsCLTextEncoder(context(frozen), embed_dim=16, clean=False)
    cleaning.prepare(["A red/white bus, parked."])
    raw.prepare(["A red/white bus, parked."])
    assert frozen.seen[-2:] == ["a red white bus parked", "A red/white bus, parked."]


def test_text_encoder_trims_a_batch_to_its_longest_caption():
    encoder = AsCLTextEncoder(context(), embed_dim=16)
    inputs = prepared(encoder, ["one two three four five", "a b"])
    batch = {name: value[1:] for name, value in inputs.items()}
    assert encoder(batch).vectors.shape == (1, 4, 16)


@pytest.mark.parametrize("global_pooling", ["pair", "ground-truth-partner"])
def test_gradients_are_finite_through_encoders_negatives_and_head(global_pooling):
    ctx = context()
    torch.manual_seed(0)
    image_encoder = AsCLImageEncoder(ctx, embed_dim=16)
    text_encoder = AsCLTextEncoder(ctx, embed_dim=16)
    head = AsCLFusionHead(ctx, embed_dim=16, global_pooling=global_pooling)
    images = image_encoder(image_features(3))
    texts = text_encoder(prepared(text_encoder, ["a dog on a sofa", "two cats", "a long red bus in a busy street"]))
    texts = concat([texts, GaussianNoise(ctx)(texts, torch.Generator().manual_seed(0))])
    loss = AsCLInfoNCE(ctx)(head(images, texts), torch.arange(3))
    loss.backward()
    trained = [p for module in (image_encoder, text_encoder, head) for p in module.parameters() if p.requires_grad]
    assert len(trained) == 2 + 2 + 2 + 2 + 4  # W_r, W_g, W_w, W_c, W_a + gate (train_fusion)
    for parameter in trained:
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0


def test_fusion_layers_stay_at_their_init_when_train_fusion_is_off():
    head = AsCLFusionHead(context(), embed_dim=16, train_fusion=False)
    assert [name for name, p in head.named_parameters() if p.requires_grad] == ["text_fc.weight", "text_fc.bias"]
