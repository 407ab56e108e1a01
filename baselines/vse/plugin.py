"""Registers VSE++ and its parts (docs/methods/vse-pp.md)."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("vse-linear", "baselines.vse.encoders:LinearImageEncoder", kind="image")
    register("vse-gru", "baselines.vse.encoders:GRUTextEncoder", kind="text")


@hookimpl
def register_losses(register):
    register("hardest-negative-triplet", "baselines.vse.losses:HardestNegativeTriplet")
    register("sum-hinge-triplet", "baselines.vse.losses:SumHingeTriplet")


@hookimpl
def register_methods(register):
    register("vse++", "baselines.vse.recipes:VSE_PLUS_PLUS")
