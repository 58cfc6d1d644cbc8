"""What a build will do, resolved once: settings, device, backend, layout and the object list.

:func:`make_plan` takes the user's :class:`tap3d.buildconfig.BuildConfig`, resolves ``auto``
device/backend/layout once, discovers the objects and computes the index arrays, the group
attributes and the shard ranges that the driver, the shard tasks and resume share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from tap3d.buildconfig import BuildConfig, optional_arrays, recorded_attributes
from tap3d.devices import resolve_device
from tap3d.render.cameras import make_layout, resolve_layout_name
from tap3d.sources import ObjectSpec, Source, discover
from tap3d.views import schema

__all__ = ["Plan", "make_plan", "object_seed"]


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
                                  optional=optional_arrays(c))


def make_plan(source, config: "BuildConfig", synsets=None, limit=None, objects=None) -> Plan:
    """Validate ``config``, resolve ``auto`` settings and discover the objects
    (:func:`tap3d.sources.discover` with ``synsets``, ``limit`` and ``objects``).

    Raises:
        ValueError: invalid settings.
        SourceError: the source does not exist or holds no meshes.
    """
    from tap3d.render.rasterize import resolve_backend

    config.validate()
    device = resolve_device(config.device)
    config = replace(config, device=device, backend=resolve_backend(config.backend, device),
                     layout=resolve_layout_name(config.layout, config.views))
    found = discover(source, synsets=synsets, limit=limit, objects=objects)
    objects = found.objects
    index = _index_arrays(found)
    return Plan(config, found, objects, index, _attributes(found, config),
                schema.shard_ranges(len(objects), config.shard_size))


def _index_arrays(found: Source) -> dict:
    """``object_id``/``category``/``split`` (str) and ``label`` (int32) of ``found``'s objects.

    Labels come from a dict: :meth:`Source.label` searches the category list, O(categories)
    per object, and Objaverse has 1,156 (0.79 s against 0.05 s for 100k objects).
    """
    objects = found.objects
    labels = {category: i for i, category in enumerate(found.categories)}
    categories = [o.category for o in objects]
    return {
        "object_id": np.array([o.object_id for o in objects], dtype=str),
        "category": np.array(categories, dtype=str),
        "label": np.fromiter(map(labels.__getitem__, categories), dtype=np.int32,
                             count=len(categories)),
        "split": np.array([o.split for o in objects], dtype=str),
    }


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
        **recorded_attributes(config),
        "categories": source.categories,
        "category_names": [source.category_names.get(c, c) for c in source.categories],
        "layout": layout_attr,
        "lights": lights_for(config.shading),
        "source": {"root": source.root, "kind": source.kind},
        "tap3d_version": tap3d.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
