"""The TAP model: backbone -> Photograph module -> generator (Take-A-Photo, ICCV 2023)."""

from __future__ import annotations

from torch import nn

from tap3d.models.backbones import make_backbone
from tap3d.models.generator import Generator
from tap3d.models.photograph import PhotographModule

__all__ = ["TAPModel"]


class TAPModel(nn.Module):
    """Backbone -> Photograph module -> generator.

    ``forward(features (B, N, 4), K (B, V, 3, 3), world_to_camera (B, V, 4, 4))`` returns the
    generated views ``(B, V, 3, S, S)`` in [0, 1]. ``features`` are xyz + height, the stream's
    samples; a backbone that reads xyz only (``transformer``) takes the first three channels
    itself. The Photograph module's memory is whatever the backbone's last stage returns:
    64 points for PointMLP and PointNet++, every point for DGCNN, 256 group centres for the
    Transformer.

    Args:
        config: any object with the model fields of :class:`tap3d.train.TrainConfig`
            (``backbone``, one of :data:`tap3d.models.backbones.BACKBONES`; ``embed_dim``, its
            base width, 64 in the authors' configurations of all four; ``photograph_*``,
            ``generator_factor``, ``query``, ``ray_frequencies``, ``up_axis`` (-1, a config
            not resolved against a dataset, is taken as 1: y-up); objects without
            ``photograph_memory_norm`` / ``photograph_output_norm`` get tap3d's LayerNorms).
        image_size: side ``S`` of the generated views, pixels.
        projection: the training dataset's ``projection`` (``perspective`` or
            ``orthographic``): how the cameras given to ``forward`` project.
    """

    def __init__(self, config, image_size: int, projection: str = "perspective"):
        super().__init__()
        self.backbone = make_backbone(config.backbone, embed_dim=config.embed_dim)
        self.photograph = PhotographModule(
            self.backbone.out_channels, dim=config.photograph_dim, depth=config.photograph_depth,
            heads=config.photograph_heads, head_dim=config.photograph_head_dim or None,
            dropout=config.photograph_dropout, qkv_bias=config.photograph_qkv_bias,
            memory_hidden=config.photograph_memory_hidden or None, image_size=image_size,
            factor=config.generator_factor, query=config.query,
            up_axis=1 if config.up_axis == -1 else config.up_axis,
            ray_frequencies=config.ray_frequencies,
            memory_norm=getattr(config, "photograph_memory_norm", True),
            output_norm=getattr(config, "photograph_output_norm", True), projection=projection)
        self.generator = Generator(config.photograph_dim, config.generator_factor)

    def forward(self, features, K, world_to_camera):
        B, V = K.shape[:2]
        point_features, xyz = self.backbone(features)
        grid = self.photograph(point_features, xyz, K, world_to_camera, features[..., :3])
        images = self.generator(grid)
        return images.reshape(B, V, *images.shape[1:])
