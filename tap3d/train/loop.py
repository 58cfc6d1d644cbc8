"""TAP pre-training: one loop, one config dataclass, one checkpoint dict (after nanoGPT's train.py).

``train(dataset, out, config)`` is what ``tap-cli train`` calls. Run folder:

    RUN_DIR/config.yaml          the resolved configuration
    RUN_DIR/metrics.jsonl        one JSON object per logged step: step, epoch, loss, loss_fg,
                                 loss_bg (means over the steps since the previous record), lr,
                                 samples_per_s
    RUN_DIR/samples/step_N.png   generated views (top) above their targets (bottom)
    RUN_DIR/checkpoints/step_N.pt, last.pt (always the newest)
    RUN_DIR/tensorboard/         TensorBoard scalars and image grids (when tensorboard is installed)

A checkpoint is one dict: model, optimizer, scheduler, step, epoch, batch_in_epoch, RNG states and
config; ``resume=True`` reads ``last.pt`` back and replays the epoch up to where it stopped, so the
parameters at step 2k equal an unbroken run's. Multi-process training runs under ``torchrun``
(DistributedDataParallel; gloo on CPU, nccl on CUDA); each rank streams different shards.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tap3d.train.backbones import make_backbone
from tap3d.train.generator import Generator, tap_loss
from tap3d.train.photograph import PhotographModule

__all__ = ["TrainConfig", "TAPModel", "train", "load_config", "export_backbone", "load_model",
           "evaluate", "psnr", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Training settings. Defaults follow TAP's public config (DESIGN.md).

    Attributes:
        epochs, max_steps: stop after ``epochs`` epochs or ``max_steps`` optimizer steps
            (whichever comes first; ``max_steps`` 0 means no step limit).
        batch_size: samples per step per process (TAP: 32).
        lr, min_lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay to
            ``min_lr`` (TAP: 2e-3 -> 1e-5, weight decay 0.05).
        grad_clip: gradient-norm clip (TAP: 10).
        num_points, views_per_sample, sampling, scale_low, scale_high: the stream's samples
            (TAP: 1024 points, 6 of 12 views, scaling U[0.9, 1.1)). ``views_per_sample`` 0 means
            half the stored views.
        backbone, embed_dim: backbone name and its embedding width (PointMLP: 64).
        photograph_dim, photograph_depth, photograph_heads, query: Photograph module
            (TAP supplement Table 1a: 128 channels, 2 layers).
        w_fg, w_bg: loss weights (TAP supplement Table 1b: 20 : 1).
        seed, device, num_workers, log_every, checkpoint_every, sample_every.
        log_objects: append each step's object indices to ``RUN_DIR/objects/rank_R.jsonl``
            (which objects each rank trained on, for debugging data order).
    """

    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 32
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 0
    grad_clip: float = 10.0
    num_points: int = 1024
    views_per_sample: int = 0
    sampling: str = "random"
    scale_low: float = 0.9
    scale_high: float = 1.1
    backbone: str = "pointmlp"
    embed_dim: int = 64
    photograph_dim: int = 128
    photograph_depth: int = 2
    photograph_heads: int = 4
    query: str = "ray"
    w_fg: float = 20.0
    w_bg: float = 1.0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    sample_every: int = 500
    log_objects: bool = False


