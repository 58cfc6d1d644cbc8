"""Networks: backbones, the Photograph module, the generator, the TAP model, point operations.

Plain torch only (no pytorch3d).
"""

from tap3d.models.backbones import (BACKBONES, DGCNN, Backbone, PointMLP, PointNet2,
                                    PointTransformer, make_backbone)
from tap3d.models.generator import Generator
from tap3d.models.photograph import PhotographModule, camera_rays
from tap3d.models.tap import TAPModel, TAPModelConfig, TAPModelSettings

__all__ = ["Backbone", "PointMLP", "DGCNN", "PointNet2", "PointTransformer", "BACKBONES",
           "make_backbone", "Generator", "PhotographModule", "camera_rays", "TAPModel", "TAPModelConfig",
           "TAPModelSettings"]
