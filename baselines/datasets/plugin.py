"""Registers the datasets that ship with itr-harness: the demo set and the on-disk formats."""

from harness.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register("coco-demo", "baselines.datasets.coco_demo:coco_demo")
    register("karpathy", "baselines.datasets.karpathy:karpathy")
    register("precomp", "baselines.datasets.precomp:precomp")
    register("hf-dataset", "baselines.datasets.hf_dataset:hf_dataset")
    register("webdataset", "baselines.datasets.webdataset:webdataset")
