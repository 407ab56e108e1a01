"""The AsCL method recipe (docs/methods/ascl.md): components, generated samples and training as data.

Defaults are the paper's where it is known and the public code's elsewhere: joint size 1024,
positives T⁺ drawn per caption from {truncate-half, concat-siblings}, negatives drawn per batch
from {gaussian-noise, feature-dropout, token-shuffle, zero-dim-or-token}, L = ½ ℒ(I, T) + ½ ℒ(I, T⁺)
(the code: 0.4 / 0.6, i.e. ``generators.positive_weight = 0.6``), Adam lr 5e-4 annealed by cosine
to 1e-4 over 20 epochs (stepped per epoch), batch 64, grad clip 2, InfoNCE τ = 0.1, u1 = 0.8.

The code's leaky evaluation and untrained fusion layers are head options::

    similarity_head = { global_pooling = "ground-truth-partner", train_fusion = false }

`embed_dim` is set on all three components and must agree.
"""

from harness.interfaces import MethodRecipe

EMBED_DIM = 1024

ASCL = MethodRecipe(
    name="ascl",
    summary=(
        "AsCL: region/word cross attention fused with a gated global branch, generated positives "
        "(truncation, concatenation) and feature-level negatives, InfoNCE τ = 0.1"
    ),
    paper=(
        "Gong, Mai, Huang, AsCL: An Asymmetry-sensitive Contrastive Learning Method for Image-Text "
        "Retrieval with Cross-Modal Fusion, ICME 2024 (arXiv:2405.10029)"
    ),
    defaults={
        "image_encoder": {
            "name": "ascl-image", "region_feature": "regions", "global_feature": "pooled", "embed_dim": EMBED_DIM
        },
        "text_encoder": {"name": "ascl-text", "embed_dim": EMBED_DIM},
        "similarity_head": {"name": "ascl-fusion", "u1": 0.8, "embed_dim": EMBED_DIM},
        "generators": {
            "positives": [{"name": "truncate-half"}, {"name": "concat-siblings"}],
            "negatives": [
                {"name": "gaussian-noise"},
                {"name": "feature-dropout"},
                {"name": "token-shuffle"},
                {"name": "zero-dim-or-token"},
            ],
            "positive_weight": 0.5,
            "positive_mix": "per-caption",
            "negative_mix": "per-batch",
        },
        "train": {
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 5e-4,
            "lr_schedule": "cosine",
            "lr_min": 1e-4,
            "grad_clip": 2.0,
        },
        "stages": {"main": {"epochs": 20, "loss": {"name": "ascl-infonce", "temperature": 0.1}}},
    },
)
