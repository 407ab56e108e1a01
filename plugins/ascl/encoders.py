"""AsCL encoders (docs/methods/ascl.md): linear projections of frozen features into one joint space.

Only linear layers train, as in the code: W_r (regions), W_g (global CNN vector), W_w (words);
the cross-modal layers W_c, W_a and the gate live in the similarity head (`ascl-fusion`),
because what they read depends on the image–caption pair. Both encoders return `VectorSets`; the
image's global vector travels as its `summary`.

`embed_dim` defaults to the paper's 1024; `configs/ascl_ablation.toml` uses 256 on the demo set.
Initialisation is Xavier-uniform with zero bias, as the public code initialises these linear
layers.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from baselines.vse.encoders import l2_normalize
from harness.embeddings import VectorSets
from harness.errors import UserError
from harness.interfaces import BuildContext
from plugins.ascl.captions import MAX_WORDS, pre_caption


def _xavier_linear(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class AsCLImageEncoder(nn.Module):
    """Regions v_r = l2n(W_r x_r + b_r) and global g = W_g l2n(x_g) + b_g.

    The code's regions are 36 Faster R-CNN boxes [36, 2048] and its global vector ResNet-152's
    pooled output; here any region set [R, D] works (the demo's ``regions`` are
    EfficientNet-Lite0's 7×7 grid [49, 1280], BUTD ``precomp`` regions [36, 2048]) and the global
    vector is the backbone's ``pooled`` [1280]. A dataset without a global feature (``precomp``)
    can set ``global_feature = "regions"``: the mean of the regions stands in for the CNN vector.
    g is not normalised here; the head's gate fuses it, then normalises.

    Options:
        region_feature: image feature holding the regions, per item [R, D].
        global_feature: image feature holding the global vector, per item [D] (or [R, D], averaged).
        embed_dim: joint space size (paper: 1024).
    """

    def __init__(
        self, ctx: BuildContext, *, region_feature: str = "regions", global_feature: str = "pooled", embed_dim: int = 1024
    ) -> None:
        super().__init__()
        offered = ctx.image_feature_shapes
        for name in (region_feature, global_feature):
            if name not in offered:
                raise UserError(f"image feature {name!r} is not offered; offered: {', '.join(sorted(offered)) or 'none'}")
        region_shape, global_shape = tuple(offered[region_feature]), tuple(offered[global_feature])
        if len(region_shape) != 2:
            raise UserError(f"ascl-image: region_feature {region_feature!r} is {region_shape} per image; it needs [R, D]")
        if len(global_shape) not in (1, 2):
            raise UserError(f"ascl-image: global_feature {global_feature!r} is {global_shape} per image; it needs [D] or [R, D]")
        self.region_feature, self.global_feature = region_feature, global_feature
        self.average_global = len(global_shape) == 2
        self.region_fc = _xavier_linear(region_shape[1], embed_dim)
        self.global_fc = _xavier_linear(global_shape[-1], embed_dim)

    def forward(self, features: Mapping[str, torch.Tensor]) -> VectorSets:
        """features: regions [B, R, D_r], global [B, D_g] -> VectorSets [B, R, embed_dim] (every
        region real, unit norm) with summary g [B, embed_dim]."""
        regions = l2_normalize(self.region_fc(features[self.region_feature]))
        global_input = features[self.global_feature]
        if self.average_global:
            global_input = global_input.mean(dim=1)
        summary = self.global_fc(l2_normalize(global_input))
        lengths = torch.full((regions.shape[0],), regions.shape[1], dtype=torch.int64, device=regions.device)
        return VectorSets(regions, lengths, summary)


class AsCLTextEncoder(nn.Module):
    """Words w_t = W_w h_t + b_w on the frozen text backbone's last hidden states.

    The code runs frozen BERT-base (768-d); here the job's frozen text backbone (MiniLM, 384-d)
    gives ``tokens`` [M, L, 384] and ``lengths`` through ``ctx.frozen_text``. Every real token,
    [CLS] and [SEP] included, is a word, and words are not normalised (as the code). `prepare`
    pads to the longest caption of its call (the trainer also calls it on generated captions);
    `forward` trims a batch to its own longest caption, as BERT's ``padding='longest'`` does.

    Options:
        embed_dim: joint space size (paper: 1024).
        clean: run `pre_caption` before the backbone, as the code does for its captions. The code
            feeds concatenated positives (`concat-siblings`) to BERT uncleaned; with this on they
            are cleaned too (punctuation, 60-word cap), a deviation the real captions outweigh.
    """

    def __init__(self, ctx: BuildContext, *, embed_dim: int = 1024, clean: bool = True) -> None:
        super().__init__()
        self.frozen_text = ctx.frozen_text
        self.clean = clean
        token_dim = ctx.frozen_text.encode_texts(["a"])["tokens"].shape[-1]
        self.word_fc = _xavier_linear(token_dim, embed_dim)

    def prepare(self, captions: Sequence[str]) -> dict[str, np.ndarray]:
        """captions -> ``tokens`` float [M, L, D_text] (zero past each length), ``lengths`` int [M].

        The frozen features come back as the cache holds them, memory-mapped: COCO's 566k
        training captions are tens of GB of tokens, and the trainer reads only each batch's rows.
        """
        texts = [pre_caption(caption, MAX_WORDS) for caption in captions] if self.clean else list(captions)
        encoded = self.frozen_text.encode_texts(texts)
        return {"tokens": encoded["tokens"], "lengths": encoded["lengths"]}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> VectorSets:
        """tokens [B, L, D_text], lengths [B] -> VectorSets [B, max(lengths), embed_dim], zero padding."""
        lengths = inputs["lengths"]
        tokens = inputs["tokens"][:, : int(lengths.max())]
        words = VectorSets(self.word_fc(tokens), lengths)
        return VectorSets(words.vectors * words.mask()[..., None], lengths)
