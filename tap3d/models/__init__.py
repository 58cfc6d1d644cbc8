"""Networks: backbones, the Photograph module, the generator, the TAP model, point operations.

Plain torch only (no pytorch3d).
"""

from tap3d.models.backbones import BACKBONES, Backbone, PointMLP, make_backbone
from tap3d.models.generator import Generator
from tap3d.models.photograph import PhotographModule, camera_rays
from tap3d.models.tap import TAPModel

__all__ = ["Backbone", "PointMLP", "BACKBONES", "make_backbone", "Generator", "PhotographModule",
           "camera_rays", "TAPModel"]
