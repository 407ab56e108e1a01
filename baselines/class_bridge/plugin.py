"""Registers the training-free class-bridge baseline."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("class-bridge-image", "baselines.class_bridge.encoders:ClassBridgeImageEncoder", kind="image")
    register("frozen-sentence", "baselines.class_bridge.encoders:FrozenSentenceEncoder", kind="text")


@hookimpl
def register_methods(register):
    register("class-bridge", "baselines.class_bridge.recipes:CLASS_BRIDGE")
