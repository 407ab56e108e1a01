"""VSE-family method recipes: components, defaults and stages as data."""

from harness.interfaces import MethodRecipe

VSE_PLUS_PLUS = MethodRecipe(
    name="vse++",
    summary="VSE++: linear image head, GRU text encoder, cosine, hardest-negative triplet (margin 0.2)",
    paper="Faghri et al., VSE++: Improving Visual-Semantic Embeddings with Hard Negatives, BMVC 2018",
    defaults={
        "image_encoder": {"name": "vse-linear", "feature": "pooled", "embed_dim": 1024},
        "text_encoder": {"name": "vse-gru", "word_dim": 300, "embed_dim": 1024, "min_count": 4},
        "similarity_head": {"name": "cosine"},
        "train": {"batch_size": 128, "optimizer": "adam", "lr": 2e-4, "lr_decay_every": 15, "grad_clip": 2.0},
        "stages": {"main": {"epochs": 30, "loss": {"name": "hardest-negative-triplet", "margin": 0.2}}},
    },
)
