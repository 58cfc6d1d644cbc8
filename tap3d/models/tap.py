"""The TAP model: backbone -> Photograph module -> generator (Take-A-Photo, ICCV 2023), and its
own config (after nanoGPT's ``GPTConfig``): :class:`TAPModelConfig` is all that
:class:`TAPModel` is built from, and every checkpoint stores it (``model_args``), so that a
model is rebuilt without the training settings at hand."""

from __future__ import annotations

import dataclasses

from torch import nn

from tap3d.models.backbones import BackboneSettings, make_backbone
from tap3d.models.generator import FACTORS, Generator
from tap3d.models.photograph import QUERIES, PhotographModule
from tap3d.settings import UpAxis, one_of, setting, settings
from tap3d.views.projection import PROJECTIONS

__all__ = ["TAPModelSettings", "TAPModelConfig", "TAPModel"]


@settings
class TAPModelSettings(BackboneSettings):
    """The architecture a user chooses (also fields of :class:`tap3d.train.TrainConfig`); the
    recipes that set them: docs/pretraining.md."""

    photograph_dim: int = setting(128, "Width of the Photograph module.")
    photograph_depth: int = setting(2, "Blocks of the Photograph module.")
    photograph_heads: int = setting(4, "Attention heads of the Photograph module.")
    photograph_head_dim: int | None = setting(None, "Width of an attention head (none: dim / "
                                                    "heads).")
    photograph_dropout: float = setting(0.0, "Dropout of the Photograph module.")
    photograph_qkv_bias: bool = setting(True, "Biases of the attention's q/k/v projections.")
    photograph_memory_hidden: int | None = setting(None, "Hidden width of the memory MLP (none: "
                                                         "dim).")
    photograph_memory_norm: bool = setting(
        True, "tap3d's LayerNorm on the memory in each cross-attention (off: the authors').")
    photograph_output_norm: bool = setting(True, "tap3d's LayerNorm after the last block.")
    query: one_of(QUERIES) = setting(
        "ray", "Queries of the Photograph module: ray (camera rays, tap3d) or tap (the authors').")
    ray_frequencies: int = setting(4, "Positional-encoding frequencies of the ray queries "
                                      "(0: raw rays).")
    generator_factor: one_of(FACTORS) = setting(
        32, "Generator upsampling; the query grid is image_size / factor cells a side.")


@settings
class TAPModelConfig(TAPModelSettings):
    """Everything :class:`TAPModel` is built from: the architecture and what the training data
    decides (the views' size, how their cameras project, the world up axis)."""

    image_size: int = setting(224, "Side S of the generated views, pixels.")
    projection: one_of(PROJECTIONS) = setting(
        "perspective", "How the cameras given to forward project (the dataset's projection).")
    up_axis: UpAxis = setting(1, "World up axis of the data (1: y-up, tap3d; 2: z-up, the "
                                 "authors').")

    @classmethod
    def from_settings(cls, chosen, **data) -> "TAPModelConfig":
        """The config of the architecture fields of ``chosen`` (any object with the
        :class:`TAPModelSettings` fields, e.g. a :class:`tap3d.train.TrainConfig`) and the
        data's ``image_size``, ``projection`` and ``up_axis``."""
        names = [f.name for f in dataclasses.fields(TAPModelSettings)]
        return cls(**{name: getattr(chosen, name) for name in names}, **data)


class TAPModel(nn.Module):
    """Backbone -> Photograph module -> generator.

    ``forward(features (B, N, 4), K (B, V, 3, 3), world_to_camera (B, V, 4, 4))`` returns the
    generated views ``(B, V, 3, S, S)`` in [0, 1]. ``features`` are xyz + height, the stream's
    samples; a backbone that reads xyz only (``transformer``) takes the first three channels
    itself. The Photograph module's memory is whatever the backbone's last stage returns:
    64 points for PointMLP and PointNet++, every point for DGCNN, 256 group centres for the
    Transformer.

    Args:
        config: the model's :class:`TAPModelConfig` (kept as ``self.config``).
    """

    def __init__(self, config: TAPModelConfig):
        super().__init__()
        self.config = config
        self.backbone = make_backbone(config.backbone, embed_dim=config.embed_dim)
        self.photograph = PhotographModule(
            self.backbone.out_channels, dim=config.photograph_dim, depth=config.photograph_depth,
            heads=config.photograph_heads, head_dim=config.photograph_head_dim,
            dropout=config.photograph_dropout, qkv_bias=config.photograph_qkv_bias,
            memory_hidden=config.photograph_memory_hidden, image_size=config.image_size,
            factor=config.generator_factor, query=config.query, up_axis=config.up_axis,
            ray_frequencies=config.ray_frequencies, memory_norm=config.photograph_memory_norm,
            output_norm=config.photograph_output_norm, projection=config.projection)
        self.generator = Generator(config.photograph_dim, config.generator_factor)

    def forward(self, features, K, world_to_camera):
        B, V = K.shape[:2]
        point_features, xyz = self.backbone(features)
        grid = self.photograph(point_features, xyz, K, world_to_camera, features[..., :3])
        images = self.generator(grid)
        return images.reshape(B, V, *images.shape[1:])
