"""Settings files: a dataclass of defaults, a YAML file of some of its fields, then explicit
overrides (after nanoGPT's ``train.py``).

Pre-training (:class:`tap3d.train.TrainConfig`), fine-tuning
(:class:`tap3d.train.FinetuneConfig`) and the build (:class:`tap3d.builder.BuildConfig`, which
puts a preset under the file) read their ``--config`` files here.
"""

from __future__ import annotations

import dataclasses

__all__ = ["read_settings", "check_fields", "load_dataclass"]


def check_fields(cls, names, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` unless every name in ``names`` is a field of the
    dataclass ``cls``."""
    unknown = sorted(set(names) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{where}: unknown config keys: {', '.join(unknown)}")


def read_settings(cls, path: str | None) -> dict:
    """The settings in the YAML file ``path``: a mapping of field names of the dataclass ``cls``.

    Args:
        cls: the settings dataclass.
        path: a YAML file, or None (no settings).

    Returns:
        Field name -> value as YAML gives it (a list for a sequence); ``{}`` for None or an
        empty file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file holds no mapping, or keys that are not fields of ``cls`` (the
            message names the file and the keys).
    """
    import yaml

    if not path:
        return {}
    with open(path) as f:
        values = yaml.safe_load(f)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got a {type(values).__name__}")
    check_fields(cls, values, path)
    return values


def load_dataclass(cls, path: str | None = None, **overrides):
    """An instance of the dataclass ``cls`` from its defaults, then a YAML file, then
    ``overrides`` (None values ignored).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: no mapping in the file, or unknown keys in the file or the overrides (the
            message names the file, or ``options``).
    """
    values = read_settings(cls, path)
    given = {k: v for k, v in overrides.items() if v is not None}
    check_fields(cls, given, "options")
    return cls(**{**values, **given})
