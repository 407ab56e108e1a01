"""The stage-2 decoder of D2S-VSE (d2svse.md §3.4, the public code's ``PromptLearner``).

M learnable tokens m ∈ ℝ^{M×D} (N(0, 1) init) are appended to a caption's word features W
[L, D]; the sequence [W; m] runs through `depth` pre-LN transformer blocks (D-dim, `heads` heads,
MLP ×`mlp_ratio`, GELU, qkv bias: timm's ViT ``Block``) and a final LayerNorm; the mean of the M
token outputs is the decoder's output d̄ ∈ ℝ^D, which the text encoder adds to the caption's
embedding: t̂ = t + d̄. Trained with distillation, the tokens learn to fill in what the sparse
caption leaves out of the dense description (paper Fig. 2). The decoder runs at inference too.

Token layout: the paper reports "Surround" (tokens before and after the words) as best; the code
appends them (Postfix). Without positional embeddings the blocks are permutation-equivariant, so
the token outputs are the same for any layout (§10.1); this module appends, as the code.

Padding: the code passes no attention mask, so padded word positions take part and a caption's
embedding depends on the longest caption in its batch (§10.6). Here padded words are masked out
of attention (``key_padding_mask``): a caption's embedding is its own.
"""

from __future__ import annotations

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

    The blocks are PyTorch's ``TransformerEncoderLayer`` with ``norm_first`` (pre-LN, as timm's
    ``Block``), no dropout, and PyTorch's default initialisation (the code's is not recorded).
    """

    def __init__(self, dim: int = 512, num_tokens: int = 100, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if num_tokens < 1 or depth < 1:
            raise ValueError(f"the decoder needs at least one token and one block (got {num_tokens} tokens, depth {depth})")
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide the feature size {dim}")
        self.tokens = nn.Parameter(torch.randn(num_tokens, dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

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
