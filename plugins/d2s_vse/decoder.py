"""The stage-2 decoder of D2S-VSE (the public code's ``PromptLearner``; docs/methods/d2s-vse.md).

M learnable tokens m ∈ ℝ^{M×D} (N(0, 1) init) are appended to a caption's word features W
[L, D]; the sequence [W; m] runs through `depth` pre-LN transformer blocks (D-dim, `heads` heads,
MLP ×`mlp_ratio`, GELU, qkv bias: timm's ViT ``Block``) and a final LayerNorm; the mean of the M
token outputs is the decoder's output d̄ ∈ ℝ^D, which the text encoder adds to the caption's
embedding: t̂ = t + d̄. Trained with distillation, the tokens learn to fill in what the sparse
caption leaves out of the dense description (paper Fig. 2). The decoder runs at inference too.

Token layout: the paper reports "Surround" (tokens before and after the words) as best; the code
appends them (Postfix). Without positional embeddings the blocks are permutation-equivariant, so
the token outputs are the same for any layout (tested); this module appends, as the code.

Padding: the code passes no attention mask, so padded word positions take part and a caption's
embedding depends on the longest caption in its batch. Here padded words are masked out
of attention (``key_padding_mask``): a caption's embedding is its own.

Initialisation (``init``): the code builds its blocks from timm's ``Block`` and never
re-initialises them, so every linear layer (qkv with bias, proj, fc1, fc2) keeps PyTorch's
``nn.Linear`` default: weights kaiming-uniform with a = √5, i.e. U(±1/√fan_in), biases
U(±1/√fan_in); LayerNorms weight 1, bias 0. ``"code"`` (the default) reproduces that on PyTorch's
``TransformerEncoderLayer``, whose attention otherwise starts with a Xavier-uniform in-projection
and zero biases; ``"xavier"`` keeps that PyTorch default (this module's behaviour before the option).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from baselines.vse_infinity.pooling import real_positions


class LearnableTokenDecoder(nn.Module):
    """Learnable tokens attending over the word features, mean-pooled: [B, L, D] -> [B, D].

    Args:
        dim: feature size D (the joint embedding size; the code: 512).
        num_tokens: M (the code: 100; paper Fig. 3 sweeps 10 to 120).
        depth: transformer blocks (the code: 4; Fig. 3 sweeps 1 to 6).
        heads: attention heads (the code: 4; Fig. 3: 4, 8, 12); must divide `dim`.
        mlp_ratio: hidden size of each block's MLP as a multiple of `dim` (the code: 4).
        init: ``"code"`` (default, faithful to the public code): every linear layer as timm's
            ``Block`` leaves it, ``nn.Linear``'s default (kaiming-uniform a = √5 weights, biases
            U(±1/√fan_in)), the qkv in-projection included; ``"xavier"``: PyTorch's
            ``MultiheadAttention`` default (Xavier-uniform in-projection, zero qkv and output
            biases), the MLP linears as in ``"code"``.

    The blocks are PyTorch's ``TransformerEncoderLayer`` with ``norm_first`` (pre-LN, as timm's
    ``Block``) and no dropout.
    """

    def __init__(
        self,
        dim: int = 512,
        num_tokens: int = 100,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        init: Literal["code", "xavier"] = "code",
    ) -> None:
        super().__init__()
        if num_tokens < 1 or depth < 1:
            raise ValueError(f"the decoder needs at least one token and one block (got {num_tokens} tokens, depth {depth})")
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide the feature size {dim}")
        if init not in ("code", "xavier"):
            raise ValueError(f"unknown decoder init {init!r}; choose 'code' or 'xavier'")
        self.tokens = nn.Parameter(torch.randn(num_tokens, dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        if init == "code":
            for block in self.blocks:
                timm_block_init(block)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """words [B, L, D] (padded), lengths int64 [B] (real words per caption, ≥ 1) -> d̄ [B, D]."""
        batch, width = words.shape[:2]
        tokens = self.tokens.to(words.dtype).expand(batch, -1, -1)
        sequence = torch.cat([words, tokens], dim=1)
        padded = ~real_positions(lengths.to(words.device), width)
        mask = torch.cat([padded, padded.new_zeros(batch, len(self.tokens))], dim=1)
        for block in self.blocks:
            sequence = block(sequence, src_key_padding_mask=mask)
        return self.norm(sequence[:, width:]).mean(dim=1)


def timm_block_init(block: nn.TransformerEncoderLayer) -> None:
    """Re-initialise a block's attention as timm's ``Block`` has it: the in-projection as
    ``nn.Linear(D, 3D)`` (kaiming-uniform a = √5 weight, bias U(±1/√D)) and the output projection
    as ``nn.Linear(D, D)``. The MLP linears and LayerNorms already have ``nn.Linear`` /
    ``nn.LayerNorm`` defaults."""
    attention = block.self_attn
    nn.init.kaiming_uniform_(attention.in_proj_weight, a=math.sqrt(5))
    bound = 1 / math.sqrt(attention.in_proj_weight.shape[1])
    nn.init.uniform_(attention.in_proj_bias, -bound, bound)
    nn.Linear.reset_parameters(attention.out_proj)
