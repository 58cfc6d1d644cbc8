"""State-dict naming: the rule language that renames a tap3d module's entries to another
code's (the TAP authors' openpoints, :mod:`tap3d.models.openpoints`) and back, and what a state
dict's names say about the module (:func:`count_indices`). Each backbone states its own rules
(``openpoints_rules`` of its module)."""

from __future__ import annotations

import re

import torch

__all__ = ["NamingError", "W", "WB", "BN", "Rule", "block", "count_indices"]


class NamingError(ValueError):
    """Keys that match no rule, or tensors that cannot be renamed (all listed)."""


#: Entries of a linear layer without bias, with bias, and of BatchNorm (LayerNorm: ``WB``).
W, WB = ("weight",), ("weight", "bias")
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class Rule:
    """One tap3d name template and its openpoints twin; ``{i}``, ``{j}`` are indices and
    ``{rest}`` one of the entries ``rest`` (those both modules have). ``kernel``: trailing unit
    dimensions the authors' convolution weights have beyond tap3d's ``(out, in)`` linear
    weights (0, 1 or 2)."""

    def __init__(self, ours: str, theirs: str, kernel: int = 0, rest: tuple = WB):
        self.templates = (ours, theirs)
        entries = "|".join(rest)
        self.patterns = (self._compile(ours, entries), self._compile(theirs, entries))
        self.kernel = kernel

    @staticmethod
    def _compile(template: str, entries: str) -> re.Pattern:
        pattern = re.escape(template)
        for name, group in (("i", r"\d+"), ("j", r"\d+"), ("rest", entries)):
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{group})")
        return re.compile(pattern)

    def rename(self, key: str, value: torch.Tensor, to_openpoints: bool):
        """``(new key, new value)``, or None when ``key`` does not match."""
        source = 0 if to_openpoints else 1
        match = self.patterns[source].fullmatch(key)
        if match is None:
            return None
        name = self.templates[1 - source].format(**match.groupdict())
        if self.kernel and to_openpoints and value.dim() == 2:
            value = value.reshape(*value.shape, *(1,) * self.kernel)
        elif self.kernel and not to_openpoints and value.dim() == 2 + self.kernel:
            if any(s != 1 for s in value.shape[2:]):
                raise NamingError(f"{key}: a {tuple(value.shape)} kernel; tap3d's point-wise "
                                  f"layers need 1x1 convolutions")
            value = value.reshape(value.shape[:2])
        return name, value


def block(ours: str, theirs: str, kernel: int, bias: bool = False) -> list[Rule]:
    """A tap3d :class:`~tap3d.models.backbones.PointwiseBlock` (``linear``, ``norm``) against
    the authors' conv-norm-act ``Sequential`` (``0`` conv, ``1`` BatchNorm)."""
    return [Rule(f"{ours}.linear.{{rest}}", f"{theirs}.0.{{rest}}", kernel, WB if bias else W),
            Rule(f"{ours}.norm.{{rest}}", f"{theirs}.1.{{rest}}", rest=BN)]


def count_indices(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0
