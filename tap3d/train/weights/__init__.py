"""Weights from files: tap3d runs, tap3d backbone files and the TAP authors' checkpoints.

One backbone loader (:func:`load_backbone`, over :func:`load_backbone_weights`) serves
fine-tuning, the linear probe and :func:`export_backbone`; one whole-model loader
(:func:`load_model_weights`) serves ``tap-cli train --init``, ``tap-cli generate`` and
:func:`load_model`; partial loading (:func:`load_pretrained_backbone`) reports every tensor it
does not load. Training checkpoints (optimizer, RNG) are :mod:`tap3d.train.checkpoint`'s.

Sources:

- a tap3d run folder (``tap-cli train`` or ``tap-cli finetune``; ``checkpoints/last.pt``) or
  one of its checkpoint files (:data:`tap3d.train.checkpoint.CHECKPOINT_VERSION` only): the
  ``backbone.*`` entries of ``model``, its ``config`` and, for pre-training, ``model_args``;
- a tap3d backbone file, the one backbone format (:func:`export_backbone` ``tap3d``):
  ``{"format": "tap3d.backbone", "version": 1, "backbone", "backbone_args", "state_dict",
  "config", "step"}``; a file of another version (or of none: tap3d 0.1.0's development
  versions) is refused, naming both versions;
- a checkpoint of the authors' code (openpoints, GitHub wangzy22/TAP): their pre-training
  ``*_ckpt_latest.pth`` / ``*_ckpt_best.pth`` (``{model, optimizer, scheduler, epoch,
  best_val}``, ``model`` = ``encoder.`` backbone, ``generator.`` Photograph module, ``decoder.``
  2D generator), ``*_clean.pth`` (``{model}``: the encoder, prefix removed), a fine-tuning
  checkpoint (``encoder.`` and ``prediction.``), or a bare state dict; like their
  ``load_checkpoint``, ``model``, ``net``, ``network``, ``state_dict`` or ``base_model`` is
  unwrapped and ``module.`` removed. Names: :mod:`tap3d.models.openpoints` (all four
  backbones, the Photograph module, the generator).

Where a checkpoint holds a whole model, :func:`load_backbone_weights` leaves the other modules
out and lists them in ``dropped``. Every remaining entry must be a backbone entry of the right
shape: a key that matches nothing is an error listing it (openpoints loads with
``strict=False`` and skips such keys silently).

Files are read as data by :func:`tap3d.train.torchfile.load_torch_file`.
"""

from tap3d.train.torchfile import (
                                          SAFE_GLOBALS,
                                          CheckpointError,
                                          WeightsError,
                                          load_torch_file,
)
from tap3d.train.weights.backbone import (
                                          BACKBONE_FORMAT,
                                          EXPORT_FORMATS,
                                          BackboneWeights,
                                          export_backbone,
                                          from_openpoints,
                                          load_backbone,
                                          load_backbone_weights,
                                          to_openpoints,
)
from tap3d.train.weights.model import (
                                          ModelWeights,
                                          authors_config,
                                          build_model,
                                          export_model,
                                          init_model,
                                          load_model,
                                          load_model_weights,
)
from tap3d.train.weights.partial import LoadReport, load_pretrained_backbone

__all__ = ["BackboneWeights", "WeightsError", "CheckpointError", "SAFE_GLOBALS", "load_torch_file",
           "EXPORT_FORMATS", "to_openpoints", "from_openpoints", "load_backbone_weights",
           "load_backbone", "export_backbone", "ModelWeights", "load_model_weights", "load_model", "init_model",
           "build_model", "export_model", "authors_config", "BACKBONE_FORMAT", "LoadReport",
           "load_pretrained_backbone"]
