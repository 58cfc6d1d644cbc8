"""The training engine on a task of a few lines (least squares with dropout, no dataset): exact
resume, gradient accumulation, the NaN guard, logging windows and the step schedule."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from tap3d.train.checkpoint import load_checkpoint
from tap3d.train.engine import NonFiniteLossError, Task, fit, setup
from tap3d.train.optim import cosine_schedule, step_schedule
from tap3d.train.runfolder import RunFolder

SAMPLES = 64


@dataclass
class LineConfig:
    epochs: int = 3
    max_steps: int = 0
    batch_size: int = 8
    grad_accumulation: int = 1
    lr: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.5
    log_every: int = 3
    checkpoint_every: int = 5
    seed: int = 0
    device: str = "cpu"


class LineTask(Task):
    """Fit ``y = x . w`` with a small MLP; batch ``poison`` (``(epoch, batch)``) gets a NaN."""

    def __init__(self, out: str, config: LineConfig, poison=None):
        self.config, self.data, self.poison = config, "least squares", poison
        self.process, self.device = setup(config)
        torch.manual_seed(config.seed)
        self.model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(config.dropout),
                                   nn.Linear(16, 1))
        rng = np.random.default_rng(0)
        self.x = torch.from_numpy(rng.normal(size=(SAMPLES, 3)).astype(np.float32))
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
        self.run = RunFolder(out)
        self.seen = 0

    def batch_count(self, epoch):
        return SAMPLES // self.config.batch_size

    def batches(self, epoch, start):
        order = np.random.default_rng([self.config.seed, epoch]).permutation(SAMPLES)
        size = self.config.batch_size
        for i in range(start, self.batch_count(epoch)):
            x = self.x[order[i * size:(i + 1) * size]]
            yield x * float("nan") if (epoch, i) == self.poison else x, \
                self.y[order[i * size:(i + 1) * size]]

    def schedule(self, total, steps_per_epoch):
        return cosine_schedule(total, 2, self.config.lr, self.config.lr / 10)

    def loss(self, model, batch):
        x, y = batch
        error = model(x) - y
        self.seen += len(x)
        return (error ** 2).mean(), {"loss": (error ** 2).mean(), "mae": error.abs().mean()}

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state.get("seen", 0)

    def results(self):
        return {"seen": self.seen}


def _records(run):
    return [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]


def _weights(run):
    return load_checkpoint(os.path.join(run, "checkpoints", "last.pt"))


def test_stop_and_resume_equal_an_unbroken_run(tmp_path):
    """8 steps per epoch, dropout drawn from the global generator: stopping mid-epoch (step 5)
    and at an epoch's end (step 16) and resuming gives the unbroken run's parameters, optimizer
    state, task state and logged records, bit for bit."""
    config = LineConfig()
    full = fit(LineTask(str(tmp_path / "full"), config), progress=False)
    assert full == {"seen": 3 * SAMPLES}
    part = str(tmp_path / "part")
    fit(LineTask(part, config), progress=False, stop_at=5)
    assert _weights(part)["step"] == 5 and _weights(part)["batch_in_epoch"] == 5
    fit(LineTask(part, config), progress=False, stop_at=16, resume=True)
    assert _weights(part)["epoch"] == 2 and _weights(part)["batch_in_epoch"] == 0
    assert fit(LineTask(part, config), progress=False, resume=True) == full
    a, b = _weights(tmp_path / "full"), _weights(part)
    assert a["step"] == b["step"] == 24 and a["task"] == b["task"] == {"seen": 3 * SAMPLES}
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    torch.testing.assert_close(a["optimizer"]["state"], b["optimizer"]["state"], rtol=0, atol=0)
    # the step records: every log_every steps and the last; windows restart at a resume
    records = _records(tmp_path / "full"), _records(part)
    assert [r["step"] for r in records[0]] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert [(r["step"], r["lr"]) for r in records[0]] == [(r["step"], r["lr"]) for r in records[1]]
    assert {"step", "epoch", "loss", "mae", "samples_per_s", "data_wait", "lr"} == set(records[0][0])
    assert all(0 <= r["data_wait"] <= 1 for r in records[0])
    assert records[0][-1]["loss"] < records[0][0]["loss"]


def test_resume_drops_records_written_after_the_checkpoint(tmp_path):
    """A run that died after its last checkpoint logged steps the resumed run logs again."""
    config = LineConfig(log_every=1, checkpoint_every=4)
    run = str(tmp_path / "run")
    fit(LineTask(run, config), progress=False, stop_at=4)
    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n")  # logged, then killed
    fit(LineTask(run, config), progress=False, resume=True)
    assert [r["step"] for r in _records(run)] == list(range(1, 25))


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    """Two micro-batches of 4 per step take the steps of one batch of 8 (no dropout): the same
    samples, the mean of the two losses, the same parameters up to float rounding."""
    large = LineConfig(dropout=0.0)
    small = LineConfig(dropout=0.0, batch_size=4, grad_accumulation=2)
    fit(LineTask(str(tmp_path / "large"), large), progress=False)
    fit(LineTask(str(tmp_path / "small"), small), progress=False)
    a, b = _weights(tmp_path / "large"), _weights(tmp_path / "small")
    assert a["step"] == b["step"] == 24
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)
    for x, y in zip(_records(tmp_path / "large"), _records(tmp_path / "small")):
        assert x["step"] == y["step"] and x["loss"] == pytest.approx(y["loss"], rel=1e-5)
    assert _records(tmp_path / "small")[0]["samples_per_s"] > 0


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """A NaN input at step 7 (epoch 0, batch 6): the loss is checked (without a host sync per
    step) at logs, checkpoints and epoch ends, so the run stops at step 8, before logging or
    saving anything of the NaN steps, names step 7 and the checkpoint of step 5."""
    run = str(tmp_path / "nan")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 7; the last good "
                                                 r"checkpoint is .*last\.pt"):
        fit(LineTask(run, LineConfig(log_every=4, checkpoint_every=5), poison=(0, 6)),
            progress=False)
    state = _weights(run)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["step"] for r in _records(run)] == [4]  # nothing logged from the NaN steps


def test_steps_read_nothing_back_from_the_device_between_logs(tmp_path, monkeypatch):
    """No host sync per step: tap3d's code reads tensors back (``item``, ``tolist``, ``float``,
    ``int``, ``bool``) only where it logs, checks the loss or saves, so 32 steps read as often
    as 8 (one log, one check, one checkpoint each)."""
    reads = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        def read(self, *args, _original=getattr(torch.Tensor, name), **kwargs):
            if f"{os.sep}tap3d{os.sep}" in sys._getframe(1).f_code.co_filename:
                reads.append(sys._getframe(1).f_code.co_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)

    def count(steps):
        reads.clear()
        config = LineConfig(epochs=1, batch_size=2, max_steps=steps, log_every=10**6,
                            checkpoint_every=10**6)
        fit(LineTask(str(tmp_path / str(steps)), config), progress=False)
        return sorted(reads)

    assert count(8) == count(32) != []


def test_step_schedule():
    factor = step_schedule(every=10, gamma=0.5, lr=1e-3, min_lr=1e-4, warmup=2)
    assert [factor(s) for s in (0, 1, 2, 11, 12, 22, 100)] == [0.5, 1.0, 1.0, 1.0, 0.5, 0.25,
                                                               0.1]
    with pytest.raises(ValueError, match="every"):
        step_schedule(every=0, gamma=0.5)
