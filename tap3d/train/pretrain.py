"""TAP pre-training: one loop (after nanoGPT's ``train.py``).

``train(dataset, out, config)`` is what ``tap-cli train`` calls. The run folder's files are
described in :mod:`tap3d.train.runfolder`, the checkpoint dict in
:mod:`tap3d.train.checkpoint`. ``resume=True`` reads ``last.pt`` back and replays the epoch
up to where it stopped, so the parameters at step 2k equal an unbroken run's. Multi-process
training runs under ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on CUDA); each rank
streams different shards and every rank takes the same number of steps per epoch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random

import numpy as np
import torch
from torch import nn

from tap3d.devices import resolve_device
from tap3d.models.tap import TAPModel
from tap3d.train import checkpoint, distributed, quality
from tap3d.train.config import TrainConfig
from tap3d.train.loss import tap_loss
from tap3d.train.runfolder import RunFolder, WindowMeter

__all__ = ["train", "make_stream", "cosine_schedule", "steps_per_epoch", "make_optimizer",
           "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def cosine_schedule(total: int, warmup: int, lr: float, min_lr: float):
    """LR multiplier for ``LambdaLR``: linear warm-up over ``warmup`` steps, then cosine from
    ``lr`` down to ``min_lr`` at step ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        floor = min_lr / lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def steps_per_epoch(stream, config: TrainConfig, dataset: str) -> list[int]:
    """Optimizer steps of each epoch that runs (the common count of every rank).

    Raises:
        ValueError: a rank gets no full batch in some epoch.
    """
    counts = []
    for epoch in range(config.epochs):
        stream.set_epoch(epoch)
        counts.append(stream.batches_per_epoch(config.batch_size, config.num_workers))
        if counts[-1] == 0:
            raise ValueError(f"{dataset}: a rank gets no full batch of {config.batch_size} in "
                             f"epoch {epoch} ({len(stream)} objects, {stream.world_size} ranks); "
                             "lower the batch size")
        if config.max_steps and sum(counts) >= config.max_steps:
            break
    return counts


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices and kernels only (not on biases and norms).

    ``config``: anything with ``lr`` and ``weight_decay`` (TrainConfig, FinetuneConfig).
    """
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def make_stream(dataset: str, config: TrainConfig, process=None, objects=None):
    """The training :class:`~tap3d.stream.ViewStream` of ``config`` for this process's rank,
    yielding ``objects`` (indices; default all)."""
    from tap3d.stream import ViewStream

    process = process or distributed.Process()
    return ViewStream(dataset, points=config.points,
                      views_per_sample=config.views_per_sample or None, sampling=config.sampling,
                      scale_range=(config.scale_low, config.scale_high),
                      normalize=config.normalize, objects=objects, up_axis=config.up_axis,
                      seed=config.seed, rank=process.rank, world_size=process.world)


def _restore(run, process, device, model, optimizer, scheduler) -> tuple[int, int, int]:
    """Load ``last.pt`` of ``run`` into the model, optimizer, scheduler and generators;
    returns ``(step, epoch, batch_in_epoch)``."""
    state = checkpoint.load_checkpoint(os.path.join(run.checkpoints, "last.pt"), device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    checkpoint.set_rng_state(rng[process.rank] if isinstance(rng, list) else rng)
    return state["step"], state["epoch"], state["batch_in_epoch"]


def train(dataset: str, out: str, config: TrainConfig, resume: bool = False,
          progress: bool = True, stop_at: int | None = None) -> dict:
    """Pre-train a backbone with TAP on a ``tap3d.views`` dataset.

    Args:
        dataset: dataset path or fsspec URL.
        out: run folder (created).
        config: settings.
        resume: continue from ``out/checkpoints/last.pt``.
        progress: show a progress bar (rank 0).
        stop_at: checkpoint and return after this step, as if the job were pre-empted there
            (the schedule still runs to the configured end; ``resume`` continues).

    Returns:
        ``{"step", "epoch", "loss", "loss_fg", "loss_bg"}`` of the last step, and the last
        evaluation's ``eval_*`` metrics (see :mod:`tap3d.train.quality`).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
        FormatError: ``dataset`` is not a tap3d dataset.
    """
    from tqdm.auto import tqdm

    process = distributed.setup()
    device = torch.device(resolve_device(config.device, process.local_rank))
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)

    training, held_out = quality.holdout_split(dataset, config.eval_fraction, config.seed)
    stream = make_stream(dataset, config, process, training)
    image_size = int(stream.image_size)
    model = TAPModel(config, image_size, stream.projection).to(device)
    ddp_model = distributed.wrap(model, process, device)
    optimizer = make_optimizer(model, config)
    epoch_steps = steps_per_epoch(stream, config, dataset)
    total = min(sum(epoch_steps), config.max_steps or sum(epoch_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_schedule(total, config.warmup_steps, config.lr, config.min_lr))
    run = RunFolder(out, process.rank, config.log_objects)
    evaluator = quality.Evaluator(dataset, config, training, held_out, device, process.main, run)
    step, epoch, skip = _restore(run, process, device, model, optimizer, scheduler) \
        if resume else (0, 0, 0)
    run.write_config(config, dataset)

    def save(batch_in_epoch: int) -> None:
        if process.main:
            checkpoint.save_checkpoint(run.checkpoints, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step, "epoch": epoch,
                "batch_in_epoch": batch_in_epoch, "rng": checkpoint.rng_state(),
                "config": dataclasses.asdict(config), "image_size": image_size,
                "projection": stream.projection})

    bar = tqdm(total=total, initial=step, unit="step", disable=not progress or not process.main)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)
    meter, last = WindowMeter(), {}
    while step < total and step != stop_at:
        stream.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(stream, batch_size=config.batch_size,
                                             num_workers=config.num_workers, drop_last=True)
        for batch_in_epoch, batch in enumerate(loader):
            if batch_in_epoch == epoch_steps[epoch]:  # the common count of all ranks
                break
            if batch_in_epoch < skip:  # replaying a resumed epoch
                continue
            run.log_objects(step + 1, epoch, batch["index"].tolist())
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            images = batch["images"].float().flatten(0, 1) / 255.0
            model.train()
            with autocast:
                generated = ddp_model(batch["features"], batch["K"], batch["world_to_camera"])
            losses = tap_loss(generated.flatten(0, 1), images, batch["masks"].flatten(0, 1),
                              config.w_fg, config.w_bg)
            if not torch.isfinite(losses["loss"]):
                bar.close()
                raise NonFiniteLossError(
                    f"loss is {losses['loss'].item()} at step {step + 1}; the last good "
                    f"checkpoint is {os.path.join(run.checkpoints, 'last.pt')}")
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            scores = evaluator.evaluate_if_due(model, step, total)  # {} on most steps
            last = {"step": step, "epoch": epoch,
                    **{k: float(v.detach()) for k, v in losses.items()}, **scores}
            meter.update({k: last[k] for k in ("loss", "loss_fg", "loss_bg")},
                         generated.shape[0] * process.world)
            if step % config.log_every == 0 or step == total or scores:
                record = {**last, **meter.flush(), "lr": scheduler.get_last_lr()[0]}
                run.log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            if step % config.sample_every == 0 or step == total:
                views = generated.shape[1]
                run.log_samples(step, generated[0].detach(), images[:views])
            if step % config.checkpoint_every == 0 or step in (total, stop_at):
                save(batch_in_epoch + 1)
            if step >= total or step == stop_at:
                break
        if step >= total or step == stop_at:
            break
        epoch += 1
        skip = 0
    bar.close()
    run.close()
    distributed.barrier(process)
    return last
