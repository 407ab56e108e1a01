"""AsCL's hierarchical cross-modal fusion score (docs/methods/ascl.md) for every image–caption pair.

Image i: regions V_i [R, d] (unit norm) and global vector g_i [d] (the encoder's `summary`).
Caption j: words W_j [n_j, d] (not normalised). H = 8 heads of d/H dimensions, and

    Att_λ(Q, C) = concat_h softmax_c(λ Q^h C^hᵀ) C^h        (no projections, no scaling)

Local: Ŵ_ij = Att_4(V_i, W_j), V̂_ij = Att_9(W_j, V_i),
    S_local = ½ [mean_r cos(v_ir, ŵ_ij,r) + mean_t cos(w_jt, v̂_ij,t)].
Global: a^T = mean_r ŵ_ij,r, a^I = mean_t v̂_ij,t,
    e^T = l2n(W_c a^T + b_c),  u = W_a a^I + b_a,  t = σ(W_t [g_i; u] + b_t),
    e^I = l2n(t ⊙ g_i + (1 − t) ⊙ u),  S_global = e^I · e^T.
Final: S = u1 · S_local + (1 − u1) · S_global.

Nothing of size d is built per (pair, query): with the per-head affinities A_hrt = v^h_rᵀ w^h_t
and the attention weights α (regions over words) and β (words over regions),

    v_rᵀ ŵ_r = Σ_h Σ_t α_hrt A_hrt,      ‖ŵ_r‖² = Σ_h α_hr·ᵀ (W^h W^hᵀ) α_hr·,
    w_tᵀ v̂_t = Σ_h Σ_r β_hrt A_hrt,      ‖v̂_t‖² = Σ_h β_h·tᵀ (V^h V^hᵀ) β_h·t,
    a^T = concat_h (mean_r α_hr·) W^h,   a^I = concat_h (mean_t β_h·t) V^h,

so a pair costs H·R·L numbers per tensor plus two d-vectors (the pooled a^T, a^I) where explicit
attended sets would cost (R + n_j)·d. Padded regions and words are masked out of every softmax
and every mean, so a score is what the code computes on the unpadded sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from baselines.heads.blocks import (
    gather,
    needs_checkpoint,
    score_blockwise,
    score_grouped,
    score_in_chunks,
)
from baselines.vse.encoders import l2_normalize
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.interfaces import BuildContext
from harness.options import Fraction

EPS = 1e-8
"""The code's eps in l2n and in the cosine denominator."""


@dataclass(frozen=True)
class PairLayout:
    """How image-indexed and caption-indexed tensors meet.

    ``ALL_PAIRS``: every image of a block with every caption, pair axes [n_i, n_c].
    ``ALIGNED``: image p with caption p, one pair axis [P] (the ground-truth partners).
    ``BY_IMAGE``: image o with its own P captions, pair axes [O, P]; the captions come as
    [O·P] sets, caption o·P + p belonging to image o (re-rank lists grouped by image).
    ``BY_CAPTION``: likewise, caption o with its own P images.
    The fields are einsum labels; `lift_*` adds the missing pair axes for broadcasting.
    """

    image: str
    caption: str
    pair: str

    def lift_image(self, x: torch.Tensor) -> torch.Tensor:
        return self._lift(x, self.image)

    def lift_caption(self, x: torch.Tensor) -> torch.Tensor:
        return self._lift(x, self.caption)

    def _lift(self, x: torch.Tensor, labels: str) -> torch.Tensor:
        for position, label in enumerate(self.pair):
            if label not in labels:
                x = x.unsqueeze(position)
        return x


ALL_PAIRS = PairLayout("i", "j", "ij")
ALIGNED = PairLayout("p", "p", "p")
BY_IMAGE = PairLayout("o", "op", "op")
BY_CAPTION = PairLayout("op", "o", "op")


def _unflatten_grouped(x: torch.Tensor, labels: str, groups: int) -> torch.Tensor:
    """[O·P, ...] -> [O, P, ...] for the candidate side of a grouped layout (labels ``"op"``);
    any other side as it is."""
    return x.unflatten(0, (groups, -1)) if labels == "op" else x

