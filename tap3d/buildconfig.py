"""A build's settings, declared once: :class:`BuildConfig`, its presets and what is read off its
fields.

Each field is one :func:`tap3d.settings.setting` that carries everything about it: its default,
its one-line help (the ``tap-cli build-dataset`` option and the docs table are made from it),
the dataset attribute it is recorded in (:func:`recorded_attributes`, for builds and
``import-tap`` alike), whether a resumed build compares it (:func:`resume_differences`) and the
value that stores written before the setting existed were built with. Adding a build setting is
adding one field. The build-specific metadata keys:

- ``attribute``: the attribute's name (default: the field's); None: not recorded.
- ``compared``: compared when a build resumes (default True).
- ``before``: the value a store that lacks the attribute was built with (default: none; the
  attribute is in every store).
- ``recorded_as``: a function of the config giving the recorded value (default: the value, a
  tuple as a list).
"""

from __future__ import annotations

import dataclasses
import typing

from tap3d.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOV, LAYOUTS, resolve_layout_name
from tap3d.render.objfile import OBJ_LOADERS
from tap3d.render.rasterize import BACKENDS
from tap3d.render.shade import SHADERS, SHADINGS
from tap3d.render.textures import TEXTURES
from tap3d.settings import (Device, Lax, SettingsError, choices_of, load_settings, one_of,
                            read_settings, setting, settings)
from tap3d.views.projection import PROJECTIONS, TAP_FIT

__all__ = ["BuildConfig", "PRESETS", "CHOICES", "field_type", "preset_config",
           "load_build_config", "recorded_attributes", "compared_attributes",
           "resume_differences", "optional_arrays"]

#: Appearance presets (``--preset``; their sources in docs/building.md): ``clip2point`` is the
#: default settings, ``clip2point-pretrain`` adds CLIP2Point's per-view distance jitter, ``tap``
#: is what the TAP authors pre-train on.
PRESETS = {
    "clip2point": {"views": 10, "layout": "clip2point", "shading": "textured"},
    "clip2point-pretrain": {"views": 10, "layout": "clip2point", "shading": "textured",
                            "distance_jitter": (0.9, 1.1)},
    "tap": {"views": 12, "layout": "mvcnn", "shading": "plain", "projection": "orthographic",
            "fit": TAP_FIT, "background": (1.0, 1.0, 1.0)},
}


def _recorded_fov(config) -> float:
    """``fov`` as recorded: 0 for a parallel projection, which has none."""
    return config.fov if config.projection == "perspective" else 0.0


