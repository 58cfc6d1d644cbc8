"""Command-line options made from settings classes (:mod:`tap3d.settings`): one option per field,
its type, choices, default and help read off the field (:func:`tap3d.settings.setting`), so that
a new setting is one field."""

from __future__ import annotations

import dataclasses
import typing

import click

from tap3d.settings import choices_of, field_default, field_help

__all__ = ["trust_option", "settings_options", "given"]

#: ``--trust-checkpoint`` of every command that reads weights: the one way to read a file whose
#: pickle names types beyond tensors and numpy values
#: (:func:`tap3d.train.torchfile.load_torch_file`); without it such a file is refused, naming
#: the file and the type.
trust_option = click.option(
    "--trust-checkpoint", "trust", is_flag=True,
    help="Read weights files even when they hold other objects than tensors, numbers, strings "
         "and numpy arrays: unpickling such a file runs any code it holds; only for files you "
         "trust (default: they are refused).")


def _scalar(kind):
    """The click type of a field type (Annotated and Optional unwrapped)."""
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) not in (None, tuple, list) and len(args) == 1:
        return _scalar(args[0])
    return kind


def _option(field: dataclasses.Field, hint, text: str):
    """``(decls, kwargs)`` of the click option of one settings field (default None: not given).
    """
    flag = "--" + field.name.replace("_", "-")
    kind, extra = _scalar(hint), {}
    choices = choices_of(hint)
    if choices is not None:
        kind = click.Choice([str(c) for c in choices])
        if not isinstance(choices[0], str):  # an int Literal: back to its type
            extra["callback"] = lambda ctx, param, value, t=type(choices[0]): \
                None if value is None else t(value)
    elif kind is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    elif typing.get_origin(kind) is tuple:
        kind = click.Tuple(typing.get_args(kind))
    elif typing.get_origin(kind) is list:
        item = typing.get_args(kind)[0]
        names = choices_of(item)
        kind = click.Choice([str(c) for c in names]) if names is not None else item
        extra["multiple"] = True
        extra["callback"] = lambda ctx, param, value: list(value) if value else None
    default = field_default(field)
    shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else \
        "none" if default is None else str(default)
    return (flag, field.name), dict(type=kind, default=None,
                                    help=f"{text} [default: {shown}]".strip(), **extra)


def settings_options(*classes, skip=()):
    """A decorator adding one option per field of the settings ``classes`` (their union, the
    first class's field first) to a click command, each with default None so that the
    ``--config`` file and the class defaults decide what is not given. ``skip``: fields left
    out (the command sets them otherwise)."""

    def decorate(command):
        seen = {}
        for cls in classes:
            hints, texts = typing.get_type_hints(cls, include_extras=True), field_help(cls)
            for field in dataclasses.fields(cls):
                if field.name not in seen and field.name not in skip:
                    seen[field.name] = _option(field, hints[field.name],
                                               texts.get(field.name, ""))
        for decls, kwargs in reversed(list(seen.values())):  # click lists decorators in order
            command = click.option(*decls, **kwargs)(command)
        return command

    return decorate


def given(cls, options: dict, where: str) -> dict:
    """The options given (not None) that are fields of ``cls``.

    Raises:
        click.UsageError: a given option is not a setting of ``cls`` (``where`` says whose).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in options.items() if v is not None}
    stray = sorted(set(values) - names)
    if stray:
        raise click.UsageError(f"{', '.join('--' + s.replace('_', '-') for s in stray)}: not a "
                               f"setting of {where}")
    return values