PairScore = Callable[[VectorSets, VectorSets], torch.Tensor]
"""A function of a block of images and captions: scores [bi, bc], or aligned scores [P] or embeddings [P, d]."""


@dataclass
class CrossAttention:
    """Both attention directions of a set of pairs; `...` is the layout's pair axes.

    Attributes:
        regions: [n_i, H, R, d/H], words: [n_c, H, L, d/H] (per head, zero padded; the candidate
            side of a grouped layout [O, P, H, N, d/H]).
        region_mask: [..., 1, R, 1], word_mask: [..., 1, 1, L] (float, 1 for real items).
        affinity: A [..., H, R, L].
        i2t: α [..., H, R, L], each region's softmax over real words (λ_i2t).
        t2i: β [..., H, R, L], each word's softmax over real regions (λ_t2i).
    """

    layout: PairLayout
    regions: torch.Tensor
    words: torch.Tensor
    region_mask: torch.Tensor
    word_mask: torch.Tensor
    affinity: torch.Tensor
    i2t: torch.Tensor
    t2i: torch.Tensor


def cross_attention(
    images: VectorSets, texts: VectorSets, layout: PairLayout, heads: int, lambda_i2t: float, lambda_t2i: float
) -> CrossAttention:
    """Att_λ in both directions for the pairs of `layout` (images [n_i, R, d], texts [n_c, L, d],
    both at float32 or wider and zero past each length, as `baselines.heads.blocks` hands them
    to a block)."""
    regions, region_mask = _split_heads(images, heads)
    words, word_mask = _split_heads(texts, heads)
    regions, region_mask = (_unflatten_grouped(x, layout.image, len(texts)) for x in (regions, region_mask))
    words, word_mask = (_unflatten_grouped(x, layout.caption, len(images)) for x in (words, word_mask))
    region_mask = layout.lift_image(region_mask)[..., None, :, None]
    word_mask = layout.lift_caption(word_mask)[..., None, None, :]
    affinity = torch.einsum(f"{layout.image}hrd,{layout.caption}htd->{layout.pair}hrt", regions, words)
    # Padded contexts get a −inf logit, added together with the λ scaling in one pass.
    i2t = torch.add(_bias(word_mask, affinity), affinity, alpha=lambda_i2t).softmax(dim=-1)
    t2i = torch.add(_bias(region_mask, affinity), affinity, alpha=lambda_t2i).softmax(dim=-2)
    dtype = affinity.dtype
    return CrossAttention(layout, regions, words, region_mask.to(dtype), word_mask.to(dtype), affinity, i2t, t2i)


