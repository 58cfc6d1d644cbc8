"""Training: one engine (:mod:`tap3d.train.engine`) and its tasks, TAP pre-training,
classification fine-tuning and part segmentation (configs, optimizer and schedules, losses,
checkpoint, run folder, distributed helpers).

Never imports pytorch3d: the trainer runs where only torch is installed.
"""

from tap3d.train.weights import load_model
from tap3d.train.config import TrainConfig, load_config
from tap3d.train.engine import NonFiniteLossError, Task, fit
from tap3d.train.pretrain import PretrainTask, train
from tap3d.train.finetune import ClassificationTask, finetune
from tap3d.train.finetune_config import FinetuneConfig, load_finetune_config
from tap3d.train.loss import poly1_focal_loss, tap_loss
from tap3d.train.partseg import PartSegTask, finetune_partseg
from tap3d.train.partseg_config import PartSegConfig, load_partseg_config
from tap3d.train.quality import photo_quality, psnr

__all__ = ["TrainConfig", "load_config", "train", "NonFiniteLossError", "tap_loss", "photo_quality",
           "psnr", "load_model", "finetune", "FinetuneConfig",
           "load_finetune_config", "Task", "fit", "PretrainTask", "ClassificationTask",
           "poly1_focal_loss", "PartSegTask", "finetune_partseg", "PartSegConfig", "load_partseg_config"]
