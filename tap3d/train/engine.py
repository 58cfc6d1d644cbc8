"""The training engine: one visible loop (after nanoGPT's ``train.py``) that every task runs on.

:func:`fit` takes a :class:`Task` and does the rest: optimizer steps (AdamW of
:mod:`tap3d.train.optim`, the task's learning-rate schedule per step), optional gradient
accumulation, gradient clipping, bf16 autocast on CUDA (for tasks that ask), a NaN guard that
names the last good checkpoint, logging every ``log_every`` steps, the task's evaluation hooks,
checkpoints (:mod:`tap3d.train.checkpoint`, every rank's generator states), exact resume and
torchrun (:mod:`tap3d.train.distributed`). Pre-training (:mod:`tap3d.train.pretrain`) and
classification fine-tuning (:mod:`tap3d.train.finetune`) are tasks.

The Task interface
------------------
A task is an object (subclass :class:`Task` for the defaults) with:

``config``
    its settings, a dataclass (saved in every checkpoint and in ``config.yaml``) with at least
    ``epochs``, ``max_steps`` (0: no limit), ``batch_size`` (samples per micro-batch per
    process), ``lr``, ``weight_decay``, ``grad_clip``, ``log_every`` and ``checkpoint_every``
    (steps); optionally ``grad_accumulation`` (micro-batches per optimizer step, default 1).
``data``, ``process``, ``device``, ``model``, ``run``
    the dataset path (for ``config.yaml``), this process (:func:`setup`), its device, the
    model on that device (unwrapped; the engine wraps it for DistributedDataParallel and hands
    the wrapped one to :meth:`~Task.loss`) and the :class:`~tap3d.train.runfolder.RunFolder`.
``mixed_precision``
    True: :meth:`~Task.loss` runs under bf16 autocast on CUDA (never on the CPU).
``batch_count(epoch) -> int``
    micro-batches of ``epoch`` that every rank gets (the common count; raise ``ValueError``
    naming the data when it is 0).
``batches(epoch, start) -> iterable``
    this rank's batches of ``epoch`` from micro-batch ``start`` on, on the CPU (a tensor, or
    dicts/tuples/lists of tensors), deterministic: the same ``(epoch, start)`` gives the same
    batches (that is what makes resume exact). :func:`make_loader` builds a DataLoader that
    pins memory on CUDA and leaves the global generators alone.
``schedule(total, steps_per_epoch) -> factor``
    the learning-rate multiplier per optimizer step (:mod:`tap3d.train.optim`).
``loss(model, batch) -> (loss, metrics)``
    a scalar loss tensor and a dict of scalar device tensors (no ``.item()``: the engine
    averages them over the logging window and reads them only when it logs).
``after_step(progress, metrics) -> dict``
    per-step hook after the optimizer step (``metrics``: the step's, device tensors): e.g. a
    scheduled evaluation; what it returns (floats) joins that step's ``metrics.jsonl`` record,
    which is then always written.
``end_epoch(progress)``
    after the last step of an epoch (and after the run's last step): e.g. evaluate, keep the
    best weights, log an epoch record.
``state_dict() / load_state_dict(state)``
    the task's own progress (running sums, best scores), saved as the checkpoint's ``task``.
``checkpoint_extras() -> dict``
    more entries of the checkpoint dict (``image_size``, ``classes``).
``results() -> dict``
    what :func:`fit` returns.

:class:`Progress` tells the hooks where the run stands: ``step`` (optimizer steps done),
``epoch``, ``batch_in_epoch`` (optimizer steps done in ``epoch``), ``total`` and
``epoch_steps``.

Resume: ``fit(..., resume=True)`` loads ``RUN/checkpoints/last.pt`` (model, optimizer,
scheduler, the task's state, this rank's generator states), drops ``metrics.jsonl`` records
after its step, and restarts the epoch's batches at ``batch_in_epoch``, so ``stop_at`` and
``resume`` end with the parameters of an unbroken run, bit for bit (also under torchrun).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from tap3d.devices import resolve_device
from tap3d.train import checkpoint, distributed
from tap3d.train.optim import make_optimizer
from tap3d.train.runfolder import WindowMeter, read_metrics

__all__ = ["Task", "Progress", "NonFiniteLossError", "fit", "setup", "make_loader", "to_device"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Progress:
    """Where a run stands (see the module docstring)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    total: int = 0
    epoch_steps: list = field(default_factory=list)


