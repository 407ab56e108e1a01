"""Registers the similarity heads shared by every method."""

from harness.hookspecs import hookimpl


@hookimpl
def register_similarity_heads(register):
    register("cosine", "baselines.heads.cosine:CosineHead")
