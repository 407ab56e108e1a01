"""SCAN (Lee et al., ECCV 2018): region and word embeddings scored by stacked cross attention."""
