"""Fine-tuning a backbone for classification: what ``tap-cli finetune DATA -o RUN`` calls.

TAP's public recipe (DESIGN.md; :class:`~tap3d.train.finetune_config.FinetuneConfig`): backbone ->
max pool -> head [512, 256] (BatchNorm, ReLU, dropout 0.5); smoothed cross-entropy (0.3); AdamW
5e-4, weight decay 0.05 on weights only; 10 warm-up epochs then cosine to 1e-6 over 300 epochs;
gradient clip 10; batch 32; inputs from :mod:`tap3d.evaluate.inputs`. After every epoch the
test split is evaluated: overall accuracy (OA) and mean class accuracy (mAcc), in percent.

The run folder follows ``tap-cli train`` (:mod:`tap3d.train.runfolder`): ``config.yaml``,
``metrics.jsonl`` (step records: ``loss``, ``lr``, ``samples_per_s``; epoch records:
``train_loss``, ``train_oa``, ``eval_oa``, ``eval_macc``), ``checkpoints/`` (``step_N.pt``,
``last.pt``, and ``best.pt``: the weights of the best test epoch), ``tensorboard/`` and
``results.json``: ``best_oa`` (the best epoch's OA, what the authors report: their validation
set is the test set), ``best_macc`` (mAcc of that epoch), ``best_epoch``, ``last_oa``,
``last_macc``, ``train_oa`` (the final model on the training clouds, test-time inputs, eval
mode), ``epochs`` (evaluated), ``steps``. ``resume=True`` continues from
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
from tap3d.train.finetune_config import FinetuneConfig
from tap3d.evaluate.inputs import AugmentedClouds, eval_features, fps_points, training_features
from tap3d.evaluate.labelled import load_labelled
from tap3d.evaluate.scores import evaluate_classifier
from tap3d.evaluate.weights import load_backbone
from tap3d.models.heads import Classifier
from tap3d.train import checkpoint, distributed
from tap3d.train.pretrain import NonFiniteLossError, cosine_schedule, make_optimizer
from tap3d.train.runfolder import RunFolder, WindowMeter, read_metrics

__all__ = ["finetune", "build_classifier", "epoch_batches"]


def build_classifier(config: FinetuneConfig, classes: int) -> tuple[Classifier, FinetuneConfig]:
    """The classifier, its backbone randomly initialized (seeded) or from
    ``config.backbone_checkpoint``; the config with ``backbone``/``embed_dim`` set to what the
    checkpoint holds.

    Raises:
        WeightsError: the checkpoint cannot be read or does not fit (names the file).
    """
    torch.manual_seed(config.seed)
    backbone, weights = load_backbone(config.backbone_checkpoint, config.backbone,
                                      config.embed_dim)
    if weights is not None:
        config = dataclasses.replace(config, backbone=weights.backbone,
                                     embed_dim=weights.kwargs.get("embed_dim", config.embed_dim))
    return Classifier(backbone, classes, list(config.head), config.dropout), config


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This rank's batches of one epoch: a seeded permutation of ``count`` samples dealt to
    ``world`` ranks (``count // world`` each), in full batches (the remainder is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    mine = order[rank::world][:count // world]
    return [mine[i * batch_size:(i + 1) * batch_size].tolist()
            for i in range(len(mine) // batch_size)]


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
    train_oa: float | None = None

    def results(self) -> dict:
        return {"best_oa": self.best_oa, "best_macc": self.best_macc,
                "best_epoch": self.best_epoch, "last_oa": self.last_oa,
                "last_macc": self.last_macc, "train_oa": self.train_oa,
                "epochs": self.epochs_done, "steps": self.step}


def _all_rng_states(process) -> dict | list:
    """This process's generator states, or every rank's (a list) under torchrun."""
    state = checkpoint.rng_state()
    if process.world == 1:
        return state
    states = [None] * process.world
    torch.distributed.all_gather_object(states, state)
    return states


def _truncate_metrics(path: str, step: int) -> None:
    """Drop records after ``step`` (written by a run that died after its last checkpoint)."""
    try:
        records = read_metrics(path)
    except FileNotFoundError:
        return
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records if r["step"] <= step)


class _Finetuning:
    """One fine-tuning run: everything :func:`finetune` sets up, and its steps."""

    def __init__(self, data: str, out: str, config: FinetuneConfig, resume: bool):
        self.process = process = distributed.setup()
        self.device = torch.device(resolve_device(config.device, process.local_rank))
        self.data = data
        self.labelled = load_labelled(data, config.variant, config.test_fraction, config.seed)
        self.classes = len(self.labelled.classes)
        model, self.config = build_classifier(config, self.classes)
        config = self.config
        if self.device.type == "cuda" and process.world > 1:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.ddp_model = distributed.wrap(model, process, self.device)
        torch.manual_seed(config.seed + process.rank)  # dropout differs between ranks
        self.train_set = AugmentedClouds(
            self.labelled.train_points, self.labelled.train_labels,
            (config.scale_low, config.scale_high), config.rotate, config.up_axis, config.seed)
        per_epoch = len(self.batches(0))
        if per_epoch == 0:
            raise ValueError(f"{data}: {len(self.train_set)} training clouds over "
                             f"{process.world} processes give no full batch of "
                             f"{config.batch_size}")
        total = config.epochs * per_epoch
        self.total = min(total, config.max_steps) if config.max_steps else total
        self.optimizer = make_optimizer(model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cosine_schedule(
            self.total, config.warmup_epochs * per_epoch, config.lr, config.min_lr))
        self.test = self.eval_inputs(self.labelled.test_points, self.labelled.test_labels)
        self.run = RunFolder(out, process.rank)
        self.p = _Progress()
        if resume:
            self.restore()
        self.run.write_config(config, data)
        # torch's label_smoothing spreads eps over all C classes, TAP's over the C - 1 others
        self.eps = config.label_smoothing * self.classes / max(self.classes - 1, 1)
        self.presample = config.presample or fps_points(config.points)

    def batches(self, epoch: int) -> list[list[int]]:
        return epoch_batches(len(self.train_set), self.config.batch_size, self.config.seed,
                             epoch, self.process.rank, self.process.world)

    def eval_inputs(self, points, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a split, as test-time inputs on the device."""
        shard = slice(self.process.rank, None, self.process.world)
        return (eval_features(points[shard], self.config.points, self.config.up_axis,
                              self.device, self.config.eval_batch_size),
                torch.from_numpy(labels[shard]).to(self.device))

    def evaluate(self, inputs) -> tuple[float, float]:
        return evaluate_classifier(self.model, *inputs, self.classes,
                                   self.config.eval_batch_size, self.process)

    def restore(self) -> None:
        state = checkpoint.load_checkpoint(os.path.join(self.run.checkpoints, "last.pt"),
                                           self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.p = _Progress(**state["progress"])
        rng = state["rng"]
        checkpoint.set_rng_state(rng[self.process.rank] if isinstance(rng, list) else rng)
        if self.process.main:
            _truncate_metrics(self.run.path, self.p.step)

    def save(self) -> None:
        rng = _all_rng_states(self.process)
        if self.process.main:
            checkpoint.save_checkpoint(self.run.checkpoints, {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.p.step,
                "epoch": self.p.epoch, "progress": dataclasses.asdict(self.p), "rng": rng,
                "config": dataclasses.asdict(self.config), "classes": self.labelled.classes})

    def write_results(self) -> None:
        if self.process.main:
            with open(os.path.join(self.run.path, "results.json"), "w") as f:
                json.dump({**self.p.results(), "classes": self.labelled.classes,
                           "dataset": str(self.data),
                           "backbone_checkpoint": self.config.backbone_checkpoint}, f, indent=1)

    def end_epoch(self) -> None:
        """Evaluate, log the epoch, keep the best weights, start the next epoch."""
        p, process = self.p, self.process
        p.last_oa, p.last_macc = self.evaluate(self.test)
        p.epochs_done = p.epoch + 1
        train = torch.tensor([p.loss_sum, p.correct, p.seen], dtype=torch.float64)
        if process.world > 1:
            torch.distributed.all_reduce(train)
        if p.last_oa > p.best_oa:
            p.best_oa, p.best_macc, p.best_epoch = p.last_oa, p.last_macc, p.epoch
            if process.main:
                torch.save({"model": self.model.state_dict(), "epoch": p.epoch,
                            "oa": p.best_oa, "macc": p.best_macc,
                            "config": dataclasses.asdict(self.config)},
                           os.path.join(self.run.checkpoints, "best.pt"))
        self.run.log({"step": p.step, "epoch": p.epoch,
                      "train_loss": float(train[0]) / max(p.batch_in_epoch * process.world, 1),
                      "train_oa": 100.0 * float(train[1] / max(train[2], 1)),
                      "eval_oa": p.last_oa, "eval_macc": p.last_macc, "eval_best_oa": p.best_oa})
        if p.step >= self.total:  # the end: accuracy on the training clouds, in eval mode
            p.train_oa = self.evaluate(self.eval_inputs(self.labelled.train_points,
                                                        self.labelled.train_labels))[0]
        self.write_results()
        p.epoch, p.batch_in_epoch, p.loss_sum, p.correct, p.seen = p.epoch + 1, 0, 0.0, 0, 0

    def step(self, points, labels) -> float:
        """One optimizer step on a batch of augmented clouds; returns the loss."""
        p, config = self.p, self.config
        rng = np.random.default_rng([config.seed, p.epoch, p.batch_in_epoch, self.process.rank])
        features = training_features(points.to(self.device), config.points, self.presample,
                                     config.up_axis, rng)
        labels = labels.to(self.device)
        self.model.train()
        logits = self.ddp_model(features)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.eps)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss is {loss.item()} at step {p.step + 1}; the last "
                                     f"good checkpoint is {self.run.checkpoints}/last.pt")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        p.step, p.batch_in_epoch = p.step + 1, p.batch_in_epoch + 1
        p.loss_sum += loss.item()
        p.correct += int((logits.argmax(1) == labels).sum())
        p.seen += len(labels)
        return loss.item()

    def train(self, progress: bool, stop_at: int | None) -> dict:
        from tqdm.auto import tqdm

        p, config, total = self.p, self.config, self.total
        bar = tqdm(total=total, initial=p.step, unit="step",
                   disable=not progress or not self.process.main)
        meter = WindowMeter()
        while p.step < total and p.step != stop_at:
            self.train_set.set_epoch(p.epoch)
            batches = self.batches(p.epoch)
            loader = torch.utils.data.DataLoader(  # its own generator: the global RNG stays
                self.train_set, batch_sampler=batches[p.batch_in_epoch:],
                num_workers=config.num_workers,
                generator=torch.Generator().manual_seed(config.seed))
            for points, labels in loader:
                meter.update({"loss": self.step(points, labels)},
                             len(labels) * self.process.world)
                bar.update(1)
                if p.step % config.log_every == 0 or p.step == total:
                    self.run.log({"step": p.step, "epoch": p.epoch, **meter.flush(),
                                  "lr": self.scheduler.get_last_lr()[0]})
                if p.batch_in_epoch == len(batches) or p.step >= total or p.step == stop_at:
                    break
                if p.step % config.checkpoint_every == 0:
                    self.save()
            due = p.step % config.checkpoint_every == 0 or p.step in (total, stop_at)
            if p.batch_in_epoch == len(batches) or p.step >= total:
                self.end_epoch()  # an epoch's last step is checkpointed after its evaluation
            if due:
                self.save()
        bar.close()
        self.run.close()
        distributed.barrier(self.process)
        return p.results()


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
        The scores of ``results.json`` (module docstring), percent.

    Raises:
        LabelledDataError: ``data`` is not a labelled dataset.
        WeightsError: the backbone checkpoint cannot be read or does not fit.
        ValueError: no full batch per rank.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
    """
    return _Finetuning(data, out, config, resume).train(progress, stop_at)
