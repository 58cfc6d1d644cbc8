"""What the fine-tuning tasks on in-memory point clouds share (classification,
:mod:`tap3d.train.finetune`; part segmentation, :mod:`tap3d.train.partseg`): the engine's
:class:`~tap3d.train.engine.Task` with seeded full batches dealt to the ranks, the epoch's
running sums, the model placed on its device, the best epoch's scores and weights (``best.pt``) and
``results.json``."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import torch

from tap3d.train import checkpoint, distributed
from tap3d.train.engine import Task

__all__ = ["epoch_batches", "CloudsTask"]


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This rank's batches of one epoch: a seeded permutation of ``count`` samples dealt to
    ``world`` ranks (``count // world`` each), in full batches (the remainder is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    mine = order[rank::world][:count // world]
    return [mine[i * batch_size:(i + 1) * batch_size].tolist()
            for i in range(len(mine) // batch_size)]



class CloudsTask(Task):
    """What the fine-tuning tasks on in-memory clouds share (classification, part
    segmentation): each epoch a seeded permutation of ``self.train_set`` dealt to the ranks in
    full batches of ``config.batch_size`` (:func:`epoch_batches`), and the epoch's running sums
    ``self.loss_sum``, ``self.correct`` (device tensors) and ``self.seen`` (int) reduced over
    the ranks."""

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return epoch_batches(len(self.train_set), self.config.batch_size, self.config.seed,
                             epoch, self.process.rank, self.process.world)

    def batch_count(self, epoch: int) -> int:
        count = len(self.epoch_batches(epoch))
        if count == 0:
            raise ValueError(f"{self.data}: {len(self.train_set)} training clouds over "
                             f"{self.process.world} processes give no full batch of "
                             f"{self.config.batch_size}")
        return count

    def epoch_sums(self) -> tuple[float, float, float]:
        """The epoch's running loss sum, correct predictions and samples seen, summed over the
        ranks (a collective under torchrun)."""
        train = torch.stack([self.loss_sum, self.correct.double(),
                             torch.tensor(float(self.seen), dtype=torch.float64,
                                          device=self.device)])
        return tuple(distributed.reduce_across_processes(train, self.process).tolist())

    def place_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on the task's device (BatchNorm synchronized over the ranks under
        torchrun on CUDA); then the torch seed ``seed + rank``, so that dropout differs
        between ranks."""
        if self.device.type == "cuda" and self.process.world > 1:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        torch.manual_seed(self.config.seed + self.process.rank)
        return model

    def add_to_sums(self, loss: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        """Add a batch to the epoch's running sums (device tensors: no host sync)."""
        self.loss_sum = self.loss_sum + loss.detach().double()
        self.correct = self.correct + correct
        self.seen += seen

    def train_record(self, progress, accuracy: str) -> dict:
        """The epoch's log record: step, epoch, mean training loss and the training accuracy
        (percent) under the name ``accuracy``; the running sums start again."""
        loss_sum, correct, seen = self.epoch_sums()
        record = {"step": progress.step, "epoch": progress.epoch,
                  "train_loss": loss_sum / max(progress.batch_in_epoch * self.process.world, 1),
                  accuracy: 100.0 * correct / max(seen, 1)}
        self.loss_sum, self.correct, self.seen = self.loss_sum * 0, self.correct * 0, 0
        return record

    def keep_scores(self, epoch: int, scores: dict, key: str) -> bool:
        """Record an evaluation: ``scores`` (name -> value) as ``last_<name>``, and, when
        ``scores[key]`` beats ``best_<key>``, as ``best_<name>`` with ``best_epoch``, the weights
        written to ``RUN/checkpoints/best.pt`` (main process, atomically:
        :func:`~tap3d.train.distributed.save_on_main`) with the epoch, the scores and the
        settings. Returns True for a new best."""
        self.scores.update({f"last_{k}": v for k, v in scores.items()})
        if scores[key] <= self.scores[f"best_{key}"]:
            return False
        self.scores.update({f"best_{k}": v for k, v in scores.items()}, best_epoch=epoch)
        best = {"model": self.model.state_dict(), "epoch": epoch, "scores": scores,
                "config": dataclasses.asdict(self.config)}
        distributed.save_on_main(checkpoint.stamped(best),
                                 os.path.join(self.run.checkpoints, "best.pt"), self.process)
        return True

    def write_results(self, **extra) -> None:
        """``RUN/results.json`` (main process): :meth:`results`, the dataset, the backbone
        checkpoint and ``extra``."""
        if self.process.main:
            with open(os.path.join(self.run.path, "results.json"), "w") as f:
                json.dump({**self.results(), **extra, "dataset": str(self.data),
                           "backbone_checkpoint": self.config.backbone_checkpoint}, f, indent=1)

    def sums_state(self) -> dict:
        """The running sums, as :meth:`state_dict` records them."""
        return {"loss_sum": float(self.loss_sum), "correct": int(self.correct),
                "seen": self.seen}

    def load_sums(self, state: dict) -> None:
        """The running sums of a :meth:`state_dict` (zero when absent)."""
        self.loss_sum = torch.tensor(float(state.get("loss_sum", 0.0)), dtype=torch.float64,
                                     device=self.device)
        self.correct = torch.tensor(int(state.get("correct", 0)), device=self.device)
        self.seen = int(state.get("seen", 0))

    def results(self) -> dict:
        """The scores of ``results.json``, percent."""
        return dict(self.scores)
