"""Registers VSE∞ and its parts (docs/methods/vse-infinity.md).

The triplet losses of the recipes come from the VSE++ plugin (`baselines.vse`).
"""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("vse-inf-region", "baselines.vse_infinity.encoders:RegionImageEncoder", kind="image")
    register("vse-inf-bigru", "baselines.vse_infinity.encoders:GRUTokenTextEncoder", kind="text")
    register("hf-text", "baselines.vse_infinity.encoders:HFTextEncoder", kind="text")


@hookimpl
def register_methods(register):
    register("vse-inf", "baselines.vse_infinity.recipes:VSE_INFINITY")
    register("vse-inf-bigru", "baselines.vse_infinity.recipes:VSE_INFINITY_BIGRU")
    register("vse-inf-grid", "baselines.vse_infinity.recipes:VSE_INFINITY_GRID")
