"""Registers D2S-VSE (docs/methods/d2s-vse.md) and its parts; every component is usable on its own."""

from harness.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register("dense-text", "plugins.d2s_vse.texts:DenseText", kind="text-source")


@hookimpl
def register_encoders(register):
    register("d2s-text", "plugins.d2s_vse.encoders:D2STextEncoder", kind="text")


@hookimpl
def register_losses(register):
    register("d2s-triplet", "plugins.d2s_vse.losses:D2STriplet")
    register("d2s-distill", "plugins.d2s_vse.losses:D2SDistillation")


@hookimpl
def register_methods(register):
    register("d2s-vse", "plugins.d2s_vse.recipes:D2S_VSE")
    register("d2s-vse-vit", "plugins.d2s_vse.recipes:D2S_VSE_VIT")
