"""Registers CLIP and SigLIP dual encoders from local checkpoints (docs/methods/clip.md)."""

from harness.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("clip-image", "baselines.clip.encoders:CLIPImageEncoder", kind="image")
    register("clip-text", "baselines.clip.encoders:CLIPTextEncoder", kind="text")


@hookimpl
def register_similarity_heads(register):
    register("clip-logits", "baselines.clip.heads:CLIPLogitsHead")


@hookimpl
def register_losses(register):
    register("clip-infonce", "baselines.clip.losses:CLIPInfoNCE")
    register("siglip-sigmoid", "baselines.clip.losses:SigLIPSigmoid")


@hookimpl
def register_methods(register):
    register("clip", "baselines.clip.recipes:CLIP")
    register("clip-finetune", "baselines.clip.recipes:CLIP_FINETUNE")
    register("siglip-finetune", "baselines.clip.recipes:SIGLIP_FINETUNE")
