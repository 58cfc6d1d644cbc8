"""Settings of every command, validated by pydantic: defaults < preset < YAML file < options.

Every command's settings are one class made by :func:`settings` (a pydantic dataclass in strict
mode that forbids unknown keys): :class:`tap3d.builder.BuildConfig` (``build-dataset``),
:class:`tap3d.train.TrainConfig` (``train``), :class:`tap3d.train.FinetuneConfig` and
:class:`tap3d.train.PartSegConfig` (``finetune``), :class:`tap3d.evaluate.ProbeConfig`
(``probe``). Their fields are the command-line options (``tap3d.cli.options`` generates them)
and the keys of their ``--config`` YAML files; choices are ``Literal`` types built from the
modules that implement them (:func:`one_of`), so each list of names lives in one place.

:func:`load_settings` merges the layers and reports every bad value as one
:class:`SettingsError` naming where it came from (the file, ``options`` or the preset) and the
key, before any work starts (after nanoGPT's ``train.py`` for the layering).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

__all__ = ["SettingsError", "settings", "setting", "inherit", "field_help", "field_default",
           "settings_table", "one_of",
           "choices_of", "Device", "UpAxis", "Lax", "read_settings", "check_fields",
           "load_settings"]

#: A device name: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
Device = typing.Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]

#: A world up axis: 0, 1 (y-up, tap3d's builds) or 2 (z-up, the authors' data).
UpAxis = typing.Literal[0, 1, 2]


def Lax(kind):  # noqa: N802 (a type constructor)
    """``kind`` validated in pydantic's lax mode (a YAML list for a tuple field)."""
    return typing.Annotated[kind, Field(strict=False)]