def load_config(path: str | None = None, **overrides) -> TrainConfig:
    """A config from defaults, then a YAML file, then ``overrides`` (None values ignored).

    Raises:
        ValueError: unknown keys in the file or the overrides.
    """
    import yaml

    values: dict = {}
    if path:
        with open(path) as f:
            values.update(yaml.safe_load(f) or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    return TrainConfig(**values)


class TAPModel(nn.Module):
    """Backbone -> Photograph module -> generator.

    ``forward(features (B, N, 4), K (B, V, 3, 3), world_to_camera (B, V, 4, 4))`` returns the
    generated views ``(B, V, 3, S, S)`` in [0, 1].
    """

    def __init__(self, config: TrainConfig, image_size: int):
        super().__init__()
        self.backbone = make_backbone(config.backbone, embed_dim=config.embed_dim)
        self.photograph = PhotographModule(
            self.backbone.out_channels, dim=config.photograph_dim, depth=config.photograph_depth,
            heads=config.photograph_heads, image_size=image_size, query=config.query)
        self.generator = Generator(config.photograph_dim)

    def forward(self, features, K, world_to_camera):
        B, V = K.shape[:2]
        point_features, xyz = self.backbone(features)
        grid = self.photograph(point_features, xyz, K, world_to_camera)
        images = self.generator(grid)
        return images.reshape(B, V, *images.shape[1:])


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group under torchrun."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _grid_png(path: str, generated: torch.Tensor, target: torch.Tensor, count: int = 6) -> np.ndarray:
    """Save ``count`` generated views (top row) above their targets (bottom row)."""
    from PIL import Image

    def row(images):
        return np.concatenate([(im.permute(1, 2, 0).float().clamp(0, 1).cpu().numpy() * 255)
                               .astype(np.uint8) for im in images[:count]], 1)

    grid = np.concatenate([row(generated), row(target)], 0)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(grid).save(path)
    return grid


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
        ``{"step", "epoch", "loss", "loss_fg", "loss_bg"}`` of the last step.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
    """
    import yaml
    from tqdm.auto import tqdm

    from tap3d.datasets.stream import ViewStream

    rank, world, local_rank = _distributed()
    device = config.device
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)

    stream = ViewStream(dataset, num_points=config.num_points,
                        views_per_sample=config.views_per_sample or None,
                        sampling=config.sampling, scale_range=(config.scale_low, config.scale_high),
                        seed=config.seed, rank=rank, world_size=world)
    image_size = int(stream.image_size)
    model = TAPModel(config, image_size).to(device)
    ddp_model = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = []
    for e in range(config.epochs):
        stream.set_epoch(e)
        steps_per_epoch.append(stream.batches_per_epoch(config.batch_size, config.num_workers))
        if steps_per_epoch[-1] == 0:
            raise ValueError(f"{dataset}: a rank gets no full batch of {config.batch_size} in "
                             f"epoch {e} ({len(stream)} objects, {world} ranks); lower "
                             "--batch-size")
        if config.max_steps and sum(steps_per_epoch) >= config.max_steps:
            break
    total = sum(steps_per_epoch)
    if config.max_steps:
        total = min(total, config.max_steps)

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        floor = config.min_lr / config.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    checkpoints = os.path.join(out, "checkpoints")
    step, epoch, skip = 0, 0, 0
    if resume:
        state = torch.load(os.path.join(checkpoints, "last.pt"), map_location=device,
                           weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, skip = state["step"], state["epoch"], state["batch_in_epoch"]
        _set_rng_state(state["rng"][rank] if isinstance(state["rng"], list) else state["rng"])
    writer = None
    if rank == 0:
        os.makedirs(checkpoints, exist_ok=True)
        with open(os.path.join(out, "config.yaml"), "w") as f:
            yaml.safe_dump({**dataclasses.asdict(config), "dataset": str(dataset)}, f)
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(os.path.join(out, "tensorboard"))
        except ImportError:
            writer = None

    def save(batch_in_epoch: int) -> None:
        if rank != 0:
            return
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "epoch": epoch,
                 "batch_in_epoch": batch_in_epoch, "rng": _rng_state(),
                 "config": dataclasses.asdict(config), "image_size": image_size}
        path = os.path.join(checkpoints, f"step_{step}.pt")
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)
        # last.pt is the same file: serialize once, then a hard link (a copy where the file
        # system has none), swapped in atomically.
        last = os.path.join(checkpoints, "last.pt")
        if os.path.exists(last + ".tmp"):
            os.remove(last + ".tmp")
        try:
            os.link(path, last + ".tmp")
        except OSError:
            shutil.copyfile(path, last + ".tmp")
        os.replace(last + ".tmp", last)

    bar = tqdm(total=total, initial=step, unit="step", disable=not progress or rank != 0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)
    last: dict = {}
    window_began, window_samples = time.perf_counter(), 0
    window_losses: dict[str, float] = {}  # summed since the last log: records hold window means
    window_steps = 0
    metrics_path = os.path.join(out, "metrics.jsonl")
    objects_log = None
    if config.log_objects:
        os.makedirs(os.path.join(out, "objects"), exist_ok=True)
        objects_log = open(os.path.join(out, "objects", f"rank_{rank}.jsonl"), "a")
    while step < total and step != stop_at:
        stream.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(stream, batch_size=config.batch_size,
                                             num_workers=config.num_workers, drop_last=True)
        batch_in_epoch = 0
        for batch in loader:
            if batch_in_epoch == steps_per_epoch[epoch]:  # the common count of all ranks
                break
            if batch_in_epoch < skip:  # replaying a resumed epoch
                batch_in_epoch += 1
                continue
            if objects_log:
                objects_log.write(json.dumps({"step": step + 1, "epoch": epoch,
                                              "index": batch["index"].tolist()}) + "\n")
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            batch["images"] = batch["images"].float() / 255.0
            model.train()
            with autocast:
                generated = ddp_model(batch["features"], batch["K"], batch["world_to_camera"])
            B, V = generated.shape[:2]
            losses = tap_loss(generated.reshape(B * V, *generated.shape[2:]),
                              batch["images"].reshape(B * V, *batch["images"].shape[2:]),
                              batch["masks"].reshape(B * V, *batch["masks"].shape[2:]),
                              config.w_fg, config.w_bg)
            if not torch.isfinite(losses["loss"]):
                bar.close()
                raise NonFiniteLossError(
                    f"loss is {losses['loss'].item()} at step {step + 1}; the last good "
                    f"checkpoint is {os.path.join(checkpoints, 'last.pt')}")
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            batch_in_epoch += 1
            window_samples += B * world
            bar.update(1)
            last = {"step": step, "epoch": epoch,
                    **{k: float(v.detach()) for k, v in losses.items()}}
            for key in ("loss", "loss_fg", "loss_bg"):
                window_losses[key] = window_losses.get(key, 0.0) + last[key]
            window_steps += 1
            if rank == 0 and (step % config.log_every == 0 or step == total):
                elapsed = time.perf_counter() - window_began
                record = {**last, **{k: v / window_steps for k, v in window_losses.items()},
                          "lr": scheduler.get_last_lr()[0],
                          "samples_per_s": window_samples / max(elapsed, 1e-9)}
                window_began, window_samples = time.perf_counter(), 0
                window_losses, window_steps = {}, 0
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                if writer:
                    for key in ("loss", "loss_fg", "loss_bg", "lr", "samples_per_s"):
                        writer.add_scalar(f"train/{key}", record[key], step)
            if rank == 0 and (step % config.sample_every == 0 or step == total):
                grid = _grid_png(os.path.join(out, "samples", f"step_{step}.png"),
                                 generated[0].detach(), batch["images"][0])
                if writer:
                    writer.add_image("samples/generated_over_target", grid, step,
                                     dataformats="HWC")
            if step % config.checkpoint_every == 0 or step in (total, stop_at):
                save(batch_in_epoch)
            if step >= total or step == stop_at:
                break
        if step >= total or step == stop_at:
            break
        epoch += 1
        skip = 0
    bar.close()
    if objects_log:
        objects_log.close()
    if writer:
        writer.close()
    if world > 1:
        torch.distributed.barrier()
    return last


def _checkpoint_path(run_or_checkpoint: str) -> str:
    path = run_or_checkpoint
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoints", "last.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no checkpoint")
    return path


def load_model(run_or_checkpoint: str, device: str = "cpu") -> tuple[TAPModel, TrainConfig]:
    """The TAP model of a checkpoint, in eval mode, and its config.

    Args:
        run_or_checkpoint: a run folder (its ``checkpoints/last.pt``) or a checkpoint file.
        device: where to load it.

    Raises:
        FileNotFoundError: no checkpoint there.
    """
    state = torch.load(_checkpoint_path(run_or_checkpoint), map_location=device,
                       weights_only=False)
    config = TrainConfig(**state["config"])
    model = TAPModel(config, state["image_size"]).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), config


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1], one value per image.

    Args:
        prediction, target: ``(B, 3, S, S)`` float.

    Returns:
        ``(B,)`` float32, ``-10 log10(MSE)`` (MSE clamped at 1e-10).
    """
    mse = ((prediction.float() - target.float()) ** 2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def evaluate(model: TAPModel, dataset: str, config: TrainConfig, device: str = "cpu",
             batch_size: int = 8) -> dict:
    """Generated views of every done object against their targets, and a baseline.

    Every stored view of every done object is generated from ``config.num_points`` points
    (the stream's sampling, seed ``config.seed``, no scaling). The baseline is the dataset's mean
    image (the per-pixel mean of all those targets), the best constant prediction in MSE.

    Returns:
        ``{"psnr", "psnr_mean_image", "loss_fg", "loss_bg", "objects", "views"}``: mean PSNR
        (dB) over views of the generated and of the mean image, and TAP's foreground/background
        MSEs of the generated views.
    """
    import zarr

    from tap3d.datasets.stream import ViewStream

    views = zarr.open_group(dataset, mode="r")["rgb"].shape[1]
    stream = ViewStream(dataset, num_points=config.num_points, views_per_sample=views,
                        sampling=config.sampling, shuffle=False, scale_range=None,
                        seed=config.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=batch_size)
    generated, targets, masks = [], [], []
    model.eval()
    for batch in loader:
        images = model(batch["features"].to(device), batch["K"].to(device),
                       batch["world_to_camera"].to(device)).float().cpu()
        generated.append(images.flatten(0, 1))
        targets.append(batch["images"].flatten(0, 1).float() / 255.0)
        masks.append(batch["masks"].flatten(0, 1))
    generated, targets, masks = torch.cat(generated), torch.cat(targets), torch.cat(masks)
    mean_image = targets.mean(0, keepdim=True).expand_as(targets)
    losses = tap_loss(generated, targets, masks)
    return {"psnr": float(psnr(generated, targets).mean()),
            "psnr_mean_image": float(psnr(mean_image, targets).mean()),
            "loss_fg": float(losses["loss_fg"]), "loss_bg": float(losses["loss_bg"]),
            "objects": len(stream), "views": len(targets)}


def export_backbone(run_or_checkpoint: str, output: str) -> dict:
    """Save the backbone alone (for fine-tuning): ``{"backbone", "state_dict", "config"}``.

    Args:
        run_or_checkpoint: a run folder (its ``checkpoints/last.pt``) or a checkpoint file.
        output: ``.pt`` file to write.

    Raises:
        FileNotFoundError: no checkpoint there.
    """
    state = torch.load(_checkpoint_path(run_or_checkpoint), map_location="cpu", weights_only=False)
    backbone = {k[len("backbone."):]: v for k, v in state["model"].items()
                if k.startswith("backbone.")}
    exported = {"backbone": state["config"]["backbone"], "state_dict": backbone,
                "config": state["config"], "step": state["step"]}
    torch.save(exported, output)
    return exported
