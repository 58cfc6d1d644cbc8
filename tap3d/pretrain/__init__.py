"""TAP pre-training: config, loop, loss, checkpoint, run folder, distributed helpers.

Never imports pytorch3d: the trainer runs where only torch is installed.
"""

from tap3d.pretrain.checkpoint import export_backbone, load_model
from tap3d.pretrain.config import TrainConfig, load_config
from tap3d.pretrain.loop import NonFiniteLossError, train
from tap3d.pretrain.loss import tap_loss
from tap3d.pretrain.quality import evaluate, psnr

__all__ = ["TrainConfig", "load_config", "train", "NonFiniteLossError", "tap_loss", "evaluate",
           "psnr", "load_model", "export_backbone"]
