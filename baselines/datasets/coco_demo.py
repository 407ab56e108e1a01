"""``coco-demo``: the 47-image CC BY demo set that ships inside the package.

Real MS-COCO photos (Flickr CC BY 2.0) with their original captions (CC BY 4.0), stored in the
Karpathy layout; see ``coco_demo/SOURCE.txt``. Fixed split: 27 train / 20 test images, 5 captions
each. It proves the pipeline runs on real data; it is far too small to say which method wins.
"""

from __future__ import annotations

from pathlib import Path

from baselines.datasets.karpathy import KarpathyDataset

DEMO_DIR = Path(__file__).with_name("coco_demo")


def coco_demo() -> KarpathyDataset:
    return KarpathyDataset("coco-demo", DEMO_DIR / "dataset_coco.json", DEMO_DIR)
