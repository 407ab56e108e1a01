"""Tiny, randomly initialised Hugging Face checkpoints written with ``save_pretrained``: real
folders in the layout of the Hub's, so the encoders that read ViT, Swin, CLIP and SigLIP
checkpoints run offline. The tokenizer is MiniLM's (a local BERT WordPiece one)."""

from __future__ import annotations

from pathlib import Path

import pytest

IMAGE_SIZE = 32
MINILM_VOCAB = 30522
CLS_TOKEN, SEP_TOKEN = 101, 102
"""MiniLM's [CLS] and [SEP]: [SEP] is the end-of-text token the tiny CLIP pools at."""


def _tokenizer_into(folder: Path) -> None:
    from transformers import AutoTokenizer

    from baselines.backbones.minilm import default_model_path

    AutoTokenizer.from_pretrained(str(default_model_path())).save_pretrained(folder)


def tiny_vit(folder: Path) -> Path:
    """A 2-layer ViT (32 px, 8-px patches, width 32) with its preprocessor config."""
    import json

    from transformers import ViTConfig, ViTModel

    config = ViTConfig(image_size=IMAGE_SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    return folder


def tiny_text_model(folder: Path) -> Path:
    """A 1-layer BERT of width 32 with MiniLM's tokenizer: a caption encoder as small as it gets,
    and a real model that is not a vision model."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=MINILM_VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    _tokenizer_into(folder)
    return folder


def tiny_dual_encoder(folder: Path, kind: str = "clip") -> Path:
    """A 1-layer CLIP or SigLIP (32 px, width 32, projection 16) with MiniLM's tokenizer."""
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    text = {"vocab_size": MINILM_VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 64}
    vision = {"image_size": IMAGE_SIZE, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    if kind == "clip":
        # the towers read their own projection_dim, as in the released checkpoints' configs
        text_config = {**text, "projection_dim": 16, "bos_token_id": CLS_TOKEN, "eos_token_id": SEP_TOKEN, "pad_token_id": 0}
        config = CLIPConfig(text_config=text_config, vision_config={**vision, "projection_dim": 16}, projection_dim=16)
        CLIPModel(config).save_pretrained(folder)
    else:
        text_config = {**text, "bos_token_id": CLS_TOKEN, "eos_token_id": SEP_TOKEN, "pad_token_id": 0}
        SiglipModel(SiglipConfig(text_config=text_config, vision_config=vision)).save_pretrained(folder)
    _tokenizer_into(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Folders of a tiny ViT, CLIP, SigLIP and (not a vision model) BERT, written once per session."""
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    folders = {"vit": tiny_vit(root / "vit"), "clip": tiny_dual_encoder(root / "clip"), "bert": tiny_text_model(root / "bert")}
    folders["siglip"] = tiny_dual_encoder(root / "siglip", "siglip")
    return {name: str(path) for name, path in folders.items()}


CHECKPOINT_OF = {"hf-vision": "vit", "clip-image": "clip", "clip-text": "clip"}
"""Which tiny checkpoint a component that needs a ``model`` folder reads."""


def checkpoint_options(component: str, checkpoints: dict[str, str]) -> dict[str, object]:
    """The options that point `component` at its tiny checkpoint, at the checkpoint's own size."""
    if component not in CHECKPOINT_OF:
        return {}
    options: dict[str, object] = {"model": checkpoints[CHECKPOINT_OF[component]]}
    return {**options, "image_size": IMAGE_SIZE} if component == "hf-vision" else options
