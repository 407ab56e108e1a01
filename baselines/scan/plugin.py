"""Registers SCAN and its parts (docs/methods/scan.md); the loss is VSE++'s (`baselines.vse`)."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("scan-region", "baselines.scan.encoders:SCANImageEncoder", kind="image")
    register("scan-bigru", "baselines.scan.encoders:SCANTextEncoder", kind="text")


@hookimpl
def register_similarity_heads(register):
    register("scan-attention", "baselines.scan.heads:StackedCrossAttentionHead")


@hookimpl
def register_methods(register):
    register("scan", "baselines.scan.recipes:SCAN")
