"""Part segmentation: what ``tap-cli finetune DATA --task partseg -o RUN`` calls, a task of the
training engine (:mod:`tap3d.train.engine`).

The TAP authors' ShapeNetPart recipe (:class:`~tap3d.train.partseg_config.PartSegConfig`): a
backbone with its segmentation head (:func:`tap3d.models.segmentation.make_segmenter`; PointMLP's
part segmentor by default), xyz + normals, Poly-1 focal loss, AdamW 1e-3 (weight decay 1e-4),
x 0.1 at epochs 210 and 270 of 300, batch 16, gradient clip 1. Training shapes: 2048 points drawn
with replacement, anisotropic scaling U[0.8, 1.2], centred, unit sphere, jitter (0.001, clip
0.005), all normals 0 with probability 0.2. Test shapes: 2048 farthest-point samples, centred,
unit sphere. Every epoch the test split is scored (instance and class mIoU, refined,
:mod:`tap3d.metrics`); the best epoch's weights are kept and, at the end,
scored again with test-time voting.

The run folder (:mod:`tap3d.train.runfolder`): ``config.yaml``, ``metrics.jsonl`` (step records
``loss``, ``lr``; epoch records ``train_loss``, ``train_accuracy``, ``eval_instance_miou``,
``eval_class_miou``), ``tensorboard/``, ``checkpoints/`` (``last.pt``, ``best.pt``),
``parts.png`` (predicted against true parts of a few test shapes, from the final scoring) and
``results.json``: ``best_instance_miou``, ``best_class_miou``, ``best_category_miou`` (per
category), ``best_epoch``, ``last_*`` (the last evaluation), ``voted_*`` (the best weights with
``votes`` votes; absent when ``votes`` is 0), ``baseline_instance_miou`` (every point given its
category's most frequent training part), ``backbone_not_loaded`` (tensor -> why), percent.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from tap3d.clouds.parts import load_part_labelled
from tap3d.clouds.pipeline import PartClouds, part_eval_inputs
from tap3d.clouds.partfigure import draw_parts
from tap3d.metrics import predict_parts, refine_parts, shape_miou, summarize
from tap3d.models.segmentation import make_segmenter
from tap3d.train.weights import load_pretrained_backbone
from tap3d.train import distributed
from tap3d.train.checkpoint import load_checkpoint
from tap3d.train.engine import fit, make_loader, setup
from tap3d.train.cloudtask import CloudsTask
from tap3d.train.loss import poly1_focal_loss
from tap3d.train.optim import multistep_schedule
from tap3d.train.partseg_config import PartSegConfig
from tap3d.train.runfolder import RunFolder

__all__ = ["PartSegTask", "finetune_partseg"]


class PartSegTask(CloudsTask):
    """Part segmentation on the engine (module docstring).

    Raises:
        PartDataError: ``data`` is not a part-labelled dataset.
        WeightsError: the backbone checkpoint cannot be read (CheckpointError: it names types
            beyond tensors and numpy values, without ``trust``).
        ValueError: no full batch per rank.
    """

    def __init__(self, data: str, out: str, config: PartSegConfig, trust: bool = False):
        self.process, self.device = process, device = setup(config)
        self.data, self.config, self.trust = data, config, trust
        self.dataset = d = load_part_labelled(data, config.test_fraction, config.seed)
        torch.manual_seed(config.seed)
        model = make_segmenter(config.backbone, d.num_parts, len(d.categories),
                               in_channels=6 if config.normals else 3, embed_dim=config.embed_dim)
        self.not_loaded = {}
        if config.backbone_checkpoint:
            report = load_pretrained_backbone(model, config.backbone_checkpoint, config.backbone,
                                              trust=trust)
            self.not_loaded = report.skipped
            if process.main:
                print(report.format())
        self.model = self.place_model(model)
        self.train_set = PartClouds(d.train.shapes, config.points,
                                    (config.scale_low, config.scale_high),
                                    (config.jitter_sigma, config.jitter_clip), config.normals,
                                    config.normal_drop, config.seed)
        shard = d.test.shapes[process.rank::process.world]
        self.test = part_eval_inputs(shard, config.points, config.normals, device)
        self.baseline = self.majority_baseline()
        self.run = RunFolder(out, process.rank)
        self.load_state_dict({})

    def majority_baseline(self) -> float:
        """Instance mIoU (percent, this rank's test shapes) of predicting every point as its
        category's most frequent part among the training points."""
        d = self.dataset
        counts = np.zeros((len(d.categories), d.num_parts))
        for shape in d.train.shapes:
            counts[shape.category] += np.bincount(shape.part, minlength=d.num_parts)
        _, truth, categories = self.test
        scores = [shape_miou(np.full(truth.shape[1], counts[c].argmax()), t, d.category_parts[c])
                  for t, c in zip(truth.cpu().numpy(), categories.cpu().numpy())]
        return float(np.mean(scores)) if scores else 0.0

    def batches(self, epoch: int, start: int):
        self.train_set.set_epoch(epoch)
        yield from make_loader(self.train_set, self.device, self.config.seed,
                               batch_sampler=self.epoch_batches(epoch)[start:],
                               num_workers=self.config.num_workers)

    def schedule(self, total: int, steps_per_epoch: int):
        return multistep_schedule([m * steps_per_epoch for m in self.config.milestones],
                                  self.config.decay)

    def loss(self, model, batch):
        features, part, category = batch
        logits = model(features, category).reshape(-1, self.dataset.num_parts)
        target = part.reshape(-1)
        if self.config.loss == "poly1_focal":
            loss = poly1_focal_loss(logits, target)
        else:
            loss = torch.nn.functional.cross_entropy(logits, target)
        self.add_to_sums(loss, (logits.detach().argmax(1) == target).sum(), len(target))
        return loss, {"loss": loss}

    def evaluate(self, model, votes: int = 0):
        """Scores of ``model`` on the test split (all ranks) and this rank's predictions
        ``(S, points)`` int64 (numpy)."""
        c, d = self.config, self.dataset
        features, truth, categories = self.test
        logits = predict_parts(model, features, categories, votes, (c.scale_low, c.scale_high),
                               c.seed, c.eval_batch_size)
        predicted = logits.argmax(-1).cpu().numpy()
        xyz, truth, cats = features[..., :3].cpu().numpy(), truth.cpu().numpy(), \
            categories.cpu().numpy()
        if c.refine:
            predicted = np.stack([refine_parts(p, x, d.category_parts[k], c.refine_points,
                                               c.refine_neighbours)
                                  for p, x, k in zip(predicted, xyz, cats)]) \
                if len(predicted) else predicted
        mious = [shape_miou(p, t, d.category_parts[k]) for p, t, k in zip(predicted, truth, cats)]
        mine = (mious, cats.tolist(), self.baseline, len(mious))
        every = distributed.all_gather(mine, self.process)
        scores = summarize([m for e in every for m in e[0]], [k for e in every for k in e[1]],
                           d.categories)
        self.baseline_all = sum(e[2] * e[3] for e in every) / max(sum(e[3] for e in every), 1)
        return scores, predicted

    def end_epoch(self, progress) -> None:
        """Evaluate (every ``eval_every`` epochs and at the end), log the epoch, keep the best
        weights, write ``results.json``; at the end also the voted scores and ``parts.png``."""
        c, s = self.config, self.scores
        last = progress.step >= progress.total
        record = self.train_record(progress, "train_accuracy")
        if (progress.epoch + 1) % c.eval_every == 0 or last:
            scores, predicted = self.evaluate(self.model)
            self.keep_scores(progress.epoch, {k: scores[k] for k in
                                              ("instance_miou", "class_miou", "category_miou")},
                             "instance_miou")
            s["epochs"] = progress.epoch + 1
            record.update(eval_instance_miou=scores["instance_miou"],
                          eval_class_miou=scores["class_miou"],
                          eval_best_instance_miou=s["best_instance_miou"])
        self.run.log(record)
        s["steps"], s["baseline_instance_miou"] = progress.step, self.baseline_all
        if last:
            self.finish(predicted)
        self.write_results(categories=self.dataset.categories,
                           backbone_not_loaded=self.not_loaded)

    def finish(self, predicted) -> None:
        """The best weights scored with votes (when ``votes`` > 0), and ``parts.png``."""
        c, s = self.config, self.scores
        if c.votes:
            distributed.barrier(self.process)  # rank 0 wrote best.pt
            best = copy.deepcopy(self.model)
            best.load_state_dict(load_checkpoint(os.path.join(self.run.checkpoints, "best.pt"),
                                                 self.device, trust=self.trust)["model"])
            scores, predicted = self.evaluate(best, c.votes)
            s.update({f"voted_{k}": scores[k] for k in ("instance_miou", "class_miou")},
                     voted_category_miou=scores["category_miou"], votes=c.votes)
        if self.process.main and c.figure_shapes:
            features, truth, categories = (t.cpu().numpy() for t in self.test)
            chosen = []  # one shape per category first, then the next ones
            for k in dict.fromkeys(categories.tolist()):
                chosen.append(int(np.flatnonzero(categories == k)[0]))
            chosen = (chosen + [i for i in range(len(categories)) if i not in chosen])
            shapes = []
            for i in chosen[:c.figure_shapes]:
                parts = self.dataset.category_parts[categories[i]]
                title = (f"{self.dataset.categories[categories[i]]} "
                         f"{shape_miou(predicted[i], truth[i], parts):.1f}")
                shapes.append((features[i, :, :3], truth[i], predicted[i], parts, title))
            draw_parts(os.path.join(self.run.path, "parts.png"), shapes)

    def state_dict(self) -> dict:
        return {**self.sums_state(), **self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.load_sums(state)
        self.baseline_all = self.baseline
        self.scores = {"best_instance_miou": -1.0, "best_class_miou": 0.0,
                       "best_category_miou": {}, "best_epoch": -1, "last_instance_miou": 0.0,
                       "last_class_miou": 0.0, "last_category_miou": {}, "epochs": 0,
                       "steps": 0, "baseline_instance_miou": self.baseline}
        self.scores.update({k: v for k, v in state.items() if k in self.scores
                            or k.startswith("voted_") or k == "votes"})

    def checkpoint_extras(self) -> dict:
        return {"categories": self.dataset.categories,
                "category_parts": self.dataset.category_parts}


def finetune_partseg(data: str, out: str, config: PartSegConfig = PartSegConfig(),
                     resume: bool = False, progress: bool = True, stop_at: int | None = None,
                     trust: bool = False) -> dict:
    """Fine-tune a backbone with a part-segmentation head on ``data``, a ShapeNetPart folder or a
    tap3d dataset with part labels (:func:`tap3d.clouds.parts.load_part_labelled`); the
    other arguments (``trust``: the backbone checkpoint, the resumed ``last.pt`` and ``best.pt``
    are read with the full unpickler), the return value (here the part scores of the module
    docstring) and the errors (here ``PartDataError`` for bad data, ``CheckpointError`` for a
    checkpoint that names types beyond tensors and numpy values without ``trust``) as
    :func:`tap3d.train.finetune.finetune`.
    """
    return fit(PartSegTask(data, out, config, trust), resume, progress, stop_at, trust)
