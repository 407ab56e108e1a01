"""Specification of the MiniLM text backbone (plain transformers on the wheel's model files)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest

from baselines.backbones.minilm import MiniLMBackbone, default_model_path
from harness.errors import UserError
from harness.interfaces import TextBackbone

# Two captions each of two demo images (COCO 20247: bears; COCO 160012: pizza).
BEARS = [
    "Bears lope over the ground in a dry landscape.",
    "there are two brown bears together in the wild",
]
PIZZA = [
    "A close up of a pizza pie sitting on a table.",
    "A pizza that is sitting on a wooden platter.",
]
TEXTS = ["a dog", "A man riding a horse.", *BEARS, *PIZZA]


@pytest.fixture(scope="module")
def backbone() -> MiniLMBackbone:
    return MiniLMBackbone()


@pytest.fixture(scope="module")
def features(backbone: MiniLMBackbone) -> dict[str, np.ndarray]:
    return backbone.encode_texts(TEXTS)


def test_outputs_have_the_documented_shapes_and_dtypes(features: dict[str, np.ndarray]) -> None:
    longest = int(features["lengths"].max())
    assert features["tokens"].shape == (len(TEXTS), longest, 384)
    assert features["lengths"].shape == (len(TEXTS),)
    assert features["sentence"].shape == (len(TEXTS), 384)
    assert [features[name].dtype for name in ("tokens", "lengths", "sentence")] == [
        np.float32,
        np.int64,
        np.float32,
    ]


def test_sentence_matches_sentence_transformers(features: dict[str, np.ndarray]) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_path()), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(features["sentence"], expected, atol=1e-5)


def test_lengths_count_real_tokens_including_cls_and_sep(features: dict[str, np.ndarray]) -> None:
    # [CLS] a dog [SEP]; [CLS] a man riding a horse . [SEP]
    assert features["lengths"][:2].tolist() == [4, 8]


def test_tokens_are_zero_past_each_texts_end(features: dict[str, np.ndarray]) -> None:
    for tokens, length in zip(features["tokens"], features["lengths"]):
        assert np.all(tokens[length:] == 0.0)
        assert np.all(np.abs(tokens[:length]).sum(axis=1) > 0.0)


def test_padding_does_not_change_the_token_states(
    backbone: MiniLMBackbone, features: dict[str, np.ndarray]
) -> None:
    alone = backbone.encode_texts(TEXTS[:1])
    assert alone["tokens"].shape == (1, 4, 384)
    np.testing.assert_allclose(alone["tokens"][0], features["tokens"][0, :4], atol=1e-5)


def test_sentence_vectors_have_unit_length(features: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(np.linalg.norm(features["sentence"], axis=1), 1.0, atol=1e-6)


def test_captions_of_one_image_are_closer_than_captions_of_another(
    features: dict[str, np.ndarray],
) -> None:
    similarity = features["sentence"][2:] @ features["sentence"][2:].T  # bears 0-1, pizza 2-3
    assert min(similarity[0, 1], similarity[2, 3]) > similarity[:2, 2:].max()


def test_texts_longer_than_max_length_are_truncated() -> None:
    short = MiniLMBackbone(max_length=8).encode_texts(["word " * 50, "a dog"])
    assert short["lengths"].tolist() == [8, 4]
    assert short["tokens"].shape == (2, 8, 384)


def test_empty_input_gives_empty_arrays(backbone: MiniLMBackbone) -> None:
    empty = backbone.encode_texts([])
    assert {name: array.shape for name, array in empty.items()} == {
        "tokens": (0, 0, 384),
        "lengths": (0,),
        "sentence": (0, 384),
    }


def test_any_local_bert_model_directory_works(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(str(default_model_path())).save_pretrained(tmp_path)
    tiny = MiniLMBackbone(model_path=str(tmp_path)).encode_texts(["a dog", "A man riding a horse."])
    assert tiny["tokens"].shape == (2, 8, 32)
    assert tiny["sentence"].shape == (2, 32)


def test_satisfies_the_text_backbone_protocol_without_loading_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import transformers

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("model loaded eagerly")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    fresh = MiniLMBackbone()
    assert isinstance(fresh, TextBackbone)
    assert fresh.outputs == ("tokens", "lengths", "sentence")


def test_fingerprint_changes_with_max_length() -> None:
    assert MiniLMBackbone(max_length=32).fingerprint != MiniLMBackbone(max_length=64).fingerprint


def test_fingerprint_changes_with_the_model_weights(tmp_path: Path) -> None:
    fingerprints = []
    for weights in (b"weights one", b"weights two"):
        folder = tmp_path / weights.decode().replace(" ", "-")
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "bert"}')
        (folder / "model.safetensors").write_bytes(weights)
        fingerprints.append(MiniLMBackbone(model_path=str(folder)).fingerprint)
    assert fingerprints[0] != fingerprints[1]


def test_fingerprint_ignores_documentation_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    before = MiniLMBackbone(model_path=str(tmp_path)).fingerprint
    (tmp_path / "README.md").write_text("notes")
    assert MiniLMBackbone(model_path=str(tmp_path)).fingerprint == before


def test_missing_model_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a local Hugging Face model directory"):
        MiniLMBackbone(model_path=str(tmp_path / "absent"))