@settings(frozen=True)
class BuildConfig:
    """Settings of a build (``tap-cli build-dataset``): what the views, cameras and points are.

    Set by a preset, a ``--config`` YAML file and options of the same names
    (:func:`load_build_config`); a value of the wrong type or an unknown name raises
    :class:`tap3d.settings.SettingsError`, and :meth:`validate` checks what types cannot.
    """

    views: int = setting(10, "Views per object.")
    layout: one_of(LAYOUTS) = setting(
        "auto", "View layout; auto: clip2point for 10 views, orthogonal for 6, mvcnn for 12, "
                "sphere otherwise.")
    image_size: int = setting(224, "Square image side, pixels.")
    fov: float = setting(DEFAULT_FOV, "Vertical field of view, degrees (perspective).",
                         recorded_as=_recorded_fov)
    distance: float = setting(
        DEFAULT_DISTANCE, "Camera distance, normalized object units (the farthest vertex at 1).",
        attribute=None)  # recorded (and compared) in the layout attribute's distances
    distance_jitter: Lax(tuple[float, float]) | None = setting(
        None, "LOW HIGH: each view's distance times U[LOW, HIGH), seeded per object and view.",
        before=None)
    points: int = setting(8192, "Surface points per object.", attribute="points_per_object")
    shard_size: int = setting(64, "Objects per Zarr shard (one build task each).")
    seed: int = setting(0, "Base seed; each object's seed derives from it and its object id.")
    device: Device = setting("auto", "auto (CUDA when the worker has it), cpu or cuda.",
                             attribute=None)
    backend: one_of(BACKENDS) = setting(
        "auto", "Rasterizer: auto = pytorch3d on CUDA, embree (ray casting) on CPU.")
    background: Lax(tuple[float, float, float]) = setting(
        (1.0, 1.0, 1.0), "Background colour, 3 numbers R G B in [0, 1].")
    texture_atlas_size: int = setting(4, "Texels per face side of --textures atlas.")
    shading: one_of(SHADINGS) = setting(
        "textured", "textured: HardPhongShader's model with the mesh's textures; plain: "
                    "untextured light grey, ambient + diffuse (MVCNN).")
    textures: one_of(TEXTURES) = setting(
        "uv", "uv: each material's images at source resolution; atlas: PyTorch3D's per-face "
              "texture atlas (CLIP2Point parity).")
    shader: one_of(SHADERS) = setting(
        "tap3d", "tap3d: shades covered pixels only; pytorch3d: HardPhongShader (textured only).")
    obj_loader: one_of(OBJ_LOADERS) = setting(
        "tinyobjloader", "OBJ parser; pytorch3d (load_obj, needs --textures atlas) for "
                         "comparison.")
    preset: one_of(PRESETS) | None = setting(
        None, "Settings to start from; --config and explicit options override them.",
        compared=False)  # how the settings were spelled, not what they are
    projection: one_of(PROJECTIONS) = setting(
        "perspective", "perspective (--fov) or orthographic: parallel rays (tap preset).",
        before="perspective")
    fit: float | None = setting(
        None, "Orthographic: share of the frame each view's projection fills (tap: 200/224); "
              "none: the unit sphere fills it.", before=None)
    normal_maps: bool = setting(
        False, "Also write the normal view array: camera-space unit normals (OpenCV frame).",
        before=False)
    albedo_maps: bool = setting(
        False, "Also write the albedo view array: the unlit sRGB base colour of each pixel.",
        before=False)
    point_colors: bool = setting(
        False, "Also write point_colors: the sRGB base colour at each surface point.",
        before=False)
    max_file_mb: float | None = setting(
        None, "Fail an object whose mesh file is larger, MB (none: no limit).", before=None)
    max_faces: int | None = setting(
        None, "Fail an object with more triangles (none: no limit).", before=None)
    max_texture_pixels: int | None = setting(
        None, "Fail an object whose texture images hold more pixels in all (none: no limit).",
        before=None)
    max_texture_size: int | None = setting(
        None, "Downsample texture images whose longer side is larger, pixels (none: keep).",
        before=None)

    def validate(self) -> "BuildConfig":
        """Raise ``ValueError`` on settings that cannot be built; return self."""
        resolve_layout_name(self.layout, self.views)
        for name in ("image_size", "points", "shard_size"):
            least = 8 if name == "image_size" else 1
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if self.distance_jitter is not None and not \
                0 < self.distance_jitter[0] <= self.distance_jitter[1]:
            raise ValueError(f"distance_jitter must be 0 < low <= high, got "
                             f"{self.distance_jitter}")
        if not 0 < self.fov < 180:
            raise ValueError(f"fov must be in (0, 180) degrees, got {self.fov}")
        if self.fit is not None:
            if self.projection != "orthographic":
                raise ValueError("fit needs projection 'orthographic'")
            if not 3 < round(self.fit * self.image_size) <= self.image_size:
                raise ValueError(f"fit must be in ({3 / self.image_size:.3g}, 1] for "
                                 f"{self.image_size} px images, got {self.fit}")
        SHADERS[self.shader](self.shading)  # the shader refuses a shading it cannot compute
        for name in ("max_file_mb", "max_faces", "max_texture_pixels", "max_texture_size"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.shading == "plain" and (self.albedo_maps or self.point_colors):
            raise ValueError("albedo_maps and point_colors need shading 'textured' (plain "
                             "shading reads no colour)")
        if self.obj_loader == "pytorch3d" and self.textures != "atlas":
            raise ValueError("obj_loader 'pytorch3d' builds a texture atlas; use textures 'atlas'")
        return self


#: The allowed names of the :class:`BuildConfig` fields that take one (their ``Literal`` types,
#: built from the constants of the modules that implement them; ``preset`` may also be None).
CHOICES = {name: choices_of(hint) for name, hint in
           typing.get_type_hints(BuildConfig, include_extras=True).items()
           if choices_of(hint) is not None}


def optional_arrays(config: BuildConfig) -> tuple[str, ...]:
    """The optional arrays (:data:`tap3d.views.schema.OPTIONAL_ARRAYS`) ``config`` writes."""
    return tuple(name for name, on in (("normal", config.normal_maps),
                                       ("albedo", config.albedo_maps),
                                       ("point_colors", config.point_colors)) if on)


def _attribute(field: dataclasses.Field) -> str | None:
    return field.metadata.get("attribute", field.name)


def recorded_attributes(config: BuildConfig) -> dict:
    """The dataset attributes that record ``config``: one per field that has an ``attribute``
    (docs/format.md), JSON values (tuples as lists)."""
    found = {}
    for field in dataclasses.fields(BuildConfig):
        name = _attribute(field)
        if name is None:
            continue
        record = field.metadata.get("recorded_as")
        value = record(config) if record else getattr(config, field.name)
        found[name] = list(value) if isinstance(value, tuple) else value
    return found


def compared_attributes() -> dict:
    """The attributes a resumed build compares: attribute name -> the value a store without it
    was built with (``dataclasses.MISSING``: every store has it)."""
    return {_attribute(f): f.metadata.get("before", dataclasses.MISSING)
            for f in dataclasses.fields(BuildConfig)
            if _attribute(f) is not None and f.metadata.get("compared", True)}


def resume_differences(existing: dict, attributes: dict, also=()) -> list[str]:
    """One ``name: existing ..., this build ...`` line per compared attribute (and per name in
    ``also``, e.g. the layout and the categories, which are not settings) whose value in an
    existing store's attributes ``existing`` differs from this build's ``attributes``."""
    compared = {**compared_attributes(), **{name: dataclasses.MISSING for name in also}}
    lines = []
    for name, before in compared.items():
        old = existing.get(name, None if before is dataclasses.MISSING else before)
        if old != attributes[name]:
            lines.append(f"{name}: existing {old!r}, this build {attributes[name]!r}")
    return lines


def preset_config(preset: str | None = None, **options) -> BuildConfig:
    """A :class:`BuildConfig` from a preset and explicit options, which override it.

    Args:
        preset: a name from :data:`PRESETS`, or None (the :class:`BuildConfig` defaults, which
            are ``clip2point``'s).
        options: :class:`BuildConfig` fields; those given as None are left to the preset.
            ``views`` given without ``layout`` resolves the layout with ``auto``.

    Raises:
        ValueError: an unknown preset.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    given = {name: value for name, value in options.items() if value is not None}
    return BuildConfig(**{**_preset_base(preset, given), **given, "preset": preset})


def _preset_base(preset: str | None, chosen: dict) -> dict:
    """The preset's settings that the ``chosen`` ones leave in force: ``views`` chosen without
    ``layout`` takes the ``auto`` layout, a perspective projection drops the preset's fit."""
    base = dict(PRESETS.get(preset, {}))
    if "views" in chosen and "layout" not in chosen:
        base["layout"] = "auto"  # another view count than the preset's: its own layout
    if chosen.get("projection") == "perspective" and "fit" not in chosen:
        base.pop("fit", None)  # the preset's fit is for its parallel projection
    return base


def load_build_config(path: str | None = None, **options) -> BuildConfig:
    """A build's settings, what ``tap-cli build-dataset`` resolves: each source overrides the
    ones before it.

    1. the :class:`BuildConfig` defaults;
    2. the preset (:data:`PRESETS`) named by ``options["preset"]``, else by the file's
       ``preset`` key, if any;
    3. the YAML file ``path`` (a mapping of :class:`BuildConfig` fields, e.g. ``build.yaml``);
    4. ``options`` that are not None (the command line's options: None means not given).

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: the file holds no mapping; an unknown key; a value of another type than
            its field's (a YAML sequence is read as a tuple; an integer is taken for a float);
            a name not in :data:`CHOICES`. The message names the file or ``options`` and the
            field.
    """
    given = {k: v for k, v in options.items() if v is not None}
    chosen = {**read_settings(BuildConfig, path), **given}
    preset = chosen.get("preset")
    if preset is not None and preset not in PRESETS:
        where = "options" if "preset" in given else path
        raise SettingsError(f"{where}: preset must be one of {', '.join(PRESETS)}, got "
                            f"{preset!r}", [("preset", "unknown choice")])
    return load_settings(BuildConfig, path, base=_preset_base(preset, chosen),
                         base_name=f"preset {preset}", **options)


def field_type(name: str) -> type | tuple[type, ...]:
    """The type of the :class:`BuildConfig` field ``name`` without ``None`` (``str`` for
    ``preset``), or the tuple of its element types for a tuple field (``background``,
    ``distance_jitter``)."""
    hint = typing.get_type_hints(BuildConfig)[name]
    if choices_of(hint) is not None:
        return str
    present = [t for t in typing.get_args(hint) if t is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(present) == 1:
        hint = present[0]  # Optional[X] -> X
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)
    return next((t for t in typing.get_args(hint) if t is not type(None)), hint)
