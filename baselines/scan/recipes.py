"""SCAN method recipe: components, defaults and stages as data (docs/methods/scan.md).

The default is the paper's t-i AVG model (λ1 = 9), its best single model on COCO 1K. The README
of kuanghuei/SCAN lists four variants; each is a set of `similarity_head` keys:

=========  ===============================================  ==========================================
variant    F30K                                             COCO
=========  ===============================================  ==========================================
t-i LSE    direction="t2i" aggregation="lse"                same
           lambda_softmax=9 lambda_lse=6
t-i AVG    direction="t2i" aggregation="avg"                same
           lambda_softmax=9  (the default)
i-t LSE    direction="i2t" aggregation="lse"                lambda_lse=20
           lambda_softmax=4 lambda_lse=5
i-t AVG    direction="i2t" aggregation="avg"                same
           lambda_softmax=4
=========  ===============================================  ==========================================

e.g. in an experiment file::

    [methods.scan-i2t-lse]
    method = "scan"
    similarity_head = { direction = "i2t", aggregation = "lse", lambda_softmax = 4.0, lambda_lse = 20.0 }

All published runs use ``--max_violation --bi_gru``, margin 0.2, batch 128, grad clip 2 and Adam.
The defaults are the F30K schedule (lr 2e-4, 30 epochs, ×0.1 every 15); the COCO schedule is
``train.lr = 5e-4``, ``train.lr_decay_every = 10``, ``stages.main.epochs = 20``. The VSE0 sum of
hinges is ``stages.main.loss.name = "sum-hinge-triplet"``.
"""

from harness.interfaces import MethodRecipe

SCAN = MethodRecipe(
    name="scan",
    summary=(
        "SCAN t-i AVG: per-region and per-word (BiGRU) embeddings, stacked cross attention (λ1 = 9), "
        "hardest-negative triplet (margin 0.2)"
    ),
    paper="Lee et al., Stacked Cross Attention for Image-Text Matching, ECCV 2018",
    defaults={
        "image_encoder": {"name": "scan-region", "feature": "regions", "embed_dim": 1024},
        "text_encoder": {
            "name": "scan-bigru", "word_dim": 300, "embed_dim": 1024, "min_count": 4, "bidirectional": True
        },
        "similarity_head": {
            "name": "scan-attention", "direction": "t2i", "aggregation": "avg", "lambda_softmax": 9.0
        },
        "train": {"batch_size": 128, "optimizer": "adam", "lr": 2e-4, "lr_decay_every": 15, "grad_clip": 2.0},
        "stages": {"main": {"epochs": 30, "loss": {"name": "hardest-negative-triplet", "margin": 0.2}}},
    },
)
