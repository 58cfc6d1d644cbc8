"""Partial loading of a pre-trained backbone into a part segmenter, with a report of every
tensor that was not loaded (:mod:`tap3d.train.weights`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tap3d.models.segmentation import PartSegmenter
from tap3d.train.weights.backbone import load_backbone_weights, to_openpoints

__all__ = ["LoadReport", "load_pretrained_backbone"]


@dataclass
class LoadReport:
    """What :func:`load_pretrained_backbone` did.

    Attributes:
        path: the checkpoint.
        loaded: backbone entries copied from it.
        skipped: entry -> why it was not (``shape (64, 4, 1) in the checkpoint, (64, 6, 1) here``,
            ``not in the checkpoint``, ``in the checkpoint only``).
    """

    path: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def format(self) -> str:
        """Lines for the log: the count loaded, then every entry skipped and why."""
        lines = [f"{self.path}: {len(self.loaded)} backbone entries loaded, "
                 f"{len(self.skipped)} not:"]
        lines += [f"  {name}: {why}" for name, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def load_pretrained_backbone(model: PartSegmenter, path: str, backbone: str | None = None, *,
                             trust: bool = False) -> LoadReport:
    """Copy a pre-trained backbone into ``model.backbone``, every tensor that fits, and report
    by name every one that does not and why; nothing is skipped silently.

    The TAP authors do the same for ShapeNetPart: the backbone pre-trained on xyz + height (4
    channels) meets a 6-channel embedding, they skip ``embedding.net.0.weight`` (here
    ``embedding.0.weight``) and load the rest with ``strict=False``
    (``examples/shapenetpart/main.py``). Reads any source :func:`tap3d.train.weights.
    load_backbone_weights` reads (run folder, tap3d backbone file, the authors' checkpoint).

    Args:
        model: the segmenter whose backbone is filled.
        path: the checkpoint.
        backbone: registry name the checkpoint must hold (None: whatever it holds).
        trust: read a checkpoint that names types beyond tensors and numpy values with the
            full unpickler, which runs any code it holds
            (:func:`tap3d.train.torchfile.load_torch_file`).

    Returns:
        What was loaded and what was skipped, and why.

    Raises:
        CheckpointError: without ``trust``, the checkpoint names other types.
        WeightsError: the checkpoint cannot be read (names the file).
    """
    weights = load_backbone_weights(path, backbone, trust=trust)
    ours = model.backbone.state_dict()
    report = LoadReport(str(path))

    def name(key):
        if weights.backbone != "pointmlp":
            return key
        try:
            value = ours[key] if key in ours else weights.state_dict[key]
            return f"{key} (openpoints {next(iter(to_openpoints({key: value})))})"
        except ValueError:
            return key

    fitting = {}
    for key, value in weights.state_dict.items():
        if key not in ours:
            report.skipped[name(key)] = "in the checkpoint only"
        elif tuple(value.shape) != tuple(ours[key].shape):
            report.skipped[name(key)] = (f"shape {tuple(value.shape)} in the checkpoint, "
                                         f"{tuple(ours[key].shape)} here")
        else:
            fitting[key] = value
    for key in ours:
        if key not in weights.state_dict:
            report.skipped[name(key)] = "not in the checkpoint"
    model.backbone.load_state_dict(fitting, strict=False)
    report.loaded = sorted(fitting)
    return report
