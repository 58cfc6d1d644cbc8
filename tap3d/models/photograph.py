"""The Photograph module of TAP: cross-attention from camera queries to point features.

Take-A-Photo (Wang et al., ICCV 2023), section 3 and supplement Table 1a: a memory MLP maps the
backbone's features and coordinates to ``dim`` channels; one query token per cell of the
``(S / 32)^2`` feature grid is built from the instructed camera; blocks of pre-LayerNorm
self-attention over the queries, cross-attention to the memory and a GEGLU feed-forward
(Shazeer, "GLU Variants Improve Transformer", 2020), each residual, turn the queries into the
image feature map. The supplement's best setting is 2 layers x 128 channels.

Queries (``query="ray"``, the default): TAP's public code builds queries for a parallel
projection from the rotation alone; our views are perspective, so each query encodes the camera
ray through its cell centre as Plücker coordinates ``(d, o x d)`` (world frame, unit ``d``)
plus the cell's 2D position in [-1, 1], which matches the rendered geometry exactly.
``query="rotation"`` keeps TAP's construction for comparison: the flattened OpenCV
world-to-camera rotation plus a learned embedding per cell.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PhotographModule", "camera_rays"]


def camera_rays(K: torch.Tensor, world_to_camera: torch.Tensor, grid: int,
                image_size: int) -> torch.Tensor:
    """Plücker rays through the centres of a ``grid x grid`` partition of the image.

    Args:
        K: ``(..., 3, 3)`` OpenCV intrinsics (pixels, top-left pixel centre at (0, 0)).
        world_to_camera: ``(..., 4, 4)`` OpenCV extrinsics.
        grid: cells per side.
        image_size: image side in pixels.

    Returns:
        ``(..., grid * grid, 8)`` float32: unit direction (3), moment ``o x d`` (3) and the cell
        centre in [-1, 1] (x right, y down), cells in row-major order.
    """
    cell = image_size / grid
    centres = (torch.arange(grid, device=K.device, dtype=K.dtype) + 0.5) * cell - 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    pixels = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], -1)
    rays_cam = pixels @ torch.linalg.inv(K).transpose(-1, -2)  # (..., G, 3)
    rotation = world_to_camera[..., :3, :3]
    translation = world_to_camera[..., :3, 3]
    direction = torch.nn.functional.normalize(rays_cam @ rotation, dim=-1)  # R^T d, row vectors
    origin = -(rotation.transpose(-1, -2) @ translation[..., None])[..., 0]  # camera centre
    moment = torch.cross(origin[..., None, :].expand_as(direction), direction, dim=-1)
    position = (pixels[:, :2] + 0.5) / image_size * 2 - 1
    return torch.cat([direction, moment, position.expand(*direction.shape[:-1], 2)], -1)


class _GEGLU(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj = nn.Linear(dim, dim * mult * 2)
        self.out = nn.Linear(dim * mult, dim)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(value * nn.functional.gelu(gate))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_query = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim)
        self.cross_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.feed_forward = _GEGLU(dim)

    def forward(self, queries, memory):
        x = self.norm_self(queries)
        queries = queries + self.self_attention(x, x, x, need_weights=False)[0]
        x, m = self.norm_query(queries), self.norm_memory(memory)
        queries = queries + self.cross_attention(x, m, m, need_weights=False)[0]
        return queries + self.feed_forward(self.norm_ff(queries))


class PhotographModule(nn.Module):
    """Point features + an instructed camera -> a ``dim x G x G`` image feature map.

    Args:
        feature_channels: backbone output channels.
        dim: attention channels (TAP supplement Table 1a: 128 best).
        depth: blocks (2).
        heads: attention heads.
        grid: ``G = image_size / 32`` cells per side.
        image_size: ``S``, target image side in pixels (a multiple of 32).
        query: ``ray`` (Plücker rays, default) or ``rotation`` (TAP's parallel projection).

    ``forward(features (B, M, C), xyz (B, M, 3), K (B, V, 3, 3), world_to_camera (B, V, 4, 4))``
    returns ``(B * V, dim, G, G)`` float32, views of a sample consecutive.
    """

    def __init__(self, feature_channels: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 image_size: int = 224, query: str = "ray"):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        if query not in ("ray", "rotation"):
            raise ValueError(f"query must be 'ray' or 'rotation', got {query!r}")
        self.grid, self.image_size, self.query, self.dim = image_size // 32, image_size, query, dim
        self.memory = nn.Sequential(nn.Linear(feature_channels + 3, dim), nn.GELU(),
                                    nn.Linear(dim, dim))
        cells = self.grid * self.grid
        if query == "ray":
            self.query_embed = nn.Sequential(nn.Linear(8, dim), nn.GELU(), nn.Linear(dim, dim))
        else:
            self.query_embed = nn.Linear(9, dim)
            self.cell_embed = nn.Parameter(torch.randn(1, cells, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def queries(self, K, world_to_camera):
        """``(B * V, G * G, dim)`` query tokens of the cameras."""
        B, V = K.shape[:2]
        if self.query == "ray":
            rays = camera_rays(K, world_to_camera, self.grid, self.image_size)
            return self.query_embed(rays.reshape(B * V, -1, 8))
        rotation = world_to_camera[..., :3, :3].reshape(B * V, 1, 9)
        return self.query_embed(rotation) + self.cell_embed

    def forward(self, features, xyz, K, world_to_camera):
        B, V = K.shape[:2]
        memory = self.memory(torch.cat([features, xyz], -1))
        memory = memory[:, None].expand(-1, V, -1, -1).reshape(B * V, *memory.shape[1:])
        x = self.queries(K, world_to_camera)
        for block in self.blocks:
            x = block(x, memory)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(B * V, self.dim, self.grid, self.grid)