class Task:
    """Defaults of the Task interface (module docstring); subclasses set the attributes and
    implement ``batch_count``, ``batches``, ``schedule`` and ``loss``."""

    mixed_precision = False

    def after_step(self, progress: Progress, metrics: dict) -> dict:
        return {}

    def end_epoch(self, progress: Progress) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def checkpoint_extras(self) -> dict:
        return {}

    def results(self) -> dict:
        return {}


def setup(config) -> tuple[distributed.Process, torch.device]:
    """This process (the process group initialised under torchrun) and its device
    (``config.device``, see :func:`tap3d.devices.resolve_device`)."""
    process = distributed.setup()
    return process, torch.device(resolve_device(config.device, process.local_rank))


def make_loader(dataset, device: torch.device, seed: int, **options) -> torch.utils.data.DataLoader:
    """A DataLoader of ``dataset`` with its own generator (seeded by ``seed``: creating its
    iterator draws nothing from the global torch generator) that pins memory when ``device``
    is CUDA. ``options``: DataLoader arguments (``batch_size``, ``batch_sampler``, ...)."""
    return torch.utils.data.DataLoader(dataset, pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(seed), **options)


def to_device(batch, device: torch.device):
    """``batch`` (a tensor, or dicts/tuples/lists of them) on ``device``; asynchronous on CUDA
    (from pinned memory, see :func:`make_loader`)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def plan_epochs(task, accumulate: int) -> list[int]:
    """Optimizer steps of each epoch that runs (up to ``max_steps``)."""
    counts = []
    for epoch in range(task.config.epochs):
        counts.append(task.batch_count(epoch) // accumulate)
        if counts[-1] == 0:
            raise ValueError(f"{task.data}: epoch {epoch} has fewer micro-batches than the "
                             f"{accumulate} of one step (grad_accumulation)")
        if task.config.max_steps and sum(counts) >= task.config.max_steps:
            break
    return counts


class _Guard:
    """The first non-finite loss, kept on the device (no host sync per step) and checked where
    every rank checks it (the flag is reduced over ranks)."""

    def __init__(self, device):
        self.step = torch.zeros((), dtype=torch.int64, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)

    def update(self, loss: torch.Tensor, step: int) -> None:
        first = ~torch.isfinite(loss.detach()) & (self.step == 0)
        self.step = torch.where(first, step, self.step)
        self.value = torch.where(first, loss.detach().float(), self.value)

    def check(self, process, last_good: str) -> None:
        bad = distributed.reduce_across_processes(self.step, process, op="max")
        if int(bad):
            value = float(self.value) if int(self.step) else float("nan")
            raise NonFiniteLossError(f"loss is {value} at step {int(bad)}; the last good "
                                     f"checkpoint is {last_good}")


def _truncate_metrics(path: str, step: int) -> None:
    """Drop ``metrics.jsonl`` records after ``step`` (written by a run that died after its last
    checkpoint)."""
    try:
        records = read_metrics(path)
    except FileNotFoundError:
        return
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records if r["step"] <= step)


def _restore(task, optimizer, scheduler, p: Progress, trust: bool = False) -> None:
    """Load ``last.pt`` into the model, optimizer, scheduler, task, ``p`` and generators
    (read as data unless ``trust``: :func:`~tap3d.train.checkpoint.load_checkpoint`)."""
    state = checkpoint.load_checkpoint(os.path.join(task.run.checkpoints, "last.pt"),
                                       task.device, trust=trust)
    task.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    own = state["task"]
    p.step, p.epoch, p.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
    if p.epoch < len(p.epoch_steps) and p.batch_in_epoch >= p.epoch_steps[p.epoch]:
        p.epoch, p.batch_in_epoch = p.epoch + 1, 0  # saved at an epoch's end
    task.load_state_dict(own)
    checkpoint.restore_rng_state(state["rng"], task.process.rank)
    if task.process.main:
        _truncate_metrics(task.run.path, p.step)


def fit(task: Task, resume: bool = False, progress: bool = True,
        stop_at: int | None = None, trust: bool = False) -> dict:
    """Train ``task`` (see the module docstring) to its last step.

    Args:
        task: the task, constructed (model on its device, run folder open).
        resume: continue from ``RUN/checkpoints/last.pt``.
        progress: show a progress bar (rank 0).
        stop_at: checkpoint and return after this step, as if pre-empted there (the schedule
            still runs to the configured end; ``resume`` continues).
        trust: resume from a ``last.pt`` that names types beyond tensors and numpy values,
            with the full unpickler, which runs any code it holds (``--trust-checkpoint``).

    Returns:
        ``task.results()``.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (checked at every log, checkpoint and
            epoch end, before anything is saved: the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
        CheckpointError: ``resume`` from a ``last.pt`` that names other types, without
            ``trust``.
        ValueError: an epoch has no full optimizer step.
    """
    from tqdm.auto import tqdm

    config, process, device, run = task.config, task.process, task.device, task.run
    accumulate = getattr(config, "grad_accumulation", 1)
    epoch_steps = plan_epochs(task, accumulate)
    total = min(sum(epoch_steps), config.max_steps or sum(epoch_steps))
    model = distributed.wrap(task.model, process, device)
    optimizer = make_optimizer(task.model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  task.schedule(total, epoch_steps[0]))
    p = Progress(total=total, epoch_steps=epoch_steps)
    if resume:
        _restore(task, optimizer, scheduler, p, trust)
    run.write_config(config, task.data)
    last_good = os.path.join(run.checkpoints, "last.pt")

    def save() -> None:
        rng = checkpoint.gather_rng_states(process)  # a collective: every rank is here
        if process.main:
            checkpoint.save_checkpoint(run.checkpoints, {
                "model": task.model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": p.step, "epoch": p.epoch,
                "batch_in_epoch": p.batch_in_epoch, "rng": rng,
                "config": dataclasses.asdict(config), "task": task.state_dict(),
                **task.checkpoint_extras()})

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) \
        if task.mixed_precision and device.type == "cuda" else contextlib.nullcontext()
    guard, meter = _Guard(device), WindowMeter()
    samples_per_step = config.batch_size * accumulate * process.world
    bar = tqdm(total=total, initial=p.step, unit="step", disable=not progress or not process.main)
    while p.step < total and p.step != stop_at:
        epoch = p.epoch
        batches = iter(task.batches(epoch, p.batch_in_epoch * accumulate))
        while p.epoch == epoch and p.step < total and p.step != stop_at:
            task.model.train()
            optimizer.zero_grad(set_to_none=True)
            metrics = {}
            for micro in range(accumulate):
                began = time.perf_counter()
                batch = to_device(next(batches), device)
                meter.waited(time.perf_counter() - began)
                last_micro = micro == accumulate - 1
                sync = contextlib.nullcontext() if last_micro or model is task.model \
                    else model.no_sync()  # all-reduce the gradients once per step
                with sync:
                    with autocast:
                        loss, step_metrics = task.loss(model, batch)
                    guard.update(loss, p.step + 1)
                    (loss / accumulate if accumulate > 1 else loss).backward()
                for key, value in step_metrics.items():
                    value = value.detach() / accumulate if accumulate > 1 else value.detach()
                    metrics[key] = metrics[key] + value if key in metrics else value
            nn.utils.clip_grad_norm_(task.model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            p.step, p.batch_in_epoch = p.step + 1, p.batch_in_epoch + 1
            bar.update(1)
            epoch_over = p.batch_in_epoch == epoch_steps[p.epoch]
            log_due = p.step % config.log_every == 0 or p.step == total
            save_due = p.step % config.checkpoint_every == 0 or p.step in (total, stop_at)
            if log_due or save_due or epoch_over:  # the same steps on every rank
                guard.check(process, last_good)
            meter.update(metrics, samples_per_step)
            scores = task.after_step(p, metrics)  # {} on most steps
            if log_due or scores:
                record = {"step": p.step, "epoch": p.epoch, **meter.flush(), **scores,
                          "lr": scheduler.get_last_lr()[0]}
                run.log(record)
                bar.set_postfix(loss=f"{record.get('loss', float('nan')):.4f}")
            if epoch_over or p.step == total:
                task.end_epoch(p)
            if epoch_over:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
            if save_due:
                save()
    bar.close()
    run.close()
    distributed.barrier(process)
    distributed.teardown(process)
    return task.results()
