"""Downstream evaluation of pre-trained backbones: labelled datasets (ScanObjectNN, ModelNet40
h5 and normal_resampled, tap3d), part-labelled ones (ShapeNetPart and its layout with one's own
categories, tap3d with part labels, posed URDF robots) and part-segmentation scores, linear probe
and few-shot (seeded, or Point-BERT's fold files), and the TAP authors' checkpoints. Fine-tuning is a task
of the training engine (:mod:`tap3d.train`).

Never imports pytorch3d: evaluation runs where only torch is installed.
"""

from tap3d.evaluate.labelled import LabelledDataError, LabelledPoints, load_labelled
from tap3d.evaluate.partdata import PartDataError, PartLabelled, load_part_labelled
from tap3d.evaluate.probe import few_shot_folds, probe
from tap3d.evaluate.weights import (BackboneWeights, CheckpointError, ModelWeights,
                                    WeightsError, export_backbone, export_model, from_openpoints,
                                    init_model, load_backbone, load_backbone_weights,
                                    load_model_weights, load_torch_file, to_openpoints)

__all__ = ["LabelledDataError", "PartDataError", "PartLabelled", "load_part_labelled",
           "LabelledPoints", "load_labelled", "few_shot_folds", "probe", "BackboneWeights",
           "WeightsError", "export_backbone", "from_openpoints", "load_backbone_weights",
           "to_openpoints", "load_backbone", "ModelWeights", "load_model_weights", "init_model",
           "export_model", "CheckpointError", "load_torch_file"]
