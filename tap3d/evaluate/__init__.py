"""Evaluation of trained backbones and models, the layer above training (never imported by
it): the linear probe and few-shot accuracy (:mod:`~tap3d.evaluate.probe`), the no-learning
descriptor baseline (:mod:`~tap3d.evaluate.descriptors`) and what a TAP model paints
(:mod:`~tap3d.evaluate.generate`). Fine-tuning and part segmentation are tasks of the training
engine (:mod:`tap3d.train`); the data they read is in :mod:`tap3d.clouds`.

Never imports pytorch3d: evaluation runs where only torch is installed.
"""

from tap3d.evaluate.probe import ProbeConfig, few_shot_folds, probe

__all__ = ["ProbeConfig", "few_shot_folds", "probe"]
