"""Registers the image encoders that read pixels and fine-tune their backbone."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("hf-vision", "baselines.vision.hf_vision:HFVisionEncoder", kind="image-encoder")
    register("efficientnet-lite0-ft", "baselines.vision.efficientnet:EfficientNetEncoder", kind="image-encoder")
