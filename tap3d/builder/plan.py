"""What a build will do, resolved once: settings, device, backend, layout and the object list.

:class:`BuildConfig` holds the user's settings (recorded in the dataset's attributes, see
:func:`make_plan`); :func:`load_build_config` resolves them from the defaults, a preset, a YAML
file and explicit options (what ``tap-cli build-dataset`` does); :func:`make_plan` resolves
``auto`` device/backend/layout once, discovers the objects and computes the index arrays, the
group attributes and the shard ranges that the driver, the shard tasks and resume share.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from tap3d.devices import resolve_device
from tap3d.render.cameras import (DEFAULT_DISTANCE, DEFAULT_FOV, LAYOUTS, make_layout,
                                  resolve_layout_name)
from tap3d.render.objfile import OBJ_LOADERS
from tap3d.render.rasterize import BACKENDS
from tap3d.render.shade import SHADERS, SHADINGS
from tap3d.render.textures import TEXTURES
from tap3d.settings import (Device, Lax, SettingsError, choices_of, load_settings, one_of,
                            read_settings, settings)
from tap3d.sources import ObjectSpec, Source, discover
from tap3d.views import schema
from tap3d.views.projection import PROJECTIONS, TAP_FIT

__all__ = ["BuildConfig", "PRESETS", "CHOICES", "field_type", "preset_config",
           "load_build_config", "Plan", "make_plan", "object_seed"]

#: Appearance presets (``--preset``; ``docs/format.md``): ``clip2point`` is the default
#: settings (CLIP2Point supplement: 10 views, textured); ``clip2point-pretrain`` the same views
#: with each view's camera distance drawn from [0.9, 1.1) of the initial one, as CLIP2Point's
#: pre-training renders (its supplement, section 5); ``tap`` is the TAP authors' targets
#: (wangzy22/TAP ``openpoints/dataset/shapenet/shapenet55.py`` and ``view_transformer.py``):
#: MVCNN's 12 views (view v at azimuth 30 v; their ``rotate_theta_phi`` with ``phi = -pi/3`` on
#: their z-up axes is elevation +30 degrees in tap3d's y-up convention, see
#: :func:`tap3d.importers.tap_view_matrices`), parallel projection fitted per view to 200 of
#: 224 pixels (``cal_scale_bias``), untextured grey, white background.
PRESETS = {
    "clip2point": {"views": 10, "layout": "clip2point", "shading": "textured"},
    "clip2point-pretrain": {"views": 10, "layout": "clip2point", "shading": "textured",
                            "distance_jitter": (0.9, 1.1)},
    "tap": {"views": 12, "layout": "mvcnn", "shading": "plain", "projection": "orthographic",
            "fit": TAP_FIT, "background": (1.0, 1.0, 1.0)},
}


@settings(frozen=True)
class BuildConfig:
    """Settings of a build; every field but ``device`` is recorded in the dataset's attributes.

    Every field can be set by a preset, a ``--config`` YAML file and a ``tap-cli build-dataset``
    option of the same name (see :func:`load_build_config`); a new field needs a line in
    ``tap3d.cli``'s help table. Fields that take a name are ``Literal`` types of the constants
    of the modules that implement them (:data:`CHOICES` lists them); constructing one with a
    value of the wrong type or an unknown name raises :class:`tap3d.settings.SettingsError`.

    Attributes:
        views: views per object ``V``.
        layout: view layout name (``auto`` resolves by ``views``, see docs/format.md).
        image_size: side ``S`` of the square images, pixels.
        fov: vertical field of view, degrees.
        distance: camera distance, normalized object units (CLIP2Point: 2 x unit distance).
        distance_jitter: ``(low, high)``: each view's distance is ``distance`` times a seeded
            draw from U[low, high), per object and view, recorded in ``cameras/distance`` (and
            so in ``T`` and ``world_to_camera``); None: the layout's own distances (see
            :func:`tap3d.render.cameras.make_layout`).
        points: surface points per object ``P``.
        shard_size: objects per shard.
        seed: base seed; each object's seed derives from it and the ``object_id``.
        device: ``auto`` (CUDA when the worker has it), ``cpu`` or ``cuda``.
        backend: rasterizer backend name; ``auto`` is PyTorch3D's rasterizer on CUDA and Embree
            ray casting on CPU (see :mod:`tap3d.render.rasterize`).
        background: background colour, RGB in [0, 1].
        texture_atlas_size: per-face texture resolution for OBJ texture atlases.
        shading: ``textured`` (HardPhongShader's model, CLIP2Point) or ``plain`` (untextured
            grey, MVCNN); see :mod:`tap3d.render.shade`.
        textures: ``uv`` (each material's images at source resolution) or ``atlas``
            (PyTorch3D's per-face atlas, CLIP2Point parity); see :mod:`tap3d.render.textures`.
        shader: ``tap3d`` (covered pixels only, one copy of the mesh) or ``pytorch3d``
            (``HardPhongShader``, ``textured`` only).
        obj_loader: ``tinyobjloader`` or ``pytorch3d`` (PyTorch3D's ``load_obj``, ``atlas``
            only; kept for comparison).
        preset: the preset these settings started from (see :func:`preset_config`), or None.
            Recorded, but not compared when a build resumes (the resolved settings are).
        projection: ``perspective`` (``fov``) or ``orthographic`` (parallel rays; ``fov`` is
            not used and is recorded as 0); see :mod:`tap3d.views.projection`.
        fit: orthographic only: the share of the frame each view's projection of the mesh
            fills (TAP: 200 / 224, the authors' ``cal_scale_bias``); None: the unit sphere
            fills the frame in every view.
        normal_maps: also write the optional ``normal`` view array (camera-space unit surface
            normals, OpenCV frame; :func:`tap3d.render.shade.covered_normals`).
    """

    views: int = 10
    layout: one_of(LAYOUTS) = "auto"
    image_size: int = 224
    fov: float = DEFAULT_FOV
    distance: float = DEFAULT_DISTANCE
    distance_jitter: Lax(tuple[float, float]) | None = None
    points: int = 8192
    shard_size: int = 64
    seed: int = 0
    device: Device = "auto"
    backend: one_of(BACKENDS) = "auto"
    background: Lax(tuple[float, float, float]) = (1.0, 1.0, 1.0)
    texture_atlas_size: int = 4
    shading: one_of(SHADINGS) = "textured"
    textures: one_of(TEXTURES) = "uv"
    shader: one_of(SHADERS) = "tap3d"
    obj_loader: one_of(OBJ_LOADERS) = "tinyobjloader"
    preset: one_of(PRESETS) | None = None
    projection: one_of(PROJECTIONS) = "perspective"
    fit: float | None = None
    normal_maps: bool = False

    def validate(self) -> "BuildConfig":
        """Raise ``ValueError`` on settings that cannot be built; return self."""
        resolve_layout_name(self.layout, self.views)
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size}")
        if self.points < 1:
            raise ValueError(f"points must be at least 1, got {self.points}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {self.shard_size}")
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
        if self.shader == "pytorch3d" and self.shading == "plain":
            raise ValueError("shading 'plain' is computed by the tap3d shader, not shader "
                             "'pytorch3d'")
        if self.obj_loader == "pytorch3d" and self.textures != "atlas":
            raise ValueError("obj_loader 'pytorch3d' builds a texture atlas; use textures 'atlas'")
        return self


#: The allowed names of the :class:`BuildConfig` fields that take one (their ``Literal`` types,
#: built from the constants of the modules that implement them; ``preset`` may also be None).
CHOICES = {name: choices_of(hint) for name, hint in
           typing.get_type_hints(BuildConfig, include_extras=True).items()
           if choices_of(hint) is not None}


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
    chosen = dict(PRESETS.get(preset, {}))
    if "views" in given and "layout" not in given:
        chosen["layout"] = "auto"  # another view count than the preset's: its own layout
    if given.get("projection") == "perspective" and "fit" not in given:
        chosen.pop("fit", None)  # the preset's fit is for its parallel projection
    return BuildConfig(**{**chosen, **given, "preset": preset})


def load_build_config(path: str | None = None, **options) -> BuildConfig:
    """A build's settings, what ``tap-cli build-dataset`` resolves: each source overrides the
    ones before it.

    1. the :class:`BuildConfig` defaults;
    2. the preset (:data:`PRESETS`) named by ``options["preset"]``, else by the file's
       ``preset`` key, if any;
    3. the YAML file ``path`` (a mapping of :class:`BuildConfig` fields, e.g. ``build.yaml``);
    4. ``options`` that are not None (the command line's options: None means not given).

    As in :func:`preset_config`, ``views`` given by the file or the options without ``layout``
    takes the ``auto`` layout, not the preset's.

    Args:
        path: a YAML file, or None.
        options: :class:`BuildConfig` fields.

    Raises:
        FileNotFoundError: no file at ``path``.
        SettingsError: the file holds no mapping; an unknown key; a value of another type than
            its field's (a YAML sequence is read as the tuple of ``background``; an integer
            is taken for a float); a name not in :data:`CHOICES` (an unknown preset, layout,
            ...). The message names the file or ``options`` and the field.
    """
    given = {k: v for k, v in options.items() if v is not None}
    from_file = read_settings(BuildConfig, path)
    chosen = {**from_file, **given}
    preset = chosen.get("preset")
    if preset is not None and preset not in PRESETS:
        where = "options" if "preset" in given else path
        raise SettingsError(f"{where}: preset must be one of {', '.join(PRESETS)}, got "
                            f"{preset!r}", [("preset", "unknown choice")])
    base = dict(PRESETS.get(preset, {}))
    if "views" in chosen and "layout" not in chosen:
        base["layout"] = "auto"  # another view count than the preset's: its own layout
    if chosen.get("projection") == "perspective" and "fit" not in chosen:
        base.pop("fit", None)  # the preset's fit is for its parallel projection
    return load_settings(BuildConfig, path, base=base, base_name=f"preset {preset}", **options)


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


@dataclass(frozen=True)
class Plan:
    """A build resolved once (see :func:`make_plan`).

    Attributes:
        config: the settings with ``device``, ``backend`` and ``layout`` resolved (``auto``
            replaced by what renders on this machine).
        source: the discovered source.
        objects: the objects in dataset order.
        index: ``object_id``/``category``/``split`` (str) and ``label`` (int32) arrays.
        attributes: the group attributes (docs/format.md).
        ranges: ``[(start, stop), ...]`` of the shards.
    """

    config: BuildConfig
    source: Source
    objects: list[ObjectSpec]
    index: dict
    attributes: dict
    ranges: list[tuple[int, int]]

    def specs(self) -> dict:
        """The format's array specs for this build."""
        c = self.config
        return schema.array_specs(len(self.objects), c.views, c.image_size, c.points,
                                  normal_maps=c.normal_maps)


def make_plan(source, config: "BuildConfig", synsets=None, limit=None) -> Plan:
    """Validate ``config``, resolve ``auto`` settings and discover the objects.

    Raises:
        ValueError: invalid settings.
        SourceError: the source does not exist or holds no meshes.
    """
    from tap3d.render.rasterize import resolve_backend

    config.validate()
    device = resolve_device(config.device)
    config = replace(config, device=device, backend=resolve_backend(config.backend, device),
                     layout=resolve_layout_name(config.layout, config.views))
    found = discover(source, synsets=synsets, limit=limit)
    objects = found.objects
    index = {
        "object_id": np.array([o.object_id for o in objects], dtype=str),
        "category": np.array([o.category for o in objects], dtype=str),
        "label": np.array([found.label(o.category) for o in objects], dtype=np.int32),
        "split": np.array([o.split for o in objects], dtype=str),
    }
    return Plan(config, found, objects, index, _attributes(found, config),
                schema.shard_ranges(len(objects), config.shard_size))


def object_seed(seed: int, object_id: str) -> int:
    """A 63-bit seed for one object, from the build seed and the object id (SHA-256)."""
    digest = hashlib.sha256(f"{seed}:{object_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _attributes(source: Source, config: BuildConfig) -> dict:
    import tap3d
    from tap3d.render.shade import lights_for

    layout = make_layout(config.layout, config.views, config.distance,
                         rng=np.random.default_rng(0))
    layout_attr = {"name": config.layout, "azimuth": layout.azimuth.tolist(),
                   "elevation": layout.elevation.tolist(), "distance": layout.distance.tolist()}
    if config.layout == "random":
        layout_attr.update(azimuth=None, elevation=None, distance=None,
                           note="drawn per object; see cameras/* arrays")
    elif config.distance_jitter is not None:
        layout_attr.update(distance=None, note="distance jittered per object and view; see "
                                               "cameras/distance")
    return {
        "categories": source.categories,
        "category_names": [source.category_names.get(c, c) for c in source.categories],
        "layout": layout_attr,
        "views": config.views,
        "image_size": config.image_size,
        "fov": config.fov if config.projection == "perspective" else 0.0,
        "projection": config.projection,
        "fit": config.fit,
        "distance_jitter": None if config.distance_jitter is None else
        list(config.distance_jitter),
        "normal_maps": config.normal_maps,
        "lights": lights_for(config.shading),
        "shading": config.shading,
        "textures": config.textures,
        "shader": config.shader,
        "obj_loader": config.obj_loader,
        "preset": config.preset,
        "background": list(config.background),
        "backend": config.backend,
        "points_per_object": config.points,
        "shard_size": config.shard_size,
        "texture_atlas_size": config.texture_atlas_size,
        "source": {"root": source.root, "kind": source.kind},
        "seed": config.seed,
        "tap3d_version": tap3d.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


