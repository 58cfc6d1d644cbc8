"""Backbone inputs for the point-cloud tasks, as TAP's fine-tuning recipes make them: classification
(docs/evaluation.md) and part segmentation (docs/partseg.md); the probe uses the test-time inputs.

Training (``cfgs/scanobjectnn/default.yaml`` and ``examples/classification/train.py`` of the
authors' code): per sample, the stored cloud in random order, anisotropic scaling U[0.9, 1.1]
per axis, centred on the centroid and scaled to unit radius, rotated about the up axis by
U[-pi, pi); per batch, on the device, farthest-point sampling to 1200 points then 1024 of those
at random (one draw for the batch). Test: farthest-point sampling to 1024 once, centred and
scaled. The features are ``(B, N, 4)``: xyz and the height above the cloud's lowest point along
the up axis; backbones take the channels they need. Centring, scaling and the height feature
are :mod:`tap3d.geometry.features`, the recipe the pre-training stream uses too.

``sampling: random`` (an option, not the authors'): training takes the first ``count`` points
of each sample's shuffled cloud and test a seeded random subset of each cloud, instead of
farthest-point sampling. Farthest points over-sample sparse regions: on PB_T50_RS-like scans,
where 15% of the points are floor, 38% of FPS-192 points are (docs/transfer.md).

Part segmentation (``cfgs/shapenetpart/`` of the authors' code; :class:`PartClouds`,
:func:`part_eval_inputs`): training shapes are 2048 points drawn with replacement, anisotropic
scaling U[0.8, 1.2], centred, unit sphere, Gaussian jitter (sigma 0.001, clip 0.005), all
normals 0 with probability 0.2; test shapes are 2048 farthest-point samples, centred, unit
sphere; the features are xyz and (optionally) normals.

Randomness is seeded by ``(seed, epoch, sample index)`` per sample and ``(seed, epoch, batch,
rank)`` per batch, so it does not depend on DataLoader workers and a resumed run replays it.
"""

from __future__ import annotations

import numpy as np
import torch

from tap3d.geometry.features import backbone_input, to_unit_sphere, with_height
from tap3d.geometry.pointops import farthest_point_sample, gather

__all__ = ["CLOUD_SAMPLINGS", "ROTATIONS", "fps_points", "up_rotation", "random_rotation",
           "AugmentedClouds", "training_features", "mix_points", "eval_features", "voting_features",
           "PartClouds", "part_eval_inputs"]

#: How a cloud is subsampled to a backbone's points: ``fps`` (the authors') or ``random``.
CLOUD_SAMPLINGS = ("fps", "random")

#: Training rotations: ``up`` (about the up axis, the authors') or ``so3`` (any rotation).
ROTATIONS = ("up", "so3")


def _check_sampling(sampling: str) -> None:
    if sampling not in CLOUD_SAMPLINGS:
        raise ValueError(f"sampling must be one of {CLOUD_SAMPLINGS}, got {sampling!r}")


def fps_points(points: int) -> int:
    """Points kept by farthest-point sampling before the random subset: 1200 for 1024, 4800
    for 4096 (the authors' ``train.py``), i.e. ``points * 75 / 64``."""
    return int(round(points * 75 / 64))


