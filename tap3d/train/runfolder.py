"""The run folder of ``tap-cli train``, written and read here only.

    RUN/config.yaml          the resolved configuration (and the dataset path)
    RUN/metrics.jsonl        one JSON object per logged step: step, epoch, loss, loss_fg, loss_bg
                             (means over the steps since the previous record), lr, samples_per_s
                             (its window includes an evaluation's time), and the ``eval_*``
                             metrics on the steps that evaluate (:mod:`tap3d.train.quality`)
    RUN/samples/step_N.png   generated views (top row) above their targets (bottom row)
    RUN/samples/eval_step_N.png  at each evaluation, one row per evaluated object (training ones
                             first, then held-out ones): every other view generated, then the
                             same views' targets
    RUN/checkpoints/         step_N.pt, last.pt (see :mod:`tap3d.train.checkpoint`)
    RUN/objects/rank_R.jsonl each step's object indices (``log_objects``)
    RUN/tensorboard/         TensorBoard scalars and sample grids (when tensorboard is installed)

Only rank 0 writes, except ``objects/rank_R.jsonl`` (one file per rank).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time

import numpy as np

from tap3d.views.pictures import generated_over_target

__all__ = ["RunFolder", "WindowMeter", "is_run_folder", "read_metrics", "latest_sample",
           "run_sheet", "last_evaluation", "format_evaluation"]


class WindowMeter:
    """Sums of scalars and the sample count since the last :meth:`flush`, for window means.

    Single-step losses swing by an order of magnitude on small batches; records hold the mean
    over the steps since the previous record, and the throughput over the same wall time, and
    the share of that time the loop spent waiting for its next batch (:meth:`waited`).
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps, self.samples, self.began = 0, 0, time.perf_counter()
        self.waiting = 0.0

    def waited(self, seconds: float) -> None:
        """Add ``seconds`` the training loop spent waiting for a batch (the DataLoader's next
        batch and its copy to the device)."""
        self.waiting += seconds

    def update(self, values: dict, samples: int) -> None:
        """Add one step's ``values`` (floats, or scalar tensors: summed on their device in
        float64, read only by :meth:`flush`, so a step costs no host sync) and its sample
        count."""
        for key, value in values.items():
            value = value.detach().double() if hasattr(value, "detach") else float(value)
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.steps += 1
        self.samples += samples

    def flush(self) -> dict[str, float]:
        """Means since the last flush, ``samples_per_s`` and ``data_wait`` (the share of the
        window's wall time spent waiting for batches, 0 to 1); starts a new window."""
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        means = {k: float(v) / max(self.steps, 1) for k, v in self.sums.items()}
        means["samples_per_s"] = self.samples / elapsed
        means["data_wait"] = min(self.waiting / elapsed, 1.0)
        self.reset()
        return means


