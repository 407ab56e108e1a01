"""Generated samples in the training step: mixing, extra negative columns, weighted passes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.embeddings import VectorSets
from harness.config.job_config import TrainConfig
from harness.features import CachedTextBackbone, FeatureCache
from harness.training.model import RetrievalModel, SplitInputs
from harness.training.samples import GeneratedSamples
from harness.training.trainer import Stage, fit


def upper(captions, siblings, rng):
    return [c.upper() for c in captions]


def first_sibling(captions, siblings, rng):
    return [s[0] for s in siblings]


def test_per_caption_mix_gives_each_caption_one_strategy():
    samples = GeneratedSamples(positives=[upper, first_sibling], negatives=[], seed=0)
    captions = [f"c{k}" for k in range(40)]
    made = samples.positive_captions(captions, [["s"]] * 40)
    assert set(made) <= {c.upper() for c in captions} | {"s"}
    assert 0 < made.count("s") < 40


def test_per_batch_mix_uses_one_strategy_for_the_whole_batch():
    samples = GeneratedSamples(positives=[upper, first_sibling], negatives=[], positive_mix="per-batch", seed=1)
    for _ in range(5):
        made = samples.positive_captions(["a", "b", "c"], [["s"]] * 3)
        assert made in (["A", "B", "C"], ["s", "s", "s"])


def test_draws_are_reproducible_under_a_seed():
    draw = lambda: GeneratedSamples(positives=[upper, first_sibling], negatives=[], seed=7).positive_captions(list("abcdefgh"), [["s"]] * 8)
    assert draw() == draw()


def test_per_caption_negatives_pick_rows_from_each_generator():
    zero = lambda t, g: VectorSets(t.vectors * 0, t.lengths)
    plus_one = lambda t, g: VectorSets(t.vectors + 1, t.lengths)
    samples = GeneratedSamples(positives=[], negatives=[zero, plus_one], negative_mix="per-caption", seed=0)
    texts = VectorSets(torch.ones(30, 2, 3), torch.full((30,), 2))
    made = samples.negative_embeddings(texts)
    firsts = made.vectors[:, 0, 0]
    assert set(firsts.tolist()) == {0.0, 2.0}


class Take(nn.Module):
    def __init__(self, key: str, dim: int) -> None:
        super().__init__()
        self.key, self.linear = key, nn.Linear(dim, 4)

    def forward(self, inputs):
        return self.linear(inputs[self.key].float())


class CharText(Take):
    """Embeds a caption by its first character code, so generated strings can be encoded."""

    def prepare(self, captions):
        return {"x": torch.tensor([[float(ord(c[0]))] for c in captions])}


class Dot(nn.Module):
    def forward(self, images, texts):
        return images @ texts.T


class RecordingLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shapes = []

    def forward(self, scores, image_ids):
        self.shapes.append(tuple(scores.shape))
        return scores.diagonal().sum() * 0 + scores.mean()


def test_negatives_add_columns_and_positives_add_a_pass():
    torch.manual_seed(0)
    text = CharText("x", 1)
    model = RetrievalModel(Take("pooled", 3), text, Dot())
    captions = ["a", "b", "c", "d"]
    data = SplitInputs({"pooled": np.ones((4, 3), np.float32)}, text.prepare(captions), torch.arange(4), captions)
    loss = RecordingLoss()
    samples = GeneratedSamples(positives=[upper], negatives=[lambda t, g: -t], seed=0)
    fit(model, data, [Stage("main", 1, loss)], TrainConfig(batch_size=4), torch.device("cpu"), samples=samples)
    assert loss.shapes == [(4, 8), (4, 8)]  # real captions pass, then T⁺ pass; each with 4 negatives


def test_generated_captions_are_not_stored_in_the_feature_cache(tmp_path):
    class Backbone:
        fingerprint = "fake/v1"

        def encode_texts(self, texts):
            return {"sentence": np.zeros((len(texts), 2), np.float32)}

    source = CachedTextBackbone(Backbone, FeatureCache(tmp_path))
    samples = GeneratedSamples(positives=[upper], negatives=[], frozen_text=source)
    with samples.encoding_context():
        source.encode_texts(["a generated caption"])
    assert list(tmp_path.iterdir()) == []
    source.encode_texts(["a dataset caption"])
    assert len(list(tmp_path.iterdir())) == 1
