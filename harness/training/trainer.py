"""Stage-by-stage training of a `RetrievalModel` on caption-indexed mini-batches.

As in VSE++/SCAN/VSE∞, an epoch iterates over *captions* (each caption with its image), so an
image appears once per caption and two captions of one image may share a batch; losses receive
the image ids to decide what that means. Each stage has its own loss, epochs and learning rate,
and starts from the weights the previous stage left (warm-ups and two-stage methods are config).

A stage may train on one of the job's text sources instead of the captions (``Stage.text``, e.g.
D2S-VSE's dense descriptions): an epoch then iterates over the images, each with its text. The
losses' optional capabilities (`harness.capabilities`) are honoured here: a loss that reads the
batch receives a `TrainingBatch` (embeddings, model, progress in the stage, rows of any text
source), a stage hook is called when its stage starts, reported terms are logged per epoch.
Progress shows as a bar over each epoch's batches on a terminal and as one line per epoch in a
log (`harness.progress`).
"""

from __future__ import annotations

import itertools
import math
import random
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from harness.capabilities import READS_BATCH, STAGE_HOOK, OwnLearningRate, claims, terms_of
from harness.config.job_config import CAPTIONS, TrainConfig
from harness.embeddings import concat
from harness.errors import UserError
from harness.progress import ProgressLog, bar
from harness.training.batch import TrainingBatch
from harness.training.distributed import World, join, whole_batches
from harness.training.feeds import gather
from harness.training.model import RetrievalModel, SplitInputs
from harness.training.resume_point import ResumeFile, load_module_states, module_states, random_states, restore_random_states
from harness.training.samples import GeneratedSamples


@dataclass
class Stage:
    """A built training stage: its loss module, epochs and (optional) learning-rate override.

    `restart` starts a fresh optimizer and lr schedule (a new training phase, e.g. D2S-VSE's
    stage 2); False keeps the previous stage's optimizer state and counts its epochs on (a loss
    warm-up, e.g. VSE∞'s first epoch with the VSE0 loss). `text` is ``captions`` or the name of
    a text source in `SplitInputs.image_texts` (one item per image).
    """

    name: str
    epochs: int
    loss: nn.Module
    lr: float | None = None
    restart: bool = True
    text: str = CAPTIONS


EpochCallback = Callable[[str, int, dict[str, float]], None]
"""Called after every epoch with (stage name, global epoch, {"loss": mean loss, "lr": lr, plus
the epoch mean of each of the loss's `terms`})."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the job failed, its config is at fault, not the harness."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for a reproducible job."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_scales(model: nn.Module) -> dict[str, float]:
    """Learning-rate multiplier of every trainable parameter, by name.

    A submodule declares ``lr_scale = 0.1`` (`harness.capabilities.OwnLearningRate`; e.g. a
    fine-tuned BERT inside a text encoder, as in VSE∞) and every parameter below it trains at
    that fraction of the stage's lr; the nearest declaring ancestor wins, the default is 1.
    """
    declared = {name: float(module.lr_scale) for name, module in model.named_modules() if isinstance(module, OwnLearningRate)}
    scales = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefixes = [name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)] + [""]
        scales[name] = next((declared[p] for p in prefixes if p in declared), 1.0)
    return scales


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters, one param group per lr multiplier."""
    params = dict(model.named_parameters())
    groups: dict[float, list[nn.Parameter]] = {}
    for name, scale in lr_scales(model).items():
        groups.setdefault(scale, []).append(params[name])
    if not groups:
        raise UserError("the model has no trainable parameters but the method declares training stages")
    param_groups = [{"params": group, "lr": lr * scale, "lr_scale": scale} for scale, group in groups.items()]
    optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(param_groups, lr=lr, weight_decay=cfg.weight_decay)


