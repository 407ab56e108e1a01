"""Registers the built-in evaluation protocols, exactly as a third-party plugin would."""

from harness.hookspecs import hookimpl


@hookimpl
def register_protocols(register):
    for name, factory in (("full", "full"), ("coco-1k", "coco_1k"), ("coco-5k", "coco_5k"), ("f30k-1k", "f30k_1k")):
        register(name, f"harness.evaluation.protocols:{factory}")
    for name, factory in (("eccv-caption", "eccv_caption"), ("cxc", "cxc")):  # the eccv extra
        register(name, f"harness.evaluation.extended:{factory}")
