"""Training: TAP pre-training and fine-tuning (config, loop, loss, checkpoint, run folder,
distributed helpers).

Never imports pytorch3d: the trainer runs where only torch is installed.
"""

from tap3d.train.checkpoint import load_model
from tap3d.train.config import TrainConfig, load_config
from tap3d.train.pretrain import NonFiniteLossError, train
from tap3d.train.finetune import finetune
from tap3d.train.finetune_config import FinetuneConfig, load_finetune_config
from tap3d.train.loss import tap_loss
from tap3d.train.quality import evaluate, psnr

__all__ = ["TrainConfig", "load_config", "train", "NonFiniteLossError", "tap_loss", "evaluate",
           "psnr", "load_model", "finetune", "FinetuneConfig",
           "load_finetune_config"]