def up_rotation(angle: float, up_axis: int = 1) -> np.ndarray:
    """``(3, 3)`` float64 rotation by ``angle`` radians about the axis ``up_axis``."""
    c, s = np.cos(angle), np.sin(angle)
    a, b = [axis for axis in range(3) if axis != up_axis]
    rotation = np.eye(3)
    rotation[a, a], rotation[a, b], rotation[b, a], rotation[b, b] = c, -s, s, c
    return rotation


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """``(3, 3)`` float64 rotation drawn uniformly from SO(3) (scipy's ``Rotation.random``)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=rng).as_matrix()


def _check_rotation(rotation: str) -> None:
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")


def voting_features(points: np.ndarray, count: int, up_axis: int, device, votes: int,
                    batch_size: int = 64, sampling: str = "fps",
                    rotation: str = "up") -> torch.Tensor:
    """Test-time inputs of ``votes`` rotated copies of every cloud (copy 0 unrotated, so it is
    :func:`eval_features`' input): ``(votes, N, count, 4)`` float32 on ``device``.

    With ``rotation="up"`` copy ``v`` is turned about the up axis by ``2 pi v / votes``, for
    scans that come in any rotation about it; with ``"so3"`` copies 1.. are rotations drawn
    uniformly from SO(3), seeded (the same every call), for models trained with any rotation.
    Neither is the authors' ModelNet40 voting (10 scaled copies).

    Raises:
        ValueError: an unknown ``sampling`` or ``rotation``.
    """
    _check_rotation(rotation)
    rng = np.random.default_rng(0)
    rotations = [np.eye(3)] + [up_rotation(2 * np.pi * v / votes, up_axis) if rotation == "up"
                               else random_rotation(rng) for v in range(1, votes)]
    return torch.stack([eval_features((points @ r.T).astype(np.float32), count, up_axis,
                                      device, batch_size, sampling) for r in rotations])


class AugmentedClouds(torch.utils.data.Dataset):
    """Training clouds with per-sample augmentation; item ``i`` is ``(points (P, 3) float32,
    label int64)``.

    Args:
        points: ``(N, P, 3)`` float32 clouds.
        labels: ``(N,)`` int64.
        scale: anisotropic scaling range per axis (TAP: 0.9, 1.1).
        rotate: rotate each sample (``rotation``).
        up_axis: index of the up axis.
        seed: base seed; call :meth:`set_epoch` before each epoch.
        rotation: ``up``: about ``up_axis`` by U[-pi, pi) (the authors'); ``so3``: a rotation
            drawn uniformly from SO(3), for data whose objects come in any orientation.

    Raises:
        ValueError: an unknown ``rotation``.
    """

    def __init__(self, points: np.ndarray, labels: np.ndarray, scale=(0.9, 1.1),
                 rotate: bool = True, up_axis: int = 1, seed: int = 0, rotation: str = "up"):
        _check_rotation(rotation)
        self.points, self.labels = points, labels
        self.scale, self.rotate, self.up_axis, self.seed = scale, rotate, up_axis, seed
        self.rotation = rotation
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        cloud = self.points[index][rng.permutation(self.points.shape[1])].astype(np.float64)
        cloud = cloud * rng.uniform(*self.scale, size=3)
        cloud, _, _ = to_unit_sphere(cloud)
        if self.rotate and self.rotation == "so3":
            cloud = cloud @ random_rotation(rng).T
        elif self.rotate:
            cloud = cloud @ up_rotation(rng.uniform(-np.pi, np.pi), self.up_axis).T
        return torch.from_numpy(cloud.astype(np.float32)), torch.tensor(self.labels[index])


def training_features(points: torch.Tensor, count: int, presample: int, up_axis: int,
                      rng: np.random.Generator, sampling: str = "fps") -> torch.Tensor:
    """A training batch's backbone input.

    Args:
        points: ``(B, P, 3)`` augmented clouds on the device, each in random order
            (:class:`AugmentedClouds`).
        count: points per sample (1024).
        presample: farthest-point samples before the random subset (1200), capped at ``P``.
        up_axis: index of the up axis.
        rng: draws the subset (one for the whole batch, as the authors do).
        sampling: ``fps`` (the authors') or ``random``: the first ``count`` points of each
            (shuffled) cloud; ``presample`` and ``rng`` are then unused.

    Returns:
        ``(B, count, 4)`` float32 features (``count`` capped at ``P``).

    Raises:
        ValueError: an unknown ``sampling``.
    """
    _check_sampling(sampling)
    P = points.shape[1]
    if P > count and sampling == "random":
        points = points[:, :count]
    elif P > count:
        presample = min(presample, P)
        index = farthest_point_sample(points, presample)
        pick = torch.from_numpy(rng.choice(presample, count, replace=False)).to(points.device)
        points = gather(points, index[:, pick])
    return with_height(points, up_axis)


def mix_points(points: torch.Tensor, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PointCutMix-R (Zhang et al., "PointCutMix", Neurocomputing 2022): each sample's points
    are partly replaced by points of another sample of the batch.

    Per batch a permutation pairs sample ``i`` with ``partner[i]``; per sample a share ``lam``
    ~ U[0, 1] (their Beta(1, 1)) of its points, at random positions, is replaced by the
    partner's points at random positions. The label is then ``1 - lam`` of the sample's and
    ``lam`` of the partner's (``lam`` the exact share replaced). Both clouds must already be in
    one frame (centred, unit radius).

    Args:
        points: ``(B, N, C)`` batch (xyz first).
        rng: all the randomness (seeded per batch by the caller).

    Returns:
        ``(mixed (B, N, C), partner (B,) int64, lam (B,) float32)``, on ``points``' device.
    """
    B, N = points.shape[:2]
    device = points.device
    partner = torch.from_numpy(rng.permutation(B)).to(device)
    counts = np.floor(rng.uniform(0, 1, B) * (N + 1)).clip(0, N).astype(np.int64)
    keep = np.argsort(rng.random((B, N)), axis=1)  # positions in random order
    take = np.argsort(rng.random((B, N)), axis=1)  # the partner's points to take
    replaced = np.arange(N)[None, :] < counts[:, None]  # the first counts[i] positions
    replaced_at = np.zeros((B, N), dtype=bool)
    np.put_along_axis(replaced_at, keep, replaced, axis=1)
    source = np.zeros((B, N), dtype=np.int64)
    np.put_along_axis(source, keep, take, axis=1)
    donor = gather(points[partner], torch.from_numpy(source).to(device))
    mixed = torch.where(torch.from_numpy(replaced_at).to(device)[..., None], donor, points)
    return mixed, partner, torch.from_numpy(counts / N).float().to(device)


@torch.no_grad()
def eval_features(points: np.ndarray, count: int, up_axis: int, device,
                  batch_size: int = 64, sampling: str = "fps") -> torch.Tensor:
    """Test-time backbone inputs, computed once: farthest-point sampling to ``count`` points
    (from the first point, deterministic), centred, unit radius, with height.

    Args:
        points: ``(N, P, 3)`` float32 clouds.
        count: points per sample (capped at ``P``).
        up_axis: index of the up axis.
        device: where the sampling runs; the result stays there.
        batch_size: clouds per farthest-point-sampling call.
        sampling: ``fps`` or ``random``: per cloud ``count`` points drawn without replacement,
            seeded by the cloud's index (the same subset every call).

    Returns:
        ``(N, count, 4)`` float32 on ``device``.

    Raises:
        ValueError: an unknown ``sampling``.
    """
    _check_sampling(sampling)
    if sampling == "random" and points.shape[1] > count:
        points = np.stack([cloud[np.random.default_rng([0, i]).choice(len(cloud), count,
                                                                       replace=False)]
                           for i, cloud in enumerate(points)])
    out = []
    for start in range(0, len(points), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(points[start:start + batch_size])).to(device)
        if batch.shape[1] > count:
            batch = gather(batch, farthest_point_sample(batch, count))
        out.append(backbone_input(batch, up_axis))
    if not out:
        return torch.zeros(0, count, 4, device=device)
    return torch.cat(out)


class PartClouds(torch.utils.data.Dataset):
    """Part-segmentation training shapes with the recipe's augmentation (module docstring);
    item ``i`` is ``(features (points, 6 or 3) float32, part (points,) int64, category
    int64)``, seeded by ``(seed, epoch, i)``; call :meth:`set_epoch` before each epoch.

    Args:
        shapes: :class:`~tap3d.clouds.shapenetpart.PartCloud` list (``points``, ``normals``, ``part``,
            ``category``).
        points: points per shape, drawn with replacement (2048).
        scale: anisotropic scaling range per axis (0.8, 1.2).
        jitter: ``(sigma, clip)`` of the Gaussian jitter of xyz after the unit sphere, in
            unit-sphere units (0.001, 0.005).
        normals: append the normals to xyz.
        normal_drop: probability that all normals of a shape are set to 0 (0.2).
        seed: base seed.
    """

    def __init__(self, shapes, points: int = 2048, scale=(0.8, 1.2), jitter=(0.001, 0.005),
                 normals: bool = True, normal_drop: float = 0.2, seed: int = 0):
        self.shapes, self.points, self.scale, self.jitter = shapes, points, scale, jitter
        self.normals, self.normal_drop, self.seed, self.epoch = normals, normal_drop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int):
        shape = self.shapes[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        pick = rng.choice(len(shape.points), self.points, replace=True)
        xyz = shape.points[pick].astype(np.float64) * rng.uniform(*self.scale, 3)
        xyz = to_unit_sphere(xyz)[0]
        sigma, clip = self.jitter
        xyz = xyz + np.clip(rng.normal(0, sigma, xyz.shape), -clip, clip)
        channels = [xyz]
        if self.normals:
            channels.append(shape.normals[pick] * (rng.random() >= self.normal_drop))
        features = np.concatenate(channels, 1).astype(np.float32)
        return (torch.from_numpy(features), torch.from_numpy(shape.part[pick]),
                torch.tensor(shape.category))


@torch.no_grad()
def part_eval_inputs(shapes, points: int, normals: bool, device, batch_size: int = 64):
    """Part segmentation's test-time inputs, computed once: ``points`` farthest-point samples
    of every shape (from its first point; shapes of a batch padded by repeating their first
    point, which FPS never prefers over an unseen point), centred, unit sphere.

    Args:
        shapes: :class:`~tap3d.clouds.shapenetpart.PartCloud` list.
        points: points per shape (repeated cyclically when a shape has fewer).
        normals: append the normals to xyz.
        device: where the sampling runs; the result stays there.
        batch_size: shapes per farthest-point-sampling call.

    Returns:
        ``(features (S, points, 6 or 3) float32, part (S, points) int64, category (S,) int64)``
        on ``device``.
    """
    features, parts = [], []
    for start in range(0, len(shapes), batch_size):
        batch = shapes[start:start + batch_size]
        size = max(len(s.points) for s in batch)
        rows = [np.column_stack([s.points, s.normals, s.part]) for s in batch]
        table = np.stack([np.concatenate([r, np.repeat(r[:1], size - len(r), 0)]) for r in rows])
        table = torch.from_numpy(table).to(device)
        index = farthest_point_sample(table[..., :3].float().contiguous(), min(points, size))
        if size < points:  # fewer points than asked: repeat (as drawing with replacement)
            index = index[:, torch.arange(points, device=device) % size]
        table = gather(table, index)
        xyz = to_unit_sphere(table[..., :3])[0].float()
        features.append(torch.cat([xyz, table[..., 3:6].float()], -1) if normals else xyz)
        parts.append(table[..., 6].long())
    categories = torch.tensor([s.category for s in shapes], dtype=torch.long, device=device)
    return torch.cat(features), torch.cat(parts), categories
