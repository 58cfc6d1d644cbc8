"""TAP pre-training: a task of the training engine (:mod:`tap3d.train.engine`).

``train(dataset, out, config)`` is what ``tap-cli train`` calls. The run folder's files are
described in :mod:`tap3d.train.runfolder`, the checkpoint dict in
:mod:`tap3d.train.checkpoint`. ``resume=True`` reads ``last.pt`` back and replays the epoch
up to where it stopped, so the parameters at step 2k equal an unbroken run's. Multi-process
training runs under ``torchrun`` (DistributedDataParallel; gloo on CPU, nccl on CUDA); each rank
streams different shards and every rank takes the same number of steps per epoch.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import torch

from tap3d.train.weights import init_model
from tap3d.models.tap import TAPModel
from tap3d.train import distributed, quality
from tap3d.train.config import TrainConfig, model_config, resolve_up_axis, stream_settings
from tap3d.train.engine import Task, fit, make_loader, setup
from tap3d.train.loss import tap_loss
from tap3d.train.optim import cosine_schedule
from tap3d.train.perceptual import PerceptualLoss
from tap3d.train.runfolder import RunFolder

__all__ = ["train", "make_stream", "PretrainTask"]


def make_stream(dataset: str, config: TrainConfig, process=None, objects=None):
    """The training :class:`~tap3d.stream.ViewStream` of ``config`` for this process's rank,
    yielding ``objects`` (indices; default all)."""
    from tap3d.stream import ViewStream

    process = process or distributed.Process()
    return ViewStream(dataset, stream_settings(config), objects=objects, rank=process.rank,
                      world_size=process.world)


class PretrainTask(Task):
    """TAP pre-training on a ``tap3d.views`` dataset (the engine's Task interface).

    Batches are dicts of the stream's samples (:class:`~tap3d.stream.ViewStream`), the loss is
    TAP's (:func:`~tap3d.train.loss.tap_loss`, metrics ``loss``, ``loss_fg``, ``loss_bg``; with
    ``w_feat`` > 0 plus the perceptual loss, :mod:`tap3d.train.perceptual`, ``loss_feat``), the
    evaluation of generated views runs on the steps :class:`~tap3d.train.quality.Evaluator`
    schedules (rank 0), sample grids every ``sample_every`` steps. ``trust``: read
    ``config.init`` with the full unpickler (:func:`tap3d.train.torchfile.load_torch_file`).

    Raises:
        ValueError: a rank gets no full batch in some epoch.
        FormatError: ``dataset`` is not a tap3d dataset.
        WeightsError: ``config.init`` cannot be read or does not fit (CheckpointError: it
            names types beyond tensors and numpy values, without ``trust``); ``w_feat`` > 0
            without VGG-16 weights (the message says where to put them).
    """

    mixed_precision = True

    def __init__(self, dataset: str, out: str, config: TrainConfig, trust: bool = False):
        from tap3d.views.schema import open_views

        config = resolve_up_axis(config, open_views(dataset).attrs)
        self.data, self.config = dataset, config
        self.process, self.device = setup(config)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        training, held_out = quality.holdout_split(dataset, config.eval_fraction, config.seed)
        self.stream = make_stream(dataset, config, self.process, training)
        self.model_config = model_config(config, int(self.stream.image_size),
                                         self.stream.projection)
        self.model = TAPModel(self.model_config).to(self.device)
        if config.init:  # weights only; a resumed run's checkpoint replaces them
            init_model(self.model, config.init, trust=trust)
        # the perceptual loss's frozen VGG-16 (not part of the model): its weights file is read
        # here, so a missing one fails before the run folder is written
        self.perceptual = PerceptualLoss(config.feat_layers, config.feat_weights, trust).to(
            self.device) if config.w_feat > 0 else None
        self.run = RunFolder(out, self.process.rank, config.log_objects)
        self.evaluator = quality.Evaluator(dataset, config, training, held_out, self.device,
                                           self.process.main, self.run)
        self.counts: dict[int, int] = {}
        self.last: dict = {}
        self.views = None

    def batch_count(self, epoch: int) -> int:
        self.stream.set_epoch(epoch)
        count = self.stream.batches_per_epoch(self.config.batch_size, self.config.num_workers)
        if count == 0:
            raise ValueError(f"{self.data}: a rank gets no full batch of "
                             f"{self.config.batch_size} in epoch {epoch} ({len(self.stream)} "
                             f"objects, {self.stream.world_size} ranks); lower the batch size")
        self.counts[epoch] = count
        return count

    def batches(self, epoch: int, start: int):
        """The stream's batches of ``epoch`` from ``start`` (the ones before are read and
        dropped: the stream is sequential), each step's objects logged (``log_objects``)."""
        self.stream.set_epoch(epoch)
        loader = make_loader(self.stream, self.device, self.config.seed,
                             batch_size=self.config.batch_size,
                             num_workers=self.config.num_workers, drop_last=True)
        before = sum(self.counts[e] for e in range(epoch))
        for index, batch in itertools.islice(enumerate(loader), start, self.counts[epoch]):
            self.run.log_objects(before + index + 1, epoch, batch["index"].tolist())
            yield batch

    def schedule(self, total: int, steps_per_epoch: int):
        config = self.config
        return cosine_schedule(total, config.warmup_steps, config.lr, config.min_lr)

    def loss(self, model, batch):
        images = batch["images"].float().flatten(0, 1) / 255.0
        generated = model(batch["features"], batch["K"], batch["world_to_camera"])
        losses = tap_loss(generated.flatten(0, 1), images, batch["masks"].flatten(0, 1),
                          self.config.w_fg, self.config.w_bg)  # float32 inside
        if self.perceptual is not None:  # TAP supplement eq. 3: L_pix + w_feat L_feat
            losses["loss_feat"] = self.perceptual(generated.flatten(0, 1), images)
            losses["loss"] = losses["loss"] + self.config.w_feat * losses["loss_feat"]
        self.views = generated[0].detach(), images[:generated.shape[1]]
        return losses["loss"], losses

    def after_step(self, progress, metrics: dict) -> dict:
        """The scheduled evaluation (its ``eval_*`` metrics join the step's record) and the
        sample grid."""
        step, total = progress.step, progress.total
        scores = self.evaluator.evaluate_if_due(self.model, step, total)
        self.last = {"step": step, "epoch": progress.epoch, **metrics, **scores}
        if step % self.config.sample_every == 0 or step == total:
            self.run.log_samples(step, *self.views)
        return scores

    def checkpoint_extras(self) -> dict:
        """The model's own config (nanoGPT's ``model_args``): :func:`tap3d.train.weights.
        load_model` rebuilds the model from it alone."""
        return {"model_args": dataclasses.asdict(self.model_config)}

    def results(self) -> dict:
        """``{"step", "epoch", "loss", "loss_fg", "loss_bg"}`` of the last step and its
        ``eval_*`` metrics when it evaluated."""
        return {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in self.last.items()}


