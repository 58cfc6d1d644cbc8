"""Fine-tuning a backbone for classification: what ``tap-cli finetune DATA -o RUN`` calls, a
task of the training engine (:mod:`tap3d.train.engine`).

TAP's public recipe (docs/evaluation.md; :class:`~tap3d.train.finetune_config.FinetuneConfig`):
backbone -> max pool -> head [512, 256] (BatchNorm, ReLU, dropout 0.5); smoothed cross-entropy
(0.3); AdamW 5e-4, weight decay 0.05 on weights only; 10 warm-up epochs then cosine to 1e-6 over 300
epochs; gradient clip 10; batch 32; inputs from :mod:`tap3d.clouds.pipeline`. After every epoch the
test split is evaluated: overall accuracy (OA) and mean class accuracy (mAcc), in percent.

The run folder follows ``tap-cli train`` (:mod:`tap3d.train.runfolder`): ``config.yaml``,
``metrics.jsonl`` (step records: ``loss``, ``lr``, ``samples_per_s``; epoch records:
``train_loss``, ``train_oa``, ``eval_oa``, ``eval_macc``), ``checkpoints/`` (``step_N.pt``,
``last.pt``, and ``best.pt``: the weights of the best test epoch), ``tensorboard/`` and
``results.json``: ``best_oa`` (the best epoch's OA, what the authors report: their validation
set is the test set), ``best_macc`` (mAcc of that epoch), ``best_epoch``, ``last_oa``,
``last_macc``, ``train_oa`` (the final model on the training clouds, test-time inputs, eval
mode), ``epochs`` (evaluated), ``steps``, and with ``votes`` ``voted_oa``, ``voted_macc`` (the
final model, :func:`~tap3d.clouds.pipeline.voting_features`). ``resume=True`` continues from
``checkpoints/last.pt`` and ends with the parameters and results of an unbroken run.
Under ``torchrun`` each rank trains on its share of every epoch and evaluates its share of the
test set (confusion matrices summed); BatchNorm is synchronized on CUDA.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
import torch.nn.functional as F

from tap3d.train.finetune_config import FinetuneConfig
from tap3d.clouds.pipeline import (AugmentedClouds, eval_features, fps_points, mix_points,
                                   training_features, voting_features)
from tap3d.clouds.labelled import load_labelled
from tap3d.metrics import evaluate_classifier
from tap3d.train.weights import load_backbone
from tap3d.models.heads import Classifier
from tap3d.geometry.features import with_height
from tap3d.train import distributed
from tap3d.train.cloudtask import CloudsTask, epoch_batches
from tap3d.train.engine import fit, make_loader, setup
from tap3d.train.optim import cosine_schedule
from tap3d.train.runfolder import RunFolder

__all__ = ["finetune", "build_classifier", "epoch_batches", "CloudsTask", "ClassificationTask"]


def build_classifier(config: FinetuneConfig, classes: int,
                     trust: bool = False) -> tuple[Classifier, FinetuneConfig]:
    """The classifier, its backbone randomly initialized (seeded) or from
    ``config.backbone_checkpoint``; the config with ``backbone``/``embed_dim`` set to what the
    checkpoint holds.

    Args:
        config: the settings.
        classes: number of classes.
        trust: read the checkpoint with the full unpickler even when it names types beyond
            tensors and numpy values (:func:`tap3d.train.torchfile.load_torch_file`).

    Returns:
        ``(classifier, config)``.

    Raises:
        CheckpointError: without ``trust``, the checkpoint names other types.
        WeightsError: the checkpoint cannot be read or does not fit (names the file).
    """
    torch.manual_seed(config.seed)
    backbone, weights = load_backbone(config.backbone_checkpoint, config.backbone,
                                      config.embed_dim, trust=trust)
    if weights is not None:
        config = dataclasses.replace(config, backbone=weights.backbone,
                                     embed_dim=weights.kwargs.get("embed_dim", config.embed_dim))
    return Classifier(backbone, classes, list(config.head), config.dropout), config


class ClassificationTask(CloudsTask):
    """Classification fine-tuning (the engine's Task interface): batches of augmented clouds
    (:class:`~tap3d.clouds.pipeline.AugmentedClouds`, :func:`epoch_batches`), smoothed
    cross-entropy, test OA/mAcc after every epoch, the best epoch's weights in ``best.pt``.
    ``trust``: see :func:`build_classifier`.

    Raises:
        LabelledDataError: ``data`` is not a labelled dataset.
        WeightsError: the backbone checkpoint cannot be read or does not fit (CheckpointError:
            it names types beyond tensors and numpy values, without ``trust``).
        ValueError: no full batch per rank.
    """

    def __init__(self, data: str, out: str, config: FinetuneConfig, trust: bool = False):
        self.process, self.device = process, device = setup(config)
        self.data = data
        self.labelled = load_labelled(data, config.variant, config.test_fraction, config.seed)
        self.classes = len(self.labelled.classes)
        model, self.config = build_classifier(config, self.classes, trust)
        config = self.config
        self.model = self.place_model(model)
        self.train_set = AugmentedClouds(
            self.labelled.train_points, self.labelled.train_labels,
            (config.scale_low, config.scale_high), config.rotate, config.up_axis, config.seed,
            config.rotation)
        self.test = self.eval_inputs(self.labelled.test_points, self.labelled.test_labels)
        self.run = RunFolder(out, process.rank)
        # torch's label_smoothing spreads eps over all C classes, TAP's over the C - 1 others
        self.eps = config.label_smoothing * self.classes / max(self.classes - 1, 1)
        self.presample = config.presample or fps_points(config.points)
        self.load_state_dict({})

    def batches(self, epoch: int, start: int):
        """``{"points", "labels", "epoch", "batch"}``: this rank's augmented clouds of batch
        ``batch`` of ``epoch``, from ``start`` on."""
        self.train_set.set_epoch(epoch)
        loader = make_loader(self.train_set, self.device, self.config.seed,
                             batch_sampler=self.epoch_batches(epoch)[start:],
                             num_workers=self.config.num_workers)
        for index, (points, labels) in enumerate(loader, start):
            yield {"points": points, "labels": labels, "epoch": epoch, "batch": index}

    def schedule(self, total: int, steps_per_epoch: int):
        config = self.config
        return cosine_schedule(total, config.warmup_epochs * steps_per_epoch, config.lr,
                               config.min_lr)

    def loss(self, model, batch):
        """Smoothed cross-entropy; the batch's point subset is seeded by ``(seed, epoch,
        batch, rank)``, so a resumed run replays it."""
        config = self.config
        rng = np.random.default_rng([config.seed, batch["epoch"], batch["batch"],
                                     self.process.rank])
        features = training_features(batch["points"], config.points, self.presample,
                                     config.up_axis, rng, config.sampling)
        labels = batch["labels"]
        partner = None
        if config.mix and rng.random() < config.mix:
            xyz, partner, lam = mix_points(features[..., :3], rng)
            features = with_height(xyz, config.up_axis)
        logits = model(features)
        if partner is None:
            loss = F.cross_entropy(logits, labels, label_smoothing=self.eps)
        else:  # the label mixed by the share of points replaced
            loss = ((1 - lam) * F.cross_entropy(logits, labels, reduction="none",
                                                label_smoothing=self.eps)
                    + lam * F.cross_entropy(logits, labels[partner], reduction="none",
                                            label_smoothing=self.eps)).mean()
        self.add_to_sums(loss, (logits.argmax(1) == labels).sum(), len(labels))
        return loss, {"loss": loss}

    def eval_inputs(self, points, labels, votes: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a split, as test-time inputs on the device; with ``votes``, as
        that many rotated copies (:func:`~tap3d.clouds.pipeline.voting_features`)."""
        shard = slice(self.process.rank, None, self.process.world)
        config = self.config
        if votes:
            features = voting_features(points[shard], config.points, config.up_axis,
                                       self.device, votes, config.eval_batch_size,
                                       config.sampling, config.rotation)
        else:
            features = eval_features(points[shard], config.points, config.up_axis, self.device,
                                     config.eval_batch_size, config.sampling)
        return features, torch.from_numpy(labels[shard]).to(self.device)

    def evaluate(self, inputs) -> tuple[float, float]:
        return evaluate_classifier(self.model, *inputs, self.classes, self.config.eval_batch_size,
                                   functools.partial(distributed.reduce_across_processes,
                                                     process=self.process))

    def end_epoch(self, progress) -> None:
        """Evaluate, log the epoch, keep the best weights, write ``results.json``."""
        s = self.scores
        oa, macc = self.evaluate(self.test)
        self.keep_scores(progress.epoch, {"oa": oa, "macc": macc}, "oa")
        s["epochs"] = progress.epoch + 1
        record = self.train_record(progress, "train_oa")
        self.run.log({**record, "eval_oa": s["last_oa"], "eval_macc": s["last_macc"],
                      "eval_best_oa": s["best_oa"]})
        if progress.step >= progress.total:  # the end: accuracy on the training clouds
            s["train_oa"] = self.evaluate(self.eval_inputs(self.labelled.train_points,
                                                           self.labelled.train_labels))[0]
            if self.config.votes:
                s["voted_oa"], s["voted_macc"] = self.evaluate(self.eval_inputs(
                    self.labelled.test_points, self.labelled.test_labels, self.config.votes))
        s["steps"] = progress.step
        self.write_results(classes=self.labelled.classes)

    def state_dict(self) -> dict:
        """The epoch's running sums and the scores (what ``results.json`` holds)."""
        return {**self.sums_state(), **self.scores}

    def load_state_dict(self, state: dict) -> None:
        """What :meth:`state_dict` returned; ``{}`` starts afresh."""
        self.load_sums(state)
        self.scores = {"best_oa": -1.0, "best_macc": 0.0, "best_epoch": -1, "last_oa": 0.0,
                       "last_macc": 0.0, "train_oa": None, "epochs": 0, "steps": 0}
        self.scores.update({k: v for k, v in state.items() if k in self.scores})

    def after_step(self, progress, metrics: dict) -> dict:
        self.scores["steps"] = progress.step
        return {}

    def checkpoint_extras(self) -> dict:
        return {"classes": self.labelled.classes}


