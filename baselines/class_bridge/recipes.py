"""The class-bridge method: evaluation only, no training stages."""

from harness.interfaces import MethodRecipe

CLASS_BRIDGE = MethodRecipe(
    name="class-bridge",
    summary="training-free floor: ImageNet softmax mapped onto MiniLM embeddings of the class names",
    paper="itr-harness baseline (docs/methods/class-bridge.md)",
    defaults={
        "image_encoder": {"name": "class-bridge-image"},
        "text_encoder": {"name": "frozen-sentence"},
        "similarity_head": {"name": "cosine"},
    },
)
