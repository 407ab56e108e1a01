"""Registers AsCL (docs/methods/ascl.md) and its parts; every component is usable on its own."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("ascl-image", "plugins.ascl.encoders:AsCLImageEncoder", kind="image")
    register("ascl-text", "plugins.ascl.encoders:AsCLTextEncoder", kind="text")


@hookimpl
def register_similarity_heads(register):
    register("ascl-fusion", "plugins.ascl.heads:AsCLFusionHead")


@hookimpl
def register_sample_generators(register):
    register("truncate-half", "plugins.ascl.generators:TruncateHalf")
    register("concat-siblings", "plugins.ascl.generators:ConcatSiblings")
    register("random-deletion", "plugins.ascl.generators:RandomDeletion")
    register("random-swap", "plugins.ascl.generators:RandomSwap")
    register("gaussian-noise", "plugins.ascl.generators:GaussianNoise")
    register("feature-dropout", "plugins.ascl.generators:FeatureDropout")
    register("token-shuffle", "plugins.ascl.generators:TokenShuffle")
    register("zero-dim-or-token", "plugins.ascl.generators:ZeroDimOrToken")


@hookimpl
def register_losses(register):
    register("ascl-infonce", "plugins.ascl.losses:AsCLInfoNCE")


@hookimpl
def register_methods(register):
    register("ascl", "plugins.ascl.recipes:ASCL")
