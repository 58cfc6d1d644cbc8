"""Fine-tuning a backbone for classification: what ``tap-cli finetune DATA -o RUN`` calls.

TAP's public recipe (DESIGN.md; :class:`~tap3d.evaluate.config.FinetuneConfig`): backbone ->
max pool -> head [512, 256] (BatchNorm, ReLU, dropout 0.5); smoothed cross-entropy (0.3); AdamW
5e-4, weight decay 0.05 on weights only; 10 warm-up epochs then cosine to 1e-6 over 300 epochs;
gradient clip 10; batch 32; inputs from :mod:`tap3d.evaluate.inputs`. After every epoch the
test split is evaluated: overall accuracy (OA) and mean class accuracy (mAcc), in percent.

The run folder follows ``tap-cli train`` (:mod:`tap3d.pretrain.runfolder`): ``config.yaml``,
``metrics.jsonl`` (step records: ``loss``, ``lr``, ``samples_per_s``; epoch records:
``train_loss``, ``train_oa``, ``eval_oa``, ``eval_macc``), ``checkpoints/`` (``step_N.pt``,
``last.pt``, and ``best.pt``: the weights of the best test epoch), ``tensorboard/`` and
``results.json``: ``best_oa`` (the best epoch's OA, what the authors report: their validation
set is the test set), ``best_macc`` (mAcc of that epoch), ``best_epoch``, ``last_oa``,
``last_macc``, ``epochs`` (evaluated), ``steps``. ``resume=True`` continues from
``checkpoints/last.pt`` and ends with the parameters and results of an unbroken run.
Under ``torchrun`` each rank trains on its share of every epoch and evaluates its share of the
test set (confusion matrices summed); BatchNorm is synchronized on CUDA.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tap3d.devices import resolve_device
from tap3d.evaluate.config import FinetuneConfig
from tap3d.evaluate.inputs import AugmentedClouds, eval_features, fps_points, training_features
from tap3d.evaluate.labelled import load_labelled
from tap3d.evaluate.weights import load_backbone_weights
from tap3d.models.backbones import make_backbone
from tap3d.models.heads import Classifier
from tap3d.pretrain import checkpoint, distributed
from tap3d.pretrain.loop import NonFiniteLossError, cosine_schedule, make_optimizer
from tap3d.pretrain.runfolder import RunFolder, WindowMeter, read_metrics

__all__ = ["finetune", "build_classifier", "epoch_batches", "accuracies", "evaluate_classifier"]


def build_classifier(config: FinetuneConfig, classes: int) -> tuple[Classifier, FinetuneConfig]:
    """The classifier, its backbone randomly initialized (seeded) or from
    ``config.backbone_checkpoint``; the config with ``backbone``/``embed_dim`` set to what the
    checkpoint holds.

    Raises:
        WeightsError: the checkpoint cannot be read or does not fit (names the file).
    """
    torch.manual_seed(config.seed)
    if config.backbone_checkpoint:
        weights = load_backbone_weights(config.backbone_checkpoint, config.backbone)
        backbone = weights.build()
        config = dataclasses.replace(config, backbone=weights.backbone,
                                     embed_dim=weights.kwargs.get("embed_dim", config.embed_dim))
    else:
        backbone = make_backbone(config.backbone, embed_dim=config.embed_dim)
    return Classifier(backbone, classes, list(config.head), config.dropout), config


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This rank's batches of one epoch: a seeded permutation of ``count`` samples dealt to
    ``world`` ranks (``count // world`` each), in full batches (the remainder is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    mine = order[rank::world][:count // world]
    return [mine[i * batch_size:(i + 1) * batch_size].tolist()
            for i in range(len(mine) // batch_size)]


def accuracies(confusion) -> tuple[float, float]:
    """``(OA, mAcc)`` in percent from a ``(C, C)`` confusion matrix (rows: true class); mAcc
    averages the classes that occur."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum(1)
    present = total > 0
    oa = 100.0 * np.trace(confusion) / max(total.sum(), 1)
    macc = 100.0 * float(np.mean(np.diag(confusion)[present] / total[present])) if present.any() \
        else 0.0
    return float(oa), macc