def finetune(data: str, out: str, config: FinetuneConfig = FinetuneConfig(), resume: bool = False,
             progress: bool = True, stop_at: int | None = None, trust: bool = False) -> dict:
    """Fine-tune a backbone with a classification head on a labelled point-cloud dataset.

    Args:
        data: ScanObjectNN / ModelNet40 h5 folder or tap3d dataset
            (:func:`tap3d.clouds.labelled.load_labelled`).
        out: run folder (created).
        config: settings; ``config.backbone_checkpoint`` empty for random initialization.
        resume: continue from ``out/checkpoints/last.pt``.
        progress: show a progress bar (rank 0).
        stop_at: checkpoint and return after this step, as if pre-empted (``resume`` continues).
        trust: read the backbone checkpoint and the resumed ``last.pt`` even when they name
            types beyond tensors and numpy values, with the full unpickler, which runs any code
            they hold (``--trust-checkpoint``; :func:`tap3d.train.torchfile.load_torch_file`).

    Returns:
        The scores of ``results.json`` (module docstring), percent.

    Raises:
        LabelledDataError: ``data`` is not a labelled dataset.
        CheckpointError: without ``trust``, the backbone checkpoint or the resumed one names
            other types (file and type named).
        WeightsError: the backbone checkpoint cannot be read or does not fit.
        ValueError: no full batch per rank.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
    """
    return fit(ClassificationTask(data, out, config, trust), resume, progress, stop_at, trust)