def stage_lr(base_lr: float, schedule_epoch: int, cfg: TrainConfig, schedule_length: int = 1) -> float:
    """The lr of an epoch, counted from the last stage that restarted the schedule.

    ``step``: lr · decay^⌊epoch / every⌋ (the VSE code bases). ``multistep``: lr · decay^m with m
    the number of `lr_milestones` ≤ epoch (D2S-VSE: ×0.3 at 9, 15, 20, 25). ``cosine``: annealed
    from lr to `lr_min` over `schedule_length` epochs, stepped once per epoch (AsCL's
    CosineAnnealingLR).
    """
    if cfg.lr_schedule == "cosine":
        progress = schedule_epoch / max(schedule_length, 1)
        return cfg.lr_min + (base_lr - cfg.lr_min) * (1 + math.cos(math.pi * progress)) / 2
    if cfg.lr_schedule == "multistep":
        return base_lr * cfg.lr_decay ** sum(milestone <= schedule_epoch for milestone in cfg.lr_milestones)
    if cfg.lr_decay_every is None:
        return base_lr
    return base_lr * cfg.lr_decay ** (schedule_epoch // cfg.lr_decay_every)


def fit(
    model: RetrievalModel,
    data: SplitInputs,
    stages: list[Stage],
    cfg: TrainConfig,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    samples: GeneratedSamples | None = None,
    world: World = World(),
    resume: ResumeFile | None = None,
) -> list[dict[str, float]]:
    """Train `model` through `stages`; returns one record per epoch (stage, epoch, loss, lr, and
    the loss's terms if it reports any).

    With generated `samples`, each step scores the images against the real captions and, if
    there are positive generators, against generated positives too (a second pass), each pass
    with the generated negatives appended as extra caption columns (the AsCL paper, §4).
    In a data-parallel job (`world`, `harness.training.distributed`) this process encodes its
    slice of every batch and scores the gathered global batch.
    With `resume` (`harness.training.resume_point`), training writes its resume points there
    and, if the file holds one (`resume.state`), goes on from it: the stages and epochs before it
    are skipped, an epoch stopped halfway skips the batches it had done, and the states and
    random streams are put back, so the result is the uninterrupted run's.
    """
    for stage in stages:
        _check_stage_text(stage, data, samples)
    siblings = _siblings(data) if samples is not None and samples.positives else None
    join(model, world, device)
    model.to(device)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = getattr(torch, cfg.amp_dtype)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else nullcontext
    point = dict(resume.state) if resume is not None and resume.state is not None else None
    history: list[dict[str, float]] = list(point["history"]) if point else []
    steps_done = point["steps"] if point else 0
    if point:
        _restore_model_state(point, model, scaler, samples)
    epoch, stage_restored = 0, False
    optimizer: torch.optim.Optimizer | None = None
    log = ProgressLog("training", sum(stage.epochs for stage in stages) - len(history), "epoch")  # the epochs left
    for index, stage in enumerate(stages):
        if optimizer is None or stage.restart:
            base_lr, schedule_epoch = stage.lr or cfg.lr, 0
            optimizer = make_optimizer(model, cfg, base_lr)
            schedule_length = _schedule_length(stages, index)
        elif stage.lr is not None:
            base_lr = stage.lr
        if point and index < point["stage"]:  # finished before the resume point
            epoch, schedule_epoch = epoch + stage.epochs, schedule_epoch + stage.epochs
            continue
        stage.loss.to(device)
        if claims(stage.loss, STAGE_HOOK):
            stage.loss.begin_stage(model)
        if point and not stage_restored:
            _restore_stage_state(point, index, stage, optimizer)
            stage_restored = True
        text_inputs, image_of_item = _stage_texts(stage, data)
        for stage_epoch in range(stage.epochs):
            if point and stage_epoch < point["stage_epoch"]:
                epoch, schedule_epoch = epoch + 1, schedule_epoch + 1
                continue
            lr = stage_lr(base_lr, schedule_epoch, cfg, schedule_length)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            model.train()
            losses, terms, first = [], {}, 0
            if point:  # the resume point's epoch: its random streams, and its order if it had begun
                restore_random_states(point["random"])
                if point["step"]:
                    batches, first, losses, terms = list(point["batches"]), point["step"], list(point["losses"]), dict(point["terms"])
                point = None
            if not first:
                batches = whole_batches(_batches(len(image_of_item), cfg.batch_size, world), world)[: cfg.steps_per_epoch]
            mine = [world.local(torch.arange(len(items))) for items in batches]  # this process's share of each batch
            starts = list(itertools.accumulate((len(items) for items in batches[:-1]), initial=0))
            image_batches = data.images.batches(
                [image_of_item[items[k]] for items, k in zip(batches[first:], mine[first:])],
                device, train=True, epoch=epoch, positions=[start + k for start, k in zip(starts[first:], mine[first:])],
            )
            steps = bar(batches[first:], desc=f"{stage.name} epoch {epoch + 1}", leave=False)
            for step, (items, image_inputs) in enumerate(zip(steps, image_batches), start=first):
                images = image_of_item[items]
                position = _Position(stage.name, stage_epoch, step, len(batches))
                with autocast():
                    loss = _step_loss(model, data, text_inputs, items, images, image_inputs, stage.loss, samples, siblings, device, position, world)
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"stage '{stage.name}' epoch {epoch + 1}: loss is {loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                world.average_gradients(model)
                if cfg.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                losses.append(loss.item())
                for name, value in terms_of(stage.loss).items():
                    terms.setdefault(name, []).append(float(value))
                steps_done += 1
                if resume is not None and step + 1 < len(batches) and resume.due(steps_done, epoch_ended=False):
                    within = {"stage": index, "stage_epoch": stage_epoch, "step": step + 1, "batches": batches, "losses": losses, "terms": terms}
                    resume.write(_resume_state(within, steps_done, history, model, optimizer, scaler, stage.loss, samples))
            record = {"loss": float(np.mean(losses)) if losses else math.nan, "lr": lr}
            record.update({name: float(np.mean(values)) for name, values in terms.items()})
            history.append({"stage": stage.name, "epoch": epoch, **record})
            if on_epoch is not None:
                on_epoch(stage.name, epoch, record)
            log.advance(f"stage {stage.name} {stage_epoch + 1}/{stage.epochs}, loss {record['loss']:.4f}, lr {lr:.2e}")
            epoch += 1
            schedule_epoch += 1
            if resume is not None and resume.due(steps_done, epoch_ended=True):
                following = _next_epoch(stages, index, stage_epoch)
                resume.write(_resume_state(following, steps_done, history, model, optimizer, scaler, stage.loss, samples))
    return history


def _next_epoch(stages: list[Stage], index: int, stage_epoch: int) -> dict[str, int]:
    """Where training goes on after epoch `stage_epoch` of stage `index`: the next epoch of the
    stage, or the start of the next stage (``stage == len(stages)``: training is over)."""
    if stage_epoch + 1 < stages[index].epochs:
        return {"stage": index, "stage_epoch": stage_epoch + 1, "step": 0}
    return {"stage": index + 1, "stage_epoch": 0, "step": 0}


def _resume_state(
    position: dict[str, Any],
    steps_done: int,
    history: list[dict[str, float]],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: nn.Module,
    samples: GeneratedSamples | None,
) -> dict[str, Any]:
    """A resume point's content at `position` (stage index, epoch in the stage, batches done in
    it, and, halfway through an epoch, its batch order and losses so far): the loss's state
    only halfway through its stage (a stage starting anew calls its stage hook afresh)."""
    within_stage = position["stage_epoch"] > 0 or position["step"] > 0
    state = {
        "batches": None, "losses": [], "terms": {},
        **position,
        "steps": steps_done,
        "history": list(history),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "loss": loss.state_dict() if within_stage else None,
        "random": random_states(),
        "generators": None,
    }
    if samples is not None:
        state["generators"] = {
            "modules": module_states([*samples.positives, *samples.negatives]),
            "python": samples.rng.getstate(),
            "torch": samples.torch_rng.get_state(),
        }
    return state


def _restore_model_state(point: dict[str, Any], model: nn.Module, scaler: torch.amp.GradScaler, samples: GeneratedSamples | None) -> None:
    """What a resume point keeps for the whole run: weights, loss scaling, the generators."""
    model.load_state_dict(point["model"])
    if point["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(point["scaler"])
    generators = point["generators"]
    if samples is not None and generators is not None:
        load_module_states([*samples.positives, *samples.negatives], generators["modules"])
        samples.rng.setstate(generators["python"])
        samples.torch_rng.set_state(generators["torch"])


def _restore_stage_state(point: dict[str, Any], index: int, stage: Stage, optimizer: torch.optim.Optimizer) -> None:
    """In the first stage a resumed run trains (stage `index`): the loss's state if the point is
    halfway through it, and the optimiser's unless the stage starts with a fresh one."""
    at_start = index > point["stage"] or (point["stage_epoch"] == 0 and point["step"] == 0)
    if point["loss"] is not None and not at_start:
        stage.loss.load_state_dict(point["loss"])
    if not (at_start and stage.restart):
        optimizer.load_state_dict(point["optimizer"])


def _schedule_length(stages: list[Stage], start: int) -> int:
    """Epochs from stage `start` through the stages that continue its schedule."""
    length = stages[start].epochs
    for stage in stages[start + 1 :]:
        if stage.restart:
            break
        length += stage.epochs
    return length


@dataclass(frozen=True)
class _Position:
    """Where a step is: stage name, epoch within the stage, batch within the epoch, batches."""

    stage: str
    epoch: int
    step: int
    steps: int


def _check_stage_text(stage: Stage, data: SplitInputs, samples: GeneratedSamples | None) -> None:
    if stage.text == CAPTIONS:
        return
    if stage.text not in data.image_texts:
        known = ", ".join([CAPTIONS, *data.image_texts])
        raise UserError(f"stage '{stage.name}' trains on text source '{stage.text}', which the training data lacks; it has: {known}")
    if samples is not None and samples.positives:
        raise UserError(f"stage '{stage.name}': generated positives rewrite captions; a stage on '{stage.text}' cannot use them")


def _stage_texts(stage: Stage, data: SplitInputs) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """What a stage pairs with the images: (prepared text inputs [n_items, ...], image of each
    item int64 [n_items]); captions, or one text per image from a text source."""
    if stage.text == CAPTIONS:
        return dict(data.text_inputs), data.image_of_caption
    return dict(data.image_texts[stage.text]), torch.arange(data.n_images)


def _step_loss(
    model: RetrievalModel,
    data: SplitInputs,
    text_inputs: dict[str, torch.Tensor],
    items: torch.Tensor,
    images: torch.Tensor,
    image_inputs: dict[str, torch.Tensor],
    loss_fn: nn.Module,
    samples: GeneratedSamples | None,
    siblings: list[list[str]] | None,
    device: torch.device,
    position: _Position,
    world: World,
) -> torch.Tensor:
    """The loss of one batch: scores [B, B (+ B generated negatives)] per pass, weighted.

    `items` index `text_inputs` (captions, or the images of a text-source stage); `images` are
    their images, and `image_inputs` what the image encoder reads of this process's slice of
    them (all of them outside a data-parallel job).
    """
    image_emb = world.gather(model.encode_images(image_inputs))
    image_ids = images.to(device)

    def image_texts(name: str) -> dict[str, torch.Tensor]:
        if name not in data.image_texts:
            known = ", ".join(data.image_texts) or "none"
            raise UserError(f"stage '{position.stage}': the loss reads text source '{name}', which the job does not define; it has: {known}")
        return gather(data.image_texts[name], images, device)

    def pass_loss(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        text_emb = world.gather(model.encode_texts(inputs))
        real_texts = text_emb
        if samples is not None and samples.negatives:
            text_emb = concat([text_emb, samples.negative_embeddings(text_emb)])
        scores = model.score(image_emb, text_emb)
        if not claims(loss_fn, READS_BATCH):
            return loss_fn(scores, image_ids)
        batch = TrainingBatch(
            stage=position.stage,
            epoch=position.epoch,
            step=position.step,
            steps=position.steps,
            image_ids=image_ids,
            images=image_emb,
            texts=real_texts,
            model=model,
            image_texts=image_texts,
        )
        return loss_fn(scores, image_ids, batch=batch)

    mine = world.local(torch.arange(len(items)))
    loss = pass_loss(gather(text_inputs, items[mine], device))
    if samples is None or not samples.positives:
        return loss
    rows = items.tolist()
    generated = samples.positive_captions([data.captions[k] for k in rows], [siblings[k] for k in rows])
    with samples.encoding_context():
        positive_inputs = gather(model.text_encoder.prepare(generated), mine, device)
    return (1 - samples.positive_weight) * loss + samples.positive_weight * pass_loss(positive_inputs)


def _siblings(data: SplitInputs) -> list[list[str]]:
    """For every caption, all captions of its image (itself included)."""
    by_image: dict[int, list[str]] = {}
    for caption, image in zip(data.captions, data.image_of_caption.tolist()):
        by_image.setdefault(image, []).append(caption)
    return [by_image[image] for image in data.image_of_caption.tolist()]


def _batches(n_items: int, batch_size: int, world: World = World()) -> list[torch.Tensor]:
    """A fresh random order of caption indices (rank 0's, in a data-parallel job) cut into
    batches; a last batch of one item is dropped because a contrastive loss needs at least one
    negative."""
    order = world.same_order(torch.randperm(n_items))
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()
    return batches