def train(dataset: str, out: str, config: TrainConfig, resume: bool = False,
          progress: bool = True, stop_at: int | None = None, trust: bool = False) -> dict:
    """Pre-train a backbone with TAP on a ``tap3d.views`` dataset.

    Args:
        dataset: dataset path or fsspec URL.
        out: run folder (created).
        config: settings.
        resume: continue from ``out/checkpoints/last.pt``.
        progress: show a progress bar (rank 0).
        stop_at: checkpoint and return after this step, as if the job were pre-empted there
            (the schedule still runs to the configured end; ``resume`` continues).
        trust: read ``config.init`` and the resumed ``last.pt`` even when they name types
            beyond tensors and numpy values, with the full unpickler, which runs any code
            they hold (``--trust-checkpoint``; :func:`tap3d.train.torchfile.load_torch_file`).

    Returns:
        ``{"step", "epoch", "loss", "loss_fg", "loss_bg"}`` of the last step, and the last
        evaluation's ``eval_*`` metrics (see :mod:`tap3d.train.quality`).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
        FormatError: ``dataset`` is not a tap3d dataset.
        CheckpointError: without ``trust``, ``config.init`` or the resumed checkpoint names
            other types (file and type named).
        WeightsError: ``config.init`` cannot be read or does not fit the model.
    """
    return fit(PretrainTask(dataset, out, config, trust), resume, progress, stop_at, trust)
