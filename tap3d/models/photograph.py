"""The Photograph module of TAP: cross-attention from camera queries to point features.

Take-A-Photo (Wang et al., ICCV 2023), section 3, and the authors' ``ViewTransformer``
(``openpoints/models/generation/view_transformer.py`` in wangzy22/TAP): a memory MLP maps the
backbone's features and coordinates to ``dim`` channels; one query token per cell of the
``(S / factor)^2`` feature grid is built from the instructed camera; blocks of pre-LayerNorm
self-attention over the queries, cross-attention to the memory and a GEGLU feed-forward
(Shazeer, "GLU Variants Improve Transformer", 2020), each residual, turn the queries into the
image feature map. Attention has its own head count and head width (the authors: 32 heads of 32
channels at any width, so the attention's inner width, 1024, exceeds the 256-channel model),
optional q/k/v biases (the authors: none) and dropout after the attention output and inside the
feed-forward (the authors: 0.1). tap3d adds, by default, a LayerNorm on the memory in each
cross-attention (``memory_norm``) and one after the last block (``output_norm``); the authors'
memory and output are not normalized, and with both off the module has exactly their structure
(:mod:`tap3d.models.openpoints` maps its entries onto their ``ViewTransformer``'s, all but
their unused ``pad_memory``).

Queries:

- ``ray`` (the default): each query encodes the stored camera's ray through its cell centre as
  Plücker coordinates ``(d, o x d)`` (world frame, unit ``d``) plus the cell's 2D position in
  [-1, 1]; it matches the rendered geometry exactly (perspective: rays from the camera centre;
  orthographic datasets: parallel rays along the view direction through the cell). The
  8 numbers are expanded by :func:`frequency_encoding` (NeRF's positional encoding, Mildenhall
  et al., ECCV 2020, section 5.1: ``sin``/``cos`` of ``2^k pi x``, ``k < L``; ``ray_frequencies``
  L, default 4) before the query MLP: a smooth MLP of raw ray coordinates cannot tell
  neighbouring cells apart early in training, and the generated views came out the same from
  every side (on 64 px MVCNN renders of 5 demo meshes, 150 steps: silhouette IoU 0.63 without,
  0.75 with L = 4; L = 6 and 8 were worse than 4).
- ``tap``: the authors' construction (:func:`tap_queries`): a parallel projection fitted to the
  input cloud in each view, giving per cell a 3D point on the view plane through the origin
  (the "point grid"), the world up axis seen from the view (their ``view[:, :, 2]`` column) and
  the cell's position in [0, 1]; embedded by an MLP of hidden width 8 (their ``query_mlp``).
  On orthographic datasets (``projection="orthographic"``, e.g. ``--preset tap`` or
  ``tap-cli import-tap``) the fit is the stored one (``K``), so the point grid lies on the rays
  of the cells it stands for; on perspective datasets it is fitted to the input cloud as the
  authors do, which matches renders cropped to fit the object (MVCNN's), not perspective views.
- ``rotation``: not TAP's construction: the flattened OpenCV world-to-camera rotation embedded
  linearly plus a learned embedding per cell (a lookup table of cells, no geometry of the cloud
  or of the rays); the simplest camera-conditioned baseline.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tap3d.models.generator import FACTORS
from tap3d.views.projection import PROJECTIONS, TAP_FIT, fit_parallel

__all__ = ["PhotographModule", "camera_rays", "frequency_encoding", "tap_view_rotation",
           "tap_queries", "QUERIES", "TAP_OBJECT_SIZE"]

#: Query constructions (see the module docstring).
QUERIES = ("ray", "tap", "rotation")
#: The authors' fitted parallel projection puts the cloud in ``obj_size`` 200 of ``img_size``
#: 224 pixels (``cfgs/shapenet/pointmlp_pretrain.yaml``); other sizes keep the ratio.
TAP_OBJECT_SIZE = TAP_FIT


def _cell_pixels(grid: int, image_size: int, like: torch.Tensor) -> torch.Tensor:
    """``(grid * grid, 3)`` homogeneous OpenCV pixels ``(u, v, 1)`` of the cell centres
    (top-left pixel centre at (0, 0)), row-major."""
    cell = image_size / grid
    centres = (torch.arange(grid, device=like.device, dtype=like.dtype) + 0.5) * cell - 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], -1)


def camera_rays(K: torch.Tensor, world_to_camera: torch.Tensor, grid: int,
                image_size: int, projection: str = "perspective") -> torch.Tensor:
    """Plücker rays through the centres of a ``grid x grid`` partition of the image.

    Args:
        K: ``(..., 3, 3)`` stored intrinsics (pixels, top-left pixel centre at (0, 0); see
            :mod:`tap3d.views.projection` for what they mean per projection).
        world_to_camera: ``(..., 4, 4)`` OpenCV extrinsics.
        grid: cells per side.
        image_size: image side in pixels.
        projection: ``perspective`` (rays from the camera centre) or ``orthographic``
            (parallel rays along the camera's +z through each cell's point of the plane z 0).

    Returns:
        ``(..., grid * grid, 8)`` float32: unit direction (3), moment ``o x d`` (3) and the cell
        centre in [-1, 1] (x right, y down), cells in row-major order.
    """
    pixels = _cell_pixels(grid, image_size, K)
    rays_cam = pixels @ torch.linalg.inv(K).transpose(-1, -2)  # (..., G, 3)
    rotation = world_to_camera[..., :3, :3]
    translation = world_to_camera[..., :3, 3]
    if projection == "orthographic":  # (x, y, 1) = K^-1 (u, v, 1): the cell on the plane z 0
        plane = torch.cat([rays_cam[..., :2], torch.zeros_like(rays_cam[..., 2:])], -1)
        origin = (plane - translation[..., None, :]) @ rotation  # R^T (p - t), row vectors
        direction = rotation[..., 2:3, :].expand_as(origin)  # camera +z in the world
    else:
        direction = torch.nn.functional.normalize(rays_cam @ rotation, dim=-1)  # R^T d
        origin = -(rotation.transpose(-1, -2) @ translation[..., None])[..., 0]  # the centre
        origin = origin[..., None, :].expand_as(direction)
    moment = torch.cross(origin, direction, dim=-1)
    position = (pixels[:, :2] + 0.5) / image_size * 2 - 1
    return torch.cat([direction, moment, position.expand(*direction.shape[:-1], 2)], -1)


def frequency_encoding(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """NeRF's positional encoding (Mildenhall et al., ECCV 2020, eq. 4), the input kept.

    Args:
        x: ``(..., C)`` float.
        frequencies: ``L``; 0 returns ``x``.

    Returns:
        ``(..., C (1 + 2 L))``: ``x``, then ``sin(2^k pi x)`` for ``k < L`` (channel-major: all
        ``k`` of channel 0 first), then the cosines likewise.
    """
    if frequencies == 0:
        return x
    scales = torch.pi * 2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype)
    angles = (x[..., None] * scales).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], -1)


def tap_view_rotation(world_to_camera: torch.Tensor) -> torch.Tensor:
    """The rotation of TAP's view frame, from OpenCV extrinsics.

    TAP's code maps the first axis of the rotated cloud to image rows and the second to columns
    (its query grid is ``(row, column)``); its images are parallel projections along the third.
    Row-wise: OpenCV y (down), OpenCV x (right), minus OpenCV z (towards the camera): a proper
    rotation.

    Args:
        world_to_camera: ``(..., 4, 4)`` OpenCV extrinsics (x right, y down, z forward).

    Returns:
        ``(..., 3, 3)``: ``view_point = rotation @ world_point``.
    """
    r = world_to_camera[..., :3, :3]
    return torch.stack([r[..., 1, :], r[..., 0, :], -r[..., 2, :]], -2)


def tap_queries(points: torch.Tensor, world_to_camera: torch.Tensor, grid: int, image_size: int,
                up_axis: int = 1, K: torch.Tensor | None = None) -> torch.Tensor:
    """TAP's query tokens (the authors' ``ViewTransformer.build_query``), 8 channels per cell.

    Per view, a parallel projection is fitted to the cloud (``cal_scale_bias``): the cloud's
    extent across the view, ``pixel = (view_xy - bias) / scale``, spans ``obj - 3`` pixels along
    its longer side (``obj`` = :data:`TAP_OBJECT_SIZE` x ``image_size``, 200 of 224) and its
    pixel bounding box is centred in the image, both after the authors' integer flooring. Each
    cell centre (pixel ``(i + 0.5) S / G``) is mapped back to the view plane through the origin
    and into the world: the point grid. Channels: point grid (3, world frame), the world up axis
    expressed in the view frame (3; the authors' third column of the view rotation: their clouds
    are z-up, axes reordered ``[2, 0, 1]`` from ShapeNet's y-up), the cell's ``(row, column)``
    on ``linspace(0, 1, G)`` (2).

    With ``K`` (the stored cameras of an orthographic dataset, see
    :mod:`tap3d.views.projection`), the fit is the stored one instead: each cell centre is
    mapped through ``K^-1`` to the camera plane through the world origin, so the point grid
    projects onto the cell centres through the stored cameras (the authors' construction when
    the stored fit is theirs, as ``tap-cli import-tap`` stores it).

    Args:
        points: ``(B, N, 3)`` the input cloud (world frame).
        world_to_camera: ``(B, V, 4, 4)`` OpenCV extrinsics; only the rotation is used unless
            ``K`` is given.
        grid: ``G`` cells per side.
        image_size: ``S`` in pixels.
        up_axis: index of the world up axis (1: y-up, as ShapeNetCore; 2 for the authors'
            z-up clouds).
        K: ``(B, V, 3, 3)`` stored orthographic intrinsics, or None (fit to ``points``).

    Returns:
        ``(B, V, G * G, 8)`` float32, cells in row-major order.
    """
    rotation = tap_view_rotation(world_to_camera).to(points.dtype)  # (B, V, 3, 3)
    pixels = _cell_pixels(grid, image_size, points)  # OpenCV (u, v, 1)
    if K is None:
        flat = torch.einsum("bnc,bvdc->bvnd", points, world_to_camera[..., :2, :3].to(points.dtype))
        focal, centre = fit_parallel(flat, image_size, TAP_OBJECT_SIZE)  # OpenCV x, y
        plane = (pixels[:, :2] - centre[..., None, :]) / focal[..., None, None]
    else:  # the stored fit; the plane through the world origin (camera z = t_z)
        cam = pixels @ torch.linalg.inv(K.to(points.dtype)).transpose(-1, -2)
        plane = cam[..., :2] - world_to_camera[..., None, :2, 3].to(points.dtype)
    # camera (x, y) on that plane back to the world: R^T (x, y, 0); rows of R: camera axes
    point_grid = plane @ world_to_camera[..., :2, :3].to(points.dtype)
    up = F.normalize(rotation[..., :, up_axis], dim=-1)[..., None, :].expand_as(point_grid)
    steps = torch.linspace(0, 1, grid, device=points.device, dtype=points.dtype)
    pos_rows, pos_cols = torch.meshgrid(steps, steps, indexing="ij")
    position = torch.stack([pos_rows.reshape(-1), pos_cols.reshape(-1)], -1)
    return torch.cat([point_grid, up, position.expand(*point_grid.shape[:-1], 2)], -1)


class _Attention(nn.Module):
    """Multi-head attention with its own head width (inner width = heads x head_dim)."""

    def __init__(self, dim: int, heads: int, head_dim: int, qkv_bias: bool, dropout: float):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_k = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_v = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x, context):
        def split(t):
            return t.reshape(t.shape[0], t.shape[1], self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(context)),
                                             split(self.to_v(context)))
        return self.to_out(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class _GEGLU(nn.Module):
    def __init__(self, dim: int, dropout: float, mult: int = 4):
        super().__init__()
        self.proj = nn.Linear(dim, dim * mult * 2)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim * mult, dim)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(self.drop(value * F.gelu(gate)))


class _Block(nn.Module):
    """Pre-norm self-attention, cross-attention to the memory (its own LayerNorm when
    ``memory_norm``) and GEGLU feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, head_dim: int, qkv_bias: bool, dropout: float,
                 memory_norm: bool = True):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attention = _Attention(dim, heads, head_dim, qkv_bias, dropout)
        self.norm_query = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim) if memory_norm else nn.Identity()
        self.cross_attention = _Attention(dim, heads, head_dim, qkv_bias, dropout)
        self.norm_ff = nn.LayerNorm(dim)
        self.feed_forward = _GEGLU(dim, dropout)

    def forward(self, queries, memory):
        x = self.norm_self(queries)
        queries = queries + self.self_attention(x, x)
        queries = queries + self.cross_attention(self.norm_query(queries),
                                                 self.norm_memory(memory))
        return queries + self.feed_forward(self.norm_ff(queries))