def _bias(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """0 where `mask` is True, −inf elsewhere, in the dtype and device of `like`."""
    return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(~mask, float("-inf"))


def _split_heads(sets: VectorSets, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """zero-padded vectors [B, N, d] -> [B, H, N, d/H] (a view); mask bool [B, N]. The head zeroes
    the padding once per call, not once per block."""
    batch, width, dim = sets.vectors.shape
    return sets.vectors.view(batch, width, heads, dim // heads).transpose(1, 2), sets.mask()


def _cosine(dot: torch.Tensor, sq_norm_a: torch.Tensor, sq_norm_b: torch.Tensor) -> torch.Tensor:
    """x·y / max(‖x‖‖y‖, eps) from the dot product and squared norms; clamping the squared product
    keeps the sqrt's gradient finite."""
    return dot / (sq_norm_a * sq_norm_b).clamp(min=EPS**2).sqrt()


def local_score(att: CrossAttention) -> torch.Tensor:
    """S_local [...] = ½ (mean over real regions of cos(v_r, ŵ_r) + mean over real words of cos(w_t, v̂_t))."""
    layout, regions, words = att.layout, att.regions, att.words
    word_gram = words @ words.transpose(-1, -2)  # [n_c, H, L, L]
    region_gram = regions @ regions.transpose(-1, -2)  # [n_i, H, R, R]
    region_sq = layout.lift_image(regions.square().sum((-3, -1)))  # ‖v_r‖², [..., R]
    word_sq = layout.lift_caption(words.square().sum((-3, -1)))  # ‖w_t‖², [..., L]

    i2t_dot = (att.i2t * att.affinity).sum((-3, -1))  # [..., R]
    i2t_gram = torch.einsum(f"{layout.pair}hrt,{layout.caption}htu->{layout.pair}hru", att.i2t, word_gram)
    attended_words_sq = (att.i2t * i2t_gram).sum((-3, -1))
    region_mask = att.region_mask[..., 0, :, 0]
    s_i2t = (_cosine(i2t_dot, region_sq, attended_words_sq) * region_mask).sum(-1) / region_mask.sum(-1)

    t2i_dot = (att.t2i * att.affinity).sum((-3, -2))  # [..., L]
    t2i_gram = torch.einsum(f"{layout.image}hrs,{layout.pair}hst->{layout.pair}hrt", region_gram, att.t2i)
    attended_regions_sq = (att.t2i * t2i_gram).sum((-3, -2))
    word_mask = att.word_mask[..., 0, 0, :]
    s_t2i = (_cosine(t2i_dot, word_sq, attended_regions_sq) * word_mask).sum(-1) / word_mask.sum(-1)
    return (s_i2t + s_t2i) / 2


def pooled_text(att: CrossAttention) -> torch.Tensor:
    """a^T [..., d] = mean over real regions of the attended words ŵ_r = (mean_r α_hr·) W^h per head."""
    layout = att.layout
    mean_weights = (att.i2t * att.region_mask).sum(-2) / att.region_mask.sum(-2)  # [..., H, L]
    pooled = torch.einsum(f"{layout.pair}ht,{layout.caption}htd->{layout.pair}hd", mean_weights, att.words)
    return pooled.flatten(-2)


def pooled_image(att: CrossAttention) -> torch.Tensor:
    """a^I [..., d] = mean over real words of the attended regions v̂_t = (mean_t β_h·t) V^h per head."""
    layout = att.layout
    mean_weights = (att.t2i * att.word_mask).sum(-1) / att.word_mask.sum(-1)  # [..., H, R]
    pooled = torch.einsum(f"{layout.pair}hr,{layout.image}hrd->{layout.pair}hd", mean_weights, att.regions)
    return pooled.flatten(-2)


class AsCLFusionHead(nn.Module):
    """`ascl-fusion`: S = u1·S_local + (1 − u1)·S_global for VectorSets [n_i, R, d] × [n_c, L, d] -> [n_i, n_c].

    The images' `summary` carries g [n_i, d]. `global_pooling` decides which partner the global
    branch pools with:

    - ``"pair"`` (default, leak-free): a^T, a^I, e^T and e^I are computed for each (image,
      caption) pair, so a pair's score depends on that pair only and evaluation is chunked like
      any head; re-rank evaluation scores explicit pair lists (`score_pairs`).
    - ``"ground-truth-partner"`` (the public code): e^T_j is pooled with caption j's paired
      image and e^I_i with image i's first paired caption, then S_global = e^I e^Tᵀ. In a
      training batch the pairs are the diagonal (column k and generated column B + k pair with
      image k); at evaluation the head reads the split's labels (`reads_pairing_labels`,
      `score_with_pairing`). A score then depends on the pairing labels and on the partner's
      content: the leak described in docs/methods/ascl.md, kept to reproduce the code's numbers.

    Options:
        u1: weight of the local score (paper and code: 0.8). 1 = local only, 0 = global only;
            the unused branch is not computed (and with u1 = 1 its layers are frozen).
        global_pooling: ``"pair"`` or ``"ground-truth-partner"`` (see above).
        train_fusion: train W_a and the gate W_t. The code never hands them to its optimiser, so
            they stay at their random init: False reproduces that. W_c trains either way.
        embed_dim: d, the encoders' joint size, which sizes W_c, W_a and the gate; it must match
            the encoders' `embed_dim` (a head is built without seeing them).
        heads: H (code: 8); lambda_i2t, lambda_t2i: λ of the two directions (code: 4 and 9).
        pair_chunk: most pairs per block. A block holds about ten [pairs, H, R, L] float32
            tensors (49 regions × 20 words × 8 heads: 0.3 MB per pair). Small blocks are also
            faster on CPU: a 32 × 64 training batch scores in 0.65 s forward + backward with
            256-pair blocks and 1.9 s in one block (2 cores, before checkpointing), where fresh
            large buffers cost page faults. `score_pairs` gathers `pair_chunk` pairs at a time.
        checkpoint_blocks: with gradients, recompute each block in the backward pass instead of
            keeping its intermediates (`baselines.heads.blocks.call_block`), so a training step
            holds one block's at a time, not batch² × H × R × L; forward values are unchanged.
    """

    def __init__(
        self,
        ctx: BuildContext,
        *,
        u1: Fraction = 0.8,
        global_pooling: Literal["pair", "ground-truth-partner"] = "pair",
        train_fusion: bool = True,
        embed_dim: int = 1024,
        heads: int = 8,
        lambda_i2t: float = 4.0,
        lambda_t2i: float = 9.0,
        pair_chunk: int = 256,
        checkpoint_blocks: bool = True,
    ) -> None:
        super().__init__()
        if heads < 1 or pair_chunk < 1 or embed_dim % heads:
            raise UserError(
                f"ascl-fusion: heads must divide embed_dim and pair_chunk be ≥ 1 (got {heads}, {embed_dim}, {pair_chunk})"
            )
        self.u1, self.global_pooling, self.embed_dim, self.heads = u1, global_pooling, embed_dim, heads
        self.lambda_i2t, self.lambda_t2i, self.pair_chunk = lambda_i2t, lambda_t2i, pair_chunk
        self.checkpoint_blocks = checkpoint_blocks
        self.reads_pairing_labels = global_pooling == "ground-truth-partner"
        self.text_fc = nn.Linear(embed_dim, embed_dim)  # W_c (the code's fc_text)
        nn.init.xavier_uniform_(self.text_fc.weight)
        nn.init.zeros_(self.text_fc.bias)
        self.image_fc = nn.Linear(embed_dim, embed_dim)  # W_a (fc_attn_i): Xavier-uniform, as the code
        nn.init.xavier_uniform_(self.image_fc.weight)
        nn.init.zeros_(self.image_fc.bias)
        self.gate = nn.Linear(2 * embed_dim, embed_dim)  # W_t on [g; u] (gate0): PyTorch's default init
        for layer in (self.image_fc, self.gate):
            layer.requires_grad_(train_fusion)
        if u1 == 1:  # local only: the global branch is never computed, so nothing of it trains
            for layer in (self.text_fc, self.image_fc, self.gate):
                layer.requires_grad_(False)

    # -- the two entry points ------------------------------------------------------------------

    def forward(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """images [n_i, R, d] (+ summary g [n_i, d]), texts [n_c, L, d] -> scores [n_i, n_c].

        With ground-truth partners, the call is a training batch: caption k pairs with image
        k mod n_i (n_c a multiple of n_i), image i with caption i.
        """
        self._check(images, texts)
        with torch.autocast(images.vectors.device.type, enabled=False):
            if self.global_pooling == "pair":
                return self._blockwise(images, texts, self._pair_scores)
            if len(texts) % len(images):
                raise UserError(
                    f"ascl-fusion: a training batch pairs caption k with image k mod {len(images)}; got {len(texts)} captions"
                )
            caption_index = torch.arange(len(texts), device=images.vectors.device)
            return self._partner_scores(images, texts, caption_index % len(images), caption_index[: len(images)])

    def score_with_pairing(self, images: VectorSets, texts: VectorSets, image_of_caption: torch.Tensor) -> torch.Tensor:
        """Evaluation with ground-truth partners on a whole split: [n_i, R, d] × [n_c, L, d] -> [n_i, n_c].

        image_of_caption: int64 [n_c]. Image i pools with its first caption (the code keeps the
        embedding computed with caption 5i); every image needs one.
        """
        self._check(images, texts)
        positions = torch.arange(len(texts), device=image_of_caption.device)
        first = positions.new_full((len(images),), len(texts)).scatter_reduce(0, image_of_caption, positions, "amin")
        if bool((first == len(texts)).any()):
            raise UserError("ascl-fusion with ground-truth partners needs at least one caption per image")
        with torch.autocast(images.vectors.device.type, enabled=False):
            return self._partner_scores(images, texts, image_of_caption, first)

    def score_pairs(
        self, images: VectorSets, texts: VectorSets, image_index: torch.Tensor, caption_index: torch.Tensor
    ) -> torch.Tensor:
        """Scores of explicit pairs (re-rank, `harness.capabilities.ScoresPairs`): entry p =
        s(images[image_index[p]], texts[caption_index[p]]).

        images [n_i, R, d] (+ summary [n_i, d]), texts [n_c, L, d]; image_index, caption_index
        int64 [P] -> [P], those entries of `forward(images, texts)` up to float32 rounding. Pairs
        sharing an image (or a caption, whichever gathers less) are scored together, that set
        gathered once with its candidates in the BY_IMAGE (BY_CAPTION) layout, `pair_chunk`
        pairs a block (`baselines.heads.blocks.score_grouped`); pairs whose sets repeat nowhere
        are gathered side by side and scored in the ALIGNED layout. Only ``global_pooling =
        "pair"`` scores a pair on its own.
        """
        if self.global_pooling != "pair":
            raise UserError(
                'ascl-fusion: re-rank evaluation needs global_pooling = "pair" (ground-truth partners pool over the split)'
            )
        self._check(images, texts)
        if image_index.shape != caption_index.shape or image_index.dim() != 1:
            raise UserError(
                f"ascl-fusion: score_pairs takes two index vectors of one length (got {tuple(image_index.shape)} "
                f"and {tuple(caption_index.shape)})"
            )
        if len(image_index) == 0:
            dtype = torch.promote_types(torch.promote_types(images.vectors.dtype, texts.vectors.dtype), torch.float32)
            return images.vectors.new_zeros(0, dtype=dtype)
        checkpointed = needs_checkpoint(self.checkpoint_blocks, self, images, texts)

        def aligned(image_rows: torch.Tensor, caption_rows: torch.Tensor) -> torch.Tensor:
            return self._pair_scores(gather(images, image_rows), gather(texts, caption_rows), ALIGNED)

        def grouped(by: str, group_rows: torch.Tensor, candidate_rows: torch.Tensor) -> torch.Tensor:
            if by == "image":
                return self._pair_scores(gather(images, group_rows), gather(texts, candidate_rows.flatten()), BY_IMAGE)
            return self._pair_scores(gather(images, candidate_rows.flatten()), gather(texts, group_rows), BY_CAPTION)

        set_cost = {"image": images.vectors[0].numel() + images.summary.shape[-1], "caption": texts.vectors[0].numel()}
        chunks = {"image": self.pair_chunk, "caption": self.pair_chunk}
        with torch.autocast(images.vectors.device.type, enabled=False):
            return score_grouped(
                grouped, aligned, image_index, caption_index, self.pair_chunk, chunks, set_cost, checkpointed=checkpointed
            )

    # -- scoring -------------------------------------------------------------------------------

    def _pair_scores(self, images: VectorSets, texts: VectorSets, layout: PairLayout = ALL_PAIRS) -> torch.Tensor:
        """The pairs of a block, each global branch pooled within its pair: [bi] × [bc] -> [bi, bc]
        (ALL_PAIRS), or [P] × [P] -> [P] (ALIGNED)."""
        att = self._attend(images, texts, layout)
        local = local_score(att) if self.u1 > 0 else 0
        if self.u1 == 1:
            return local
        text_global = self._text_global(pooled_text(att))
        summary = _unflatten_grouped(self._summary(images), layout.image, len(texts))
        image_global = self._image_global(pooled_image(att), layout.lift_image(summary))
        return self.u1 * local + (1 - self.u1) * (text_global * image_global).sum(-1)

    def _partner_scores(
        self, images: VectorSets, texts: VectorSets, image_of_caption: torch.Tensor, caption_of_image: torch.Tensor
    ) -> torch.Tensor:
        """S with the global branch pooled over ground-truth partners: [n_i] × [n_c] -> [n_i, n_c]."""
        local = self._blockwise(images, texts, self._local_scores) if self.u1 > 0 else 0
        if self.u1 == 1:
            return local
        caption_index = torch.arange(len(texts), device=image_of_caption.device)
        image_index = torch.arange(len(images), device=caption_of_image.device)
        text_global = self._aligned(images, texts, image_of_caption, caption_index, self._partner_text)
        image_global = self._aligned(images, texts, image_index, caption_of_image, self._partner_image)
        return self.u1 * local + (1 - self.u1) * image_global @ text_global.T

    def _attend(self, images: VectorSets, texts: VectorSets, layout: PairLayout) -> CrossAttention:
        return cross_attention(images, texts, layout, self.heads, self.lambda_i2t, self.lambda_t2i)

    def _local_scores(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """S_local of every pair of a block, [bi] × [bc] -> [bi, bc]."""
        return local_score(self._attend(images, texts, ALL_PAIRS))

    def _partner_text(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """e^T [P, d] of aligned pairs (image p, caption p)."""
        return self._text_global(pooled_text(self._attend(images, texts, ALIGNED)))

    def _partner_image(self, images: VectorSets, texts: VectorSets) -> torch.Tensor:
        """e^I [P, d] of aligned pairs (image p, caption p)."""
        return self._image_global(pooled_image(self._attend(images, texts, ALIGNED)), self._summary(images))

    def _text_global(self, pooled: torch.Tensor) -> torch.Tensor:
        """e^T = l2n(W_c a^T + b_c), a^T [..., d]."""
        return l2_normalize(self.text_fc(pooled), eps=EPS)

    def _image_global(self, pooled: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        """e^I = l2n(t ⊙ g + (1 − t) ⊙ u), u = W_a a^I + b_a, t = σ(W_t [g; u] + b_t).

        pooled a^I [..., d]; summary g broadcastable to it. The gate's g half is applied once per
        image, not once per pair.
        """
        d = self.embed_dim
        u = self.image_fc(pooled)
        gate = torch.sigmoid(
            F.linear(summary, self.gate.weight[:, :d], self.gate.bias) + F.linear(u, self.gate.weight[:, d:])
        )
        return l2_normalize(gate * summary + (1 - gate) * u, eps=EPS)

    @staticmethod
    def _summary(images: VectorSets) -> torch.Tensor:
        """g [n_i, d] at float32 or wider."""
        return images.summary.to(torch.promote_types(images.summary.dtype, torch.float32))

    # -- blocks ----------------------------------------------------------------------------------

    def _blockwise(self, images: VectorSets, texts: VectorSets, score: PairScore) -> torch.Tensor:
        """[n_i, n_c] from blocks of at most `pair_chunk` pairs, each scored at once by `score`
        (`baselines.heads.blocks.score_blockwise`; checkpointed with gradients)."""
        checkpointed = needs_checkpoint(self.checkpoint_blocks, self, images, texts)
        return score_blockwise(images, texts, self.pair_chunk, score, checkpointed=checkpointed)

    def _aligned(
        self,
        images: VectorSets,
        texts: VectorSets,
        image_index: torch.Tensor,
        caption_index: torch.Tensor,
        embed: PairScore,
    ) -> torch.Tensor:
        """embed(images[image_index[p]], texts[caption_index[p]]) for every aligned pair p, [P, ...],
        gathered `pair_chunk` pairs at a time (`baselines.heads.blocks.score_in_chunks`)."""
        checkpointed = needs_checkpoint(self.checkpoint_blocks, self, images, texts)

        def block(image_rows: torch.Tensor, caption_rows: torch.Tensor) -> torch.Tensor:
            return embed(gather(images, image_rows), gather(texts, caption_rows))

        return score_in_chunks(block, image_index, caption_index, self.pair_chunk, checkpointed=checkpointed)

    def _check(self, images: VectorSets, texts: VectorSets) -> None:
        """One-line errors for encoders this head cannot read."""
        if not (isinstance(images, VectorSets) and isinstance(texts, VectorSets)) or images.summary is None:
            raise UserError(
                "ascl-fusion scores region and word sets with a global image vector; pair it with ascl-image and ascl-text"
            )
        dims = {images.vectors.shape[-1], texts.vectors.shape[-1], images.summary.shape[-1]}
        if dims != {self.embed_dim}:
            raise UserError(
                f"ascl-fusion: embed_dim is {self.embed_dim} but the encoders give {sorted(dims)}-d vectors; "
                "set the same embed_dim on image_encoder, text_encoder and similarity_head"
            )
