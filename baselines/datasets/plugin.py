"""Registers the datasets that ship with itr-harness."""

from harness.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register("coco-demo", "baselines.datasets.coco_demo:coco_demo")