class PhotographModule(nn.Module):
    """Point features + an instructed camera -> a ``dim x G x G`` image feature map.

    Args:
        feature_channels: backbone output channels.
        dim: model width (TAP supplement Table 1a: 128 best; the public config: 256).
        depth: blocks (Table 1a: 2; the public config: 6).
        heads: attention heads (the public config: 32).
        head_dim: channels per head (the public config: 32); default ``dim // heads``.
        dropout: after each attention output and inside the feed-forward (public config: 0.1).
        qkv_bias: biases on the q/k/v projections (the authors: none).
        memory_hidden: hidden width of the memory MLP; default ``dim`` (the authors' timm
            ``Mlp`` keeps its input width, ``feature_channels + 3`` = 1027 for PointMLP).
        image_size: ``S``, target image side in pixels, a multiple of ``factor``.
        factor: generator upsampling (8, 16, 32); ``G = S / factor`` cells per side.
        query: ``ray`` (default), ``tap`` or ``rotation`` (see the module docstring).
        up_axis: world up axis for ``query="tap"``.
        ray_frequencies: ``L`` of the rays' :func:`frequency_encoding` (``query="ray"``; 0:
            the raw 8 numbers).
        memory_norm: a LayerNorm on the memory in each cross-attention (tap3d's; the authors:
            none).
        output_norm: a LayerNorm after the last block (tap3d's; the authors: none).
        projection: how the cameras given to ``forward`` project (the dataset's
            ``projection``: ``perspective`` or ``orthographic``, :mod:`tap3d.views.projection`).

    ``forward(features (B, M, C), xyz (B, M, 3), K (B, V, 3, 3), world_to_camera (B, V, 4, 4),
    points (B, N, 3), needed by query "tap")`` returns ``(B * V, dim, G, G)`` float32, views of
    a sample consecutive.

    Raises:
        ValueError: ``image_size`` not a multiple of ``factor``, unknown ``factor`` or
            ``query`` or ``projection``, negative ``ray_frequencies``.
    """

    def __init__(self, feature_channels: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 head_dim: int | None = None, dropout: float = 0.0, qkv_bias: bool = True,
                 memory_hidden: int | None = None, image_size: int = 224, factor: int = 32,
                 query: str = "ray", up_axis: int = 1, ray_frequencies: int = 4,
                 memory_norm: bool = True, output_norm: bool = True,
                 projection: str = "perspective"):
        super().__init__()
        if factor not in FACTORS:
            raise ValueError(f"generator factor must be one of {FACTORS}, got {factor}")
        if image_size % factor:
            raise ValueError(f"image_size must be a multiple of {factor}, got {image_size}")
        if query not in QUERIES:
            raise ValueError(f"query must be one of {QUERIES}, got {query!r}")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        self.projection = projection
        if up_axis not in (0, 1, 2):
            raise ValueError(f"up_axis must be 0, 1 or 2, got {up_axis} (a TrainConfig's None is "
                             "resolved against the dataset first: resolve_up_axis)")
        if ray_frequencies < 0:
            raise ValueError(f"ray_frequencies must be >= 0, got {ray_frequencies}")
        self.ray_frequencies = ray_frequencies
        self.grid, self.image_size, self.query, self.dim = image_size // factor, image_size, \
            query, dim
        self.up_axis = up_axis
        hidden = memory_hidden or dim
        self.memory = nn.Sequential(nn.Linear(feature_channels + 3, hidden), nn.GELU(),
                                    nn.Linear(hidden, dim))
        if query == "ray":
            self.query_embed = nn.Sequential(nn.Linear(8 * (1 + 2 * ray_frequencies), dim),
                                             nn.GELU(), nn.Linear(dim, dim))
        elif query == "tap":  # the authors' query_mlp: timm Mlp(8 -> 8 -> dim)
            self.query_embed = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, dim))
        else:
            self.query_embed = nn.Linear(9, dim)
            self.cell_embed = nn.Parameter(torch.randn(1, self.grid ** 2, dim) * 0.02)
        head_dim = head_dim or dim // heads
        self.blocks = nn.ModuleList(_Block(dim, heads, head_dim, qkv_bias, dropout, memory_norm)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim) if output_norm else nn.Identity()

    def queries(self, K, world_to_camera, points=None):
        """``(B * V, G * G, dim)`` query tokens of the cameras (``points`` for ``tap``)."""
        B, V = K.shape[:2]
        if self.query == "ray":
            rays = camera_rays(K, world_to_camera, self.grid, self.image_size, self.projection)
            return self.query_embed(frequency_encoding(rays.reshape(B * V, -1, 8),
                                                       self.ray_frequencies))
        if self.query == "tap":
            if points is None:
                raise ValueError("query 'tap' needs the input points")
            tokens = tap_queries(points, world_to_camera, self.grid, self.image_size,
                                 self.up_axis,
                                 K if self.projection == "orthographic" else None)
            return self.query_embed(tokens.reshape(B * V, -1, 8))
        rotation = world_to_camera[..., :3, :3].reshape(B * V, 1, 9)
        return self.query_embed(rotation) + self.cell_embed

    def forward(self, features, xyz, K, world_to_camera, points=None):
        B, V = K.shape[:2]
        memory = self.memory(torch.cat([features, xyz], -1))
        memory = memory[:, None].expand(-1, V, -1, -1).reshape(B * V, *memory.shape[1:])
        x = self.queries(K, world_to_camera, points)
        for block in self.blocks:
            x = block(x, memory)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(B * V, self.dim, self.grid, self.grid)
