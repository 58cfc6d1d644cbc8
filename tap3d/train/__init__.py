"""TAP pre-training. Never imports pytorch3d: the trainer runs where only torch is installed."""

from tap3d.train.backbones import Backbone, PointMLP, make_backbone
from tap3d.train.generator import Generator, tap_loss
from tap3d.train.loop import (TAPModel, TrainConfig, evaluate, export_backbone, load_config,
                              load_model, psnr, train)
from tap3d.train.photograph import PhotographModule, camera_rays

__all__ = ["Backbone", "PointMLP", "make_backbone", "Generator", "tap_loss", "PhotographModule",
           "camera_rays", "TAPModel", "TrainConfig", "load_config", "train", "export_backbone",
           "load_model", "evaluate", "psnr"]