@torch.no_grad()
def evaluate_classifier(model, features: torch.Tensor, labels: torch.Tensor, classes: int,
                        batch_size: int = 64, process=None) -> tuple[float, float]:
    """``(OA, mAcc)`` in percent of ``model`` (eval mode) on ``features`` ``(N, P, 4)`` and
    ``labels`` ``(N,)``; under torchrun the confusion matrices of all ranks are summed."""
    model.eval()
    confusion = torch.zeros(classes * classes, dtype=torch.long, device=features.device)
    for start in range(0, len(features), batch_size):
        predicted = model(features[start:start + batch_size]).argmax(1)
        confusion += torch.bincount(labels[start:start + batch_size] * classes + predicted,
                                    minlength=classes * classes)
    if process is not None and process.world > 1:
        torch.distributed.all_reduce(confusion)
    return accuracies(confusion.view(classes, classes).cpu().numpy())


@dataclass
class _Progress:
    """Where a run stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    epochs_done: int = 0
    best_oa: float = -1.0
    best_macc: float = 0.0
    best_epoch: int = -1
    last_oa: float = 0.0
    last_macc: float = 0.0

    def results(self) -> dict:
        return {"best_oa": self.best_oa, "best_macc": self.best_macc,
                "best_epoch": self.best_epoch, "last_oa": self.last_oa,
                "last_macc": self.last_macc, "epochs": self.epochs_done, "steps": self.step}


def _all_rng_states(process) -> dict | list:
    """This process's generator states, or every rank's (a list) under torchrun."""
    state = checkpoint.rng_state()
    if process.world == 1:
        return state
    states = [None] * process.world
    torch.distributed.all_gather_object(states, state)
    return states


def _truncate_metrics(run: RunFolder, step: int) -> None:
    """Drop records after ``step`` (written by a run that died after its last checkpoint)."""
    try:
        records = read_metrics(run.path)
    except FileNotFoundError:
        return
    with open(os.path.join(run.path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records if r["step"] <= step)


def finetune(data: str, out: str, config: FinetuneConfig = FinetuneConfig(), resume: bool = False,
             progress: bool = True, stop_at: int | None = None) -> dict:
    """Fine-tune a backbone with a classification head on a labelled point-cloud dataset.

    Args:
        data: ScanObjectNN / ModelNet40 h5 folder or tap3d dataset
            (:func:`tap3d.evaluate.labelled.load_labelled`).
        out: run folder (created).
        config: settings; ``config.backbone_checkpoint`` empty for random initialization.
        resume: continue from ``out/checkpoints/last.pt``.
        progress: show a progress bar (rank 0).
        stop_at: checkpoint and return after this step, as if pre-empted (``resume`` continues).

    Returns:
        The contents of ``results.json`` (module docstring).

    Raises:
        LabelledDataError: ``data`` is not a labelled dataset.
        WeightsError: the backbone checkpoint cannot be read or does not fit.
        ValueError: no full batch per rank.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
    """
    from tqdm.auto import tqdm

    process = distributed.setup()
    device = torch.device(resolve_device(config.device, process.local_rank))
    labelled = load_labelled(data, config.variant, config.test_fraction, config.seed)
    classes = len(labelled.classes)
    model, config = build_classifier(config, classes)
    if device.type == "cuda" and process.world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    ddp_model = distributed.wrap(model, process, device)
    torch.manual_seed(config.seed + process.rank)  # dropout differs between ranks
    train_set = AugmentedClouds(labelled.train_points, labelled.train_labels,
                                (config.scale_low, config.scale_high), config.rotate,
                                config.up_axis, config.seed)
    per_epoch = len(epoch_batches(len(train_set), config.batch_size, config.seed, 0,
                                  process.rank, process.world))
    if per_epoch == 0:
        raise ValueError(f"{data}: {len(train_set)} training clouds over {process.world} "
                         f"processes give no full batch of {config.batch_size}")
    total = config.epochs * per_epoch
    total = min(total, config.max_steps) if config.max_steps else total
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(
        total, config.warmup_epochs * per_epoch, config.lr, config.min_lr))
    shard = slice(process.rank, None, process.world)
    test_x = eval_features(labelled.test_points[shard], config.points, config.up_axis, device,
                           config.eval_batch_size)
    test_y = torch.from_numpy(labelled.test_labels[shard]).to(device)
    run = RunFolder(out, process.rank)
    p = _Progress()
    if resume:
        state = checkpoint.load_checkpoint(os.path.join(run.checkpoints, "last.pt"), device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        p = _Progress(**state["progress"])
        rng = state["rng"]
        checkpoint.set_rng_state(rng[process.rank] if isinstance(rng, list) else rng)
        if process.main:
            _truncate_metrics(run, p.step)
    run.write_config(config, data)

    def save() -> None:
        rng = _all_rng_states(process)
        if process.main:
            checkpoint.save_checkpoint(run.checkpoints, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": p.step, "epoch": p.epoch,
                "progress": dataclasses.asdict(p), "rng": rng,
                "config": dataclasses.asdict(config), "classes": labelled.classes})

    def end_epoch() -> None:
        oa, macc = evaluate_classifier(model, test_x, test_y, classes, config.eval_batch_size,
                                       process)
        p.last_oa, p.last_macc, p.epochs_done = oa, macc, p.epoch + 1
        train = torch.tensor([p.loss_sum, p.correct, p.seen], dtype=torch.float64)
        if process.world > 1:
            torch.distributed.all_reduce(train)
        record = {"step": p.step, "epoch": p.epoch, "train_loss": float(train[0]) / max(
                  p.batch_in_epoch * process.world, 1), "train_oa": 100.0 * float(
                  train[1] / max(train[2], 1)), "eval_oa": oa, "eval_macc": macc}
        if oa > p.best_oa:
            p.best_oa, p.best_macc, p.best_epoch = oa, macc, p.epoch
            if process.main:
                torch.save({"model": model.state_dict(), "epoch": p.epoch, "oa": oa,
                            "macc": macc, "config": dataclasses.asdict(config)},
                           os.path.join(run.checkpoints, "best.pt"))
        run.log({**record, "eval_best_oa": p.best_oa})
        if process.main:
            with open(os.path.join(run.path, "results.json"), "w") as f:
                json.dump({**p.results(), "classes": labelled.classes, "dataset": str(data),
                           "backbone_checkpoint": config.backbone_checkpoint}, f, indent=1)
        p.epoch, p.batch_in_epoch, p.loss_sum, p.correct, p.seen = p.epoch + 1, 0, 0.0, 0, 0

    eps = config.label_smoothing * classes / max(classes - 1, 1)  # torch's eps spreads over C
    presample = config.presample or fps_points(config.points)
    bar = tqdm(total=total, initial=p.step, unit="step", disable=not progress or not process.main)
    meter = WindowMeter()
    while p.step < total and p.step != stop_at:
        train_set.set_epoch(p.epoch)
        batches = epoch_batches(len(train_set), config.batch_size, config.seed, p.epoch,
                                process.rank, process.world)
        loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=batches[p.batch_in_epoch:], num_workers=config.num_workers,
            generator=torch.Generator().manual_seed(config.seed))  # keeps the global RNG intact
        for points, labels in loader:
            rng = np.random.default_rng([config.seed, p.epoch, p.batch_in_epoch, process.rank])
            features = training_features(points.to(device), config.points, presample,
                                         config.up_axis, rng)
            labels = labels.to(device)
            model.train()
            logits = ddp_model(features)
            loss = F.cross_entropy(logits, labels, label_smoothing=eps)
            if not torch.isfinite(loss):
                bar.close()
                raise NonFiniteLossError(f"loss is {loss.item()} at step {p.step + 1}; the last "
                                         f"good checkpoint is {run.checkpoints}/last.pt")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            p.step, p.batch_in_epoch = p.step + 1, p.batch_in_epoch + 1
            p.loss_sum += loss.item()
            p.correct += int((logits.argmax(1) == labels).sum())
            p.seen += len(labels)
            meter.update({"loss": loss.item()}, len(labels) * process.world)
            bar.update(1)
            if p.step % config.log_every == 0 or p.step == total:
                run.log({"step": p.step, "epoch": p.epoch, **meter.flush(),
                         "lr": scheduler.get_last_lr()[0]})
            if p.batch_in_epoch == len(batches) or p.step >= total or p.step == stop_at:
                break
            if p.step % config.checkpoint_every == 0:
                save()
        due = p.step % config.checkpoint_every == 0 or p.step in (total, stop_at)
        if p.batch_in_epoch == len(batches) or p.step >= total:
            end_epoch()  # an epoch's last step is checkpointed after its evaluation
        if due:
            save()
    bar.close()
    run.close()
    distributed.barrier(process)
    return p.results()
