"""D2S-VSE's text encoder (docs/methods/d2s-vse.md): a fine-tuned BERT-style model, token features,
GPO, LayerNorm, and for sparse captions the learnable-token decoder's residual.

One module encodes both kinds of text, as one set of weights does in the paper:

- dense descriptions (stage 1, and the teacher's input in stage 2): t = LN(GPO(W));
- sparse captions: t̂ = t + d̄, with d̄ the decoder's output on the caption's word features W
  (`decoder.LearnableTokenDecoder`); used in training and at inference.

``prepare`` learns which kind it is preparing from the harness (``source``: ``captions`` or a
text source's name) and records it per text (``sparse``), so the same weights serve stage 1,
stage 2, the teacher (a frozen copy, `losses.D2SDistillation`) and evaluation.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from baselines.vse.encoders import l2_normalize
from baselines.vse_infinity.encoders import HFTextEncoder
from baselines.vse_infinity.pooling import PoolingKind, real_positions
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.config.job_config import CAPTIONS
from harness.interfaces import BuildContext
from harness.options import AtLeastOne, Count, DropRate, Fraction, NonNegative, Positive
from plugins.d2s_vse.decoder import LearnableTokenDecoder


def _check(condition: bool, message: str) -> None:
    """Reject an option value its annotation cannot express (one option against another, or the model)."""
    if not condition:
        raise UserError(f"d2s-text: {message}")


class D2STextEncoder(HFTextEncoder):
    """`d2s-text`: the code's ``EncoderText_BERT`` plus its ``PromptLearner``.

    Per token, on the transformer's last hidden states H (after dropout 0.2):
    W = fc(H) + MLP(H), fc = Linear(H → D), MLP = Linear(H → 256) → BatchNorm1d → ReLU →
    Linear(256 → D). Sentence: t = LN(GPO(W)). Sparse captions add the decoder's d̄ [D]. The
    output is l2-normalised (``normalize``); the cosine head and the distillation are
    scale-invariant, so this only fixes the scale.

    Train/eval mismatch of the code: it trains with t + d̄ but evaluates
    l2norm(t + d̄/‖d̄‖). Here evaluation uses the trained form t + d̄ (the model is tested as it
    was trained); ``normalize_decoder_at_eval = true`` reproduces the code, e.g. to evaluate its
    released checkpoints faithfully.

    Other differences from the code, each a fix of something that is not the method: BatchNorm
    in the MLP sees real tokens only (the code's runs over padding too, so statistics depend on
    how much a batch is padded), and the decoder masks padded words. Augmentation and
    tokenisation are `hf-text`'s (VSE∞'s whole-word mask / random / delete at 0.2, as the code).

    Options (beyond `hf-text`'s ``model_path``, ``pooling``, ``lr_scale``, ``token_mask``,
    ``normalize``):
        embed_dim: joint space size D (the code: 512).
        mlp_hidden: hidden width of the token MLP (the code: 256).
        max_length: tokens per sparse caption incl. [CLS]/[SEP].
        dense_max_length: tokens per dense text; the code does not truncate, BERT stops at 512.
        dropout: on the transformer's hidden states (the code: 0.2).
        num_tokens: learnable decoder tokens (the code: 100); 0 removes the decoder (t̂ = t).
        decoder_depth: decoder blocks (the code: 4).
        decoder_heads: attention heads per block (the code: 4).
        decoder_mlp_ratio: MLP width per block as a multiple of D (the code: 4).
        decoder_init: ``"code"`` (default, faithful to the public code, whose timm ``Block``s keep
            ``nn.Linear``'s default init: kaiming-uniform weights, qkv and proj biases
            U(±1/√D)) or ``"xavier"`` (PyTorch's attention default: Xavier-uniform in-projection,
            zero biases); see `decoder.LearnableTokenDecoder`.
        normalize_decoder_at_eval: evaluate with d̄/‖d̄‖ as the code does (see above).
    """

    reads_text_source = True
    """`prepare` truncates dense descriptions and captions to their own lengths (`harness.capabilities.ReadsTextSource`)."""

    def __init__(
        self,
        ctx: BuildContext,
        *,
        model_path: str | None = None,
        embed_dim: int = 512,
        mlp_hidden: int = 256,
        pooling: PoolingKind = "gpo",
        lr_scale: NonNegative = 0.1,
        max_length: int = 64,
        dense_max_length: int = 512,
        token_mask: Fraction = 0.2,
        dropout: DropRate = 0.2,
        num_tokens: Count = 100,
        decoder_depth: AtLeastOne = 4,
        decoder_heads: int = 4,
        decoder_mlp_ratio: Positive = 4.0,
        decoder_init: Literal["code", "xavier"] = "code",
        normalize_decoder_at_eval: bool = False,
        normalize: bool = True,
    ) -> None:
        if num_tokens:
            _check(decoder_heads >= 1 and embed_dim % decoder_heads == 0, f"decoder_heads ({decoder_heads}) must divide embed_dim ({embed_dim})")
        super().__init__(
            ctx,
            model_path=model_path,
            embed_dim=embed_dim,
            pooling=pooling,
            lr_scale=lr_scale,
            max_length=max_length,
            token_mask=token_mask,
            normalize=normalize,
        )
        positions = getattr(self.transformer.config, "max_position_embeddings", dense_max_length)
        _check(2 <= dense_max_length <= positions, f"dense_max_length must be in [2, {positions}] for this model, got {dense_max_length}")
        hidden = self.transformer.config.hidden_size
        self.dense_max_length = dense_max_length
        self.normalize_decoder_at_eval = normalize_decoder_at_eval
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp_hidden), nn.BatchNorm1d(mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, embed_dim))
        self.norm = nn.LayerNorm(embed_dim)
        self.decoder = (
            LearnableTokenDecoder(embed_dim, num_tokens, decoder_depth, decoder_heads, decoder_mlp_ratio, init=decoder_init)
            if num_tokens
            else None
        )

    def prepare(self, captions: Sequence[str], source: str = CAPTIONS) -> dict[str, torch.Tensor]:
        """Tokenise once per split and text source.

        Returns ``input_ids`` int64 [M, L] (right-padded), ``lengths`` int64 [M], ``words`` int64
        [M, L] (each token's word index, −1 for specials and padding) and ``sparse`` bool [M]:
        True for captions (the decoder applies), False for any other text source (dense text,
        truncated at `dense_max_length` instead of `max_length`).
        """
        max_length = self.max_length if source == CAPTIONS else self.dense_max_length
        encoded = self.tokenizer(list(captions), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        words = torch.tensor(
            [[-1 if word is None else word for word in encoded.word_ids(row)] for row in range(len(captions))],
            dtype=torch.int64,
        )
        return {
            "input_ids": encoded["input_ids"],
            "lengths": encoded["attention_mask"].sum(dim=1),
            "words": words,
            "sparse": torch.full((len(captions),), source == CAPTIONS, dtype=torch.bool),
        }

    def token_features(self, inputs: Mapping[str, torch.Tensor]) -> VectorSets:
        """W = fc(H) + MLP(H) for every real token: VectorSets [B, L, D], zero at padding.

        In training the tokens are augmented first (`hf-text`'s whole-word scheme), so L and the
        lengths may shrink.
        """
        ids, lengths = self.step_tokens(inputs)
        real = real_positions(lengths, ids.shape[1])
        hidden = self.transformer(input_ids=ids, attention_mask=real.long()).last_hidden_state
        rows = self.dropout(hidden[real])  # [n_real, H]
        features = self.fc(rows) + self.mlp(rows)
        vectors = features.new_zeros(*real.shape, features.shape[-1])
        vectors[real] = features
        return VectorSets(vectors, lengths)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """inputs from `prepare` ([B, ...] rows) -> embeddings [B, D]: t for dense text, t + d̄ for captions."""
        words = self.token_features(inputs)
        sentence = self.norm(self.pool(words.vectors, words.lengths))
        sparse = inputs["sparse"]
        if self.decoder is not None and bool(sparse.any()):
            residual = self.decoder(words.vectors, words.lengths)
            if self.normalize_decoder_at_eval and not self.training:
                residual = l2_normalize(residual)
            sentence = sentence + residual * sparse[:, None].to(residual.dtype)
        return l2_normalize(sentence) if self.normalize else sentence