class SettingsError(ValueError):
    """Bad settings: unknown keys, wrong types or unknown choices. The message names where each
    value came from (a YAML file, ``options``, a preset) and the key; ``problems`` holds
    ``(key, reason)`` pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


def setting(default=dataclasses.MISSING, help: str = "", *,
            default_factory=dataclasses.MISSING, **metadata) -> dataclasses.Field:
    """A settings field that carries its own description: its default (or ``default_factory``),
    a one-line ``help`` (the command-line option's help, the docs tables) and any further
    ``metadata`` that a command reads off the field (the build's is described in
    :mod:`tap3d.buildconfig`).

    Raises:
        ValueError: no help text (every setting says what it is).
    """
    if not help or "\n" in help:
        raise ValueError("a setting needs a one-line help text")
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"help": help, **metadata})


def inherit(base, name: str, default=dataclasses.MISSING, *,
            default_factory=dataclasses.MISSING) -> dataclasses.Field:
    """The field ``name`` of the settings class ``base`` with another default (its help and
    metadata kept), for a subclass that changes a default."""
    field = next(f for f in dataclasses.fields(base) if f.name == name)
    return setting(default, default_factory=default_factory, **field.metadata)


def field_help(cls) -> dict[str, str]:
    """Each field's one-line help (:func:`setting`) of the settings class ``cls``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def field_default(field: dataclasses.Field):
    """The default value of a dataclass field (``default_factory`` called)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()


def settings_table(cls) -> str:
    """A Markdown table of the settings class ``cls``: one row per field with its option, its
    default and its help (what the docs show; made, never written by hand)."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for field in dataclasses.fields(cls):
        default = field_default(field)
        shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else \
            "none" if default is None else str(default)
        text = field.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `--{field.name.replace('_', '-')}` | {shown} | {text} |")
    return "\n".join(rows)


def one_of(names) -> object:
    """The ``Literal`` type of the values ``names`` (a tuple, or a mapping's keys)."""
    return typing.Literal[tuple(names)]


def choices_of(kind) -> tuple | None:
    """The allowed values of a ``Literal`` type (also inside ``Optional``/``Annotated``), or None
    for any other type."""
    if typing.get_origin(kind) is typing.Annotated:
        return choices_of(typing.get_args(kind)[0])
    if typing.get_origin(kind) is typing.Literal:
        return typing.get_args(kind)
    for arg in typing.get_args(kind) if typing.get_origin(kind) in (typing.Union,
                                                                      types.UnionType) else ():
        found = choices_of(arg)
        if found is not None:
            return found
    return None


def _reason(cls, error: dict) -> str:
    """One pydantic error as ``must be ..., got ...``."""
    key, kind, value = error["loc"][0], error["type"], error.get("input")
    names = {"int": "int", "float": "float", "bool": "bool", "string": "str", "list": "list"}
    if kind == "literal_error":
        hint = typing.get_type_hints(cls, include_extras=True)[key]
        allowed = choices_of(hint)
        if allowed is None and typing.get_origin(hint) is list:  # an item of a list
            allowed = choices_of(typing.get_args(hint)[0])
            where = "".join(f"[{i}]" for i in error["loc"][1:])
            return f"{where} must be one of {', '.join(map(str, allowed))}, got {value!r}"
        return f"must be one of {', '.join(map(str, allowed))}, got {value!r}"
    hint = typing.get_type_hints(cls)[key]  # without Annotated
    if typing.get_origin(hint) is tuple:
        return f"must be {len(typing.get_args(hint))} numbers, got {value!r}"
    stem = kind.split("_")[0]
    if stem in names and len(error["loc"]) == 1:
        return f"must be of type {names[stem]}, got {value!r}"
    if kind == "string_pattern_mismatch":
        return f"{error['msg'].lower()}, got {value!r}"
    where = "".join(f"[{i}]" for i in error["loc"][1:])
    return f"{where} {error['msg'][0].lower()}{error['msg'][1:]}, got {value!r}".strip()


def settings(cls=None, *, frozen: bool = False):
    """Make ``cls`` a settings class: a pydantic dataclass (strict types, an int is taken for a
    float, unknown keys refused) whose construction raises :class:`SettingsError` with one
    ``key must be ..., got ...`` line per bad value. ``dataclasses.fields``, ``asdict`` and
    ``replace`` work on it as on any dataclass."""

    def wrap(cls):
        made = _pydantic_dataclass(cls, frozen=frozen,
                                   config=ConfigDict(strict=True, extra="forbid"))
        validated = made.__init__

        def __init__(self, *args, **kwargs):
            try:
                validated(self, *args, **kwargs)
            except ValidationError as error:
                problems = [(str(e["loc"][0]), "unknown key" if e["type"] == "unexpected_"
                             "keyword_argument" else _reason(made, e)) for e in error.errors()]
                raise SettingsError("; ".join(f"{k} {r}" for k, r in problems),
                                    problems) from None

        made.__init__ = __init__
        return made

    return wrap(cls) if cls is not None else wrap


def _yaml_loader():
    """PyYAML's safe loader that also reads ``1e-3`` as a float (YAML 1.2; YAML 1.1, which
    PyYAML follows, needs a dot: ``1.0e-3``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."))
    return Loader


def check_fields(cls, names, where: str) -> None:
    """Raise :class:`SettingsError` naming ``where`` unless every name in ``names`` is a field
    of the settings class ``cls``."""
    unknown = sorted(set(names) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise SettingsError(f"{where}: unknown config keys: {', '.join(unknown)}",
                            [(k, "unknown key") for k in unknown])


def read_settings(cls, path: str | None) -> dict:
    """The settings in the YAML file ``path``: a mapping of field names of ``cls``.

    Returns:
        Field name -> value as YAML gives it (``1e-3`` read as a float); ``{}`` for None or an
        empty file.

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: the file is not YAML, holds no mapping, or keys that are not fields of
            ``cls`` (the message names the file and the keys).
    """
    import yaml

    if not path:
        return {}
    with open(path) as f:
        try:
            values = yaml.load(f, Loader=_yaml_loader())
        except yaml.YAMLError as error:
            raise SettingsError(f"{path}: not a YAML file: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: expected a mapping of settings, got a "
                            f"{type(values).__name__}")
    check_fields(cls, values, path)
    return values


def load_settings(cls, path: str | None = None, base: dict | None = None,
                  base_name: str = "defaults", **options):
    """An instance of the settings class ``cls`` from its defaults, then ``base`` (a preset),
    then the YAML file ``path``, then ``options`` (None values ignored: not given).

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: unknown keys, values of the wrong type or not among the choices; one
            line per problem, each naming where the value came from (``path``, ``options`` or
            ``base_name``) and the key, e.g. ``tap.yaml: lr must be of type float, got 'fast'``.
    """
    given = {k: v for k, v in options.items() if v is not None}
    check_fields(cls, given, "options")
    layers = [(base_name, dict(base or {})), (path, read_settings(cls, path)), ("options", given)]
    values, source = {}, {}
    for where, layer in layers:
        values.update(layer)
        source.update({k: where for k in layer})
    try:
        return cls(**values)
    except SettingsError as error:
        lines = [f"{source.get(key, 'defaults')}: {key} {reason}" for key, reason in
                 error.problems]
        raise SettingsError("; ".join(lines), error.problems) from None