class RunFolder:
    """Writes one run's files (see the module docstring).

    Args:
        path: the run folder (created).
        rank: this process's rank; only rank 0 writes config, metrics, samples, TensorBoard.
        log_objects: open ``objects/rank_R.jsonl`` for :meth:`log_objects`.
    """

    def __init__(self, path: str, rank: int = 0, log_objects: bool = False):
        self.path, self.rank = os.fspath(path), rank
        self.checkpoints = os.path.join(self.path, "checkpoints")
        self.writer = None
        self._objects = None
        if rank == 0:
            os.makedirs(self.checkpoints, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(os.path.join(self.path, "tensorboard"))
            except ImportError:
                self.writer = None
        if log_objects:
            os.makedirs(os.path.join(self.path, "objects"), exist_ok=True)
            self._objects = open(os.path.join(self.path, "objects", f"rank_{rank}.jsonl"), "a")

    def write_config(self, config, dataset: str) -> None:
        """``config.yaml``: the dataclass ``config`` and the dataset path."""
        import yaml

        if self.rank == 0:
            with open(os.path.join(self.path, "config.yaml"), "w") as f:
                yaml.safe_dump({**dataclasses.asdict(config), "dataset": str(dataset)}, f)

    def log(self, record: dict) -> None:
        """Append ``record`` (with ``step``) to ``metrics.jsonl`` and TensorBoard (rank 0)."""
        if self.rank != 0:
            return
        with open(os.path.join(self.path, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    group = "eval" if key.startswith("eval_") else "train"
                    self.writer.add_scalar(f"{group}/{key}", value, record["step"])

    def log_samples(self, step: int, generated, target) -> np.ndarray | None:
        """Save ``samples/step_N.png`` from ``(V, 3, S, S)`` images in [0, 1] (rank 0): up to 6
        generated views over their targets
        (:func:`~tap3d.views.pictures.generated_over_target`)."""
        if self.rank != 0:
            return None
        grid = generated_over_target(generated[None], target[None], views=slice(0, 6))
        self.log_image(f"step_{step}.png", "samples/generated_over_target", step, grid)
        return grid

    def log_image(self, name: str, tag: str, step: int, image: np.ndarray) -> None:
        """Save ``(H, W, 3)`` uint8 ``image`` as ``samples/NAME`` and TensorBoard image ``tag``
        (rank 0)."""
        if self.rank != 0:
            return
        from PIL import Image

        os.makedirs(os.path.join(self.path, "samples"), exist_ok=True)
        Image.fromarray(image).save(os.path.join(self.path, "samples", name))
        if self.writer:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def log_objects(self, step: int, epoch: int, index) -> None:
        """Append one step's object indices to ``objects/rank_R.jsonl``."""
        if self._objects:
            self._objects.write(json.dumps({"step": step, "epoch": epoch,
                                            "index": list(map(int, index))}) + "\n")

    def close(self) -> None:
        if self._objects:
            self._objects.close()
        if self.writer:
            self.writer.close()


def is_run_folder(path) -> bool:
    """True for a training run folder (``metrics.jsonl`` or ``checkpoints/``)."""
    return os.path.isdir(path) and (os.path.isfile(os.path.join(path, "metrics.jsonl"))
                                    or os.path.isdir(os.path.join(path, "checkpoints")))


def read_metrics(run: str) -> list[dict]:
    """The records of ``RUN/metrics.jsonl``, in order.

    Raises:
        FileNotFoundError: no ``metrics.jsonl`` in ``run``.
    """
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no metrics (not a run folder, or no step logged)")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def latest_sample(run: str) -> tuple[int, str] | None:
    """``(step, path)`` of the newest ``samples/step_N.png``, or None."""
    samples = os.path.join(run, "samples")
    grids = sorted((int(m.group(1)), os.path.join(samples, f))
                   for f in (os.listdir(samples) if os.path.isdir(samples) else [])
                   if (m := re.fullmatch(r"step_(\d+)\.png", f)))
    return grids[-1] if grids else None


def last_evaluation(records: list[dict]) -> dict | None:
    """The newest record with ``eval_*`` metrics, or None."""
    return next((r for r in reversed(records) if "eval_iou" in r), None)


def format_evaluation(record: dict) -> str:
    """One line per split: IoU and PSNR of the generated views beside their baselines."""
    lines = []
    for suffix, name in (("", "training objects"), ("_heldout", "held-out objects")):
        if f"eval_iou{suffix}" in record:
            lines.append(f"eval at step {record['step']}, {name}: silhouette IoU "
                         f"{record[f'eval_iou{suffix}']:.3f} (baseline "
                         f"{record[f'eval_iou_baseline{suffix}']:.3f}), PSNR "
                         f"{record[f'eval_psnr{suffix}']:.2f} dB (baseline "
                         f"{record[f'eval_psnr_baseline{suffix}']:.2f} dB)")
    return "\n".join(lines)


def _plot_evaluation(axes, records: list[dict]) -> None:
    """IoU and PSNR curves (training solid, held out dashed) and their baselines (grey)."""
    evals = [r for r in records if "eval_iou" in r]
    steps = [r["step"] for r in evals]
    for ax, metric, title in ((axes[0], "iou", "silhouette IoU"), (axes[1], "psnr", "PSNR (dB)")):
        for suffix, style in (("", "-o"), ("_heldout", "--s")):
            if f"eval_{metric}{suffix}" in evals[-1]:
                name = "held out" if suffix else "training"
                ax.plot(steps, [r[f"eval_{metric}{suffix}"] for r in evals], style, label=name)
                ax.plot(steps, [r[f"eval_{metric}_baseline{suffix}"] for r in evals], style,
                        color="gray", alpha=0.6, label=f"baseline ({name})")
        ax.set_xlabel("step"), ax.set_title(title), ax.legend(fontsize=7)


def run_sheet(run: str, output: str, dpi: int = 80) -> dict:
    """Write a PNG of a run's loss curves, its evaluation curves (when it has some) and its
    latest generated-versus-target grid.

    Returns:
        ``{"path", "steps", "last": last metrics record, "eval": last record with ``eval_*``
        metrics or None, "sample": grid file or None}``.

    Raises:
        FileNotFoundError: no ``metrics.jsonl`` in ``run``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    records = read_metrics(run)
    latest = latest_sample(run)
    evaluation = last_evaluation(records)
    ratios = [1, 1] + [1, 1] * bool(evaluation) + [2] * bool(latest)
    fig, axes = plt.subplots(1, len(ratios), figsize=(3.75 * sum(ratios), 4), dpi=dpi,
                             gridspec_kw={"width_ratios": ratios})
    train = [r for r in records if "loss" in r]
    steps = [r["step"] for r in train]
    for key, style in (("loss", "-"), ("loss_fg", "--"), ("loss_bg", ":")):
        if all(key in r for r in train):  # fine-tuning runs log the loss alone
            axes[0].plot(steps, [r[key] for r in train], style, label=key)
    axes[0].set_yscale("log"), axes[0].set_xlabel("step"), axes[0].legend()
    axes[0].set_title("TAP loss (w_fg MSE fg + w_bg MSE bg)")
    axes[1].plot(steps, [r["lr"] for r in train], label="lr")
    axes[1].set_xlabel("step"), axes[1].set_title("learning rate / samples per s")
    twin = axes[1].twinx()
    twin.plot(steps, [r["samples_per_s"] for r in train], color="gray", alpha=0.6)
    if evaluation:
        _plot_evaluation(axes[2:4], records)
    sample = None
    if latest:
        step, sample = latest
        axes[-1].imshow(np.asarray(Image.open(sample)))
        axes[-1].set_title(f"step {step}: generated (top) / target (bottom)")
        axes[-1].axis("off")
    fig.tight_layout()
    fig.savefig(output, dpi=dpi)
    plt.close(fig)
    return {"path": output, "steps": len(records), "last": train[-1] if train else None,
            "eval": evaluation, "sample": sample}
