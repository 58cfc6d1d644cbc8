"""What a build will do, resolved once: settings, device, backend, layout and the object list.

:class:`BuildConfig` holds the user's settings (every field is recorded in the dataset's
attributes); :func:`make_plan` resolves ``auto`` device/backend/layout once, discovers the
objects and computes the index arrays, the group attributes and the shard ranges that the driver,
the shard tasks and resume share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from tap3d.devices import resolve_device
from tap3d.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOV, make_layout, resolve_layout_name
from tap3d.sources import ObjectSpec, Source, discover
from tap3d.views import schema
from tap3d.views.projection import PROJECTIONS, TAP_FIT

__all__ = ["BuildConfig", "PRESETS", "preset_config", "Plan", "make_plan", "object_seed"]

#: Appearance presets (``--preset``; ``docs/format.md``): ``clip2point`` is the default
#: settings (CLIP2Point supplement: 10 views, textured); ``tap`` is the TAP authors' targets
#: (wangzy22/TAP ``openpoints/dataset/shapenet/shapenet55.py`` and ``view_transformer.py``):
#: MVCNN's 12 views (view v at azimuth 30 v; their ``rotate_theta_phi`` with ``phi = -pi/3`` on
#: their z-up axes is elevation +30 degrees in tap3d's y-up convention, see
#: :func:`tap3d.importers.tap_view_matrices`), parallel projection fitted per view to 200 of
#: 224 pixels (``cal_scale_bias``), untextured grey, white background.
PRESETS = {
    "clip2point": {"views": 10, "layout": "clip2point", "shading": "textured"},
    "tap": {"views": 12, "layout": "mvcnn", "shading": "plain", "projection": "orthographic",
            "fit": TAP_FIT, "background": (1.0, 1.0, 1.0)},
}


@dataclass(frozen=True)
class BuildConfig:
    """Settings of a build; every field is recorded in the dataset's attributes.

    Attributes:
        views: views per object ``V``.
        layout: view layout name (``auto`` resolves by ``views``, see DESIGN.md).
        image_size: side ``S`` of the square images, pixels.
        fov: vertical field of view, degrees.
        distance: camera distance, normalized object units (CLIP2Point: 2 x unit distance).
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
        preset: the ``--preset`` these settings came from (see :func:`preset_config`), or None.
        projection: ``perspective`` (``fov``) or ``orthographic`` (parallel rays; ``fov`` is
            not used and is recorded as 0); see :mod:`tap3d.views.projection`.
        fit: orthographic only: the share of the frame each view's projection of the mesh
            fills (TAP: 200 / 224, the authors' ``cal_scale_bias``); None: the unit sphere
            fills the frame in every view.
    """

    views: int = 10
    layout: str = "auto"
    image_size: int = 224
    fov: float = DEFAULT_FOV
    distance: float = DEFAULT_DISTANCE
    points: int = 8192
    shard_size: int = 64
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    texture_atlas_size: int = 4
    shading: str = "textured"
    textures: str = "uv"
    shader: str = "tap3d"
    obj_loader: str = "tinyobjloader"
    preset: str | None = None
    projection: str = "perspective"
    fit: float | None = None

    def validate(self) -> "BuildConfig":
        """Raise ``ValueError`` on settings that cannot be built; return self."""
        resolve_layout_name(self.layout, self.views)
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size}")
        if self.points < 1:
            raise ValueError(f"points must be at least 1, got {self.points}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {self.shard_size}")
        if not 0 < self.fov < 180:
            raise ValueError(f"fov must be in (0, 180) degrees, got {self.fov}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got "
                             f"{self.projection!r}")
        if self.fit is not None:
            if self.projection != "orthographic":
                raise ValueError("fit needs projection 'orthographic'")
            if not 3 < round(self.fit * self.image_size) <= self.image_size:
                raise ValueError(f"fit must be in ({3 / self.image_size:.3g}, 1] for "
                                 f"{self.image_size} px images, got {self.fit}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        from tap3d.render.rasterize import BACKENDS

        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        self._validate_appearance()
        return self

    def _validate_appearance(self) -> None:
        from tap3d.render.meshes import TEXTURES
        from tap3d.render.objfile import OBJ_LOADERS
        from tap3d.render.shade import SHADERS, SHADINGS

        for option, value, allowed in (("shading", self.shading, SHADINGS),
                                       ("textures", self.textures, TEXTURES),
                                       ("shader", self.shader, SHADERS),
                                       ("obj_loader", self.obj_loader, OBJ_LOADERS),
                                       ("preset", self.preset, (None, *PRESETS))):
            if value not in allowed:
                raise ValueError(f"{option} must be one of "
                                 f"{', '.join(str(a) for a in allowed if a)}, got {value!r}")
        if self.shader == "pytorch3d" and self.shading == "plain":
            raise ValueError("shading 'plain' is computed by the tap3d shader, not shader "
                             "'pytorch3d'")
        if self.obj_loader == "pytorch3d" and self.textures != "atlas":
            raise ValueError("obj_loader 'pytorch3d' builds a texture atlas; use textures 'atlas'")


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


@dataclass(frozen=True)
class Plan:
    """A build resolved once (see :func:`make_plan`).

    Attributes:
        config: the settings with ``device``, ``backend`` and ``layout`` resolved (``auto``
            replaced by what renders on this machine).
        source: the discovered source.
        objects: the objects in dataset order.
        index: ``object_id``/``category``/``split`` (str) and ``label`` (int32) arrays.
        attributes: the group attributes (DESIGN.md).
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
        return schema.array_specs(len(self.objects), c.views, c.image_size, c.points)


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
    return {
        "categories": source.categories,
        "category_names": [source.category_names.get(c, c) for c in source.categories],
        "layout": layout_attr,
        "views": config.views,
        "image_size": config.image_size,
        "fov": config.fov if config.projection == "perspective" else 0.0,
        "projection": config.projection,
        "fit": config.fit,
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


