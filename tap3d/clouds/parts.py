"""Part-labelled point clouds for part segmentation, recognised from the path.

Two layouts:

- ShapeNetPart (Yi et al., "A Scalable Active Framework for Region Annotation in 3D Shape
  Collections", SIGGRAPH Asia 2016), the ``shapenetcore_partanno_segmentation_benchmark_v0_normal``
  folder: ``synsetoffset2category.txt`` (``<Name>\\t<synset>`` lines),
  ``<synset>/<token>.txt`` with 7 whitespace-separated columns ``x y z nx ny nz part`` per point
  (``part`` a global part id, see :data:`SHAPENETPART_PARTS`), and
  ``train_test_split/shuffled_{train,val,test}_file_list.json``, each a JSON list of
  ``shape_data/<synset>/<token>`` entries. Training reads train + val (the TAP authors'
  ``trainval`` split), testing reads test. The same layout with categories of one's own (a
  user's parts, PartNet-derived sets): when ``synsetoffset2category.txt`` names any category
  that is not one of the 16, the categories are its lines in order and each one's block of part
  ids is the range of the ids found in its files over all three splits; the blocks must be
  contiguous, disjoint and together ``0 .. P - 1`` (:func:`read_shapenetpart`).
- a tap3d dataset (``tap3d.views``) with the optional ``part`` array (object, point; int16) and
  the ``parts`` group attribute (docs/partseg.md): ``points``, ``normals`` and
  ``part`` of the done objects, split by the ``split`` array or a seeded per-category split.

Part ids are global: category ``c`` owns a contiguous block of ids (ShapeNetPart's 50 ids over 16
categories, whatever subset of them a folder lists; in a tap3d dataset the blocks follow the
order of the ``categories`` attribute; in a ShapeNetPart-layout folder of other categories they
are read from the files).
"""

from __future__ import annotations

import os

import numpy as np

from tap3d.clouds.errors import PartDataError
from tap3d.clouds.shapenetpart import (SHAPENETPART_CATEGORIES, SHAPENETPART_PARTS, PartCloud,
                                       PartLabelled, PartSplit, part_blocks, read_shapenetpart)

__all__ = ["SHAPENETPART_CATEGORIES", "SHAPENETPART_PARTS", "PartDataError", "PartCloud",
           "PartSplit", "PartLabelled", "read_shapenetpart", "load_part_labelled",
           "part_blocks"]


def _tap3d(path: str, test_fraction: float, seed: int) -> PartLabelled:
    from tap3d.clouds.labelled import dataset_split, open_done_objects

    group, done = open_done_objects(path, ("points", "normals", "part", "label"), PartDataError)
    if "parts" not in group.attrs:
        raise PartDataError(f"{path}: tap3d dataset without part labels (missing the parts "
                            "attribute)")
    categories = list(group.attrs["categories"])
    parts_attr = dict(group.attrs["parts"])
    absent = [c for c in categories if c not in parts_attr]
    if absent:
        raise PartDataError(f"{path}: the parts attribute names no parts for "
                            f"{', '.join(absent)}")
    blocks = part_blocks([len(parts_attr[c]) for c in categories])
    names = [f"{c}_{n}" for c in categories for n in parts_attr[c]]
    labels = np.asarray(group["label"][:], dtype=np.int64)[done]
    points = np.asarray(group["points"][:], dtype=np.float32)[done]
    normals = np.asarray(group["normals"][:], dtype=np.float32)[done]
    part = np.asarray(group["part"][:], dtype=np.int64)[done]
    ids = np.array([str(s) for s in group["object_id"][:]])[done]
    for i, (label, labels_of) in enumerate(zip(labels, part)):
        block = blocks[label]
        if labels_of.min() < block[0] or labels_of.max() > block[-1]:
            raise PartDataError(f"{path}: object {ids[i]} ({categories[label]}) has part ids "
                                f"{labels_of.min()}..{labels_of.max()} outside its "
                                f"{block[0]}..{block[-1]}")
    test, note = dataset_split(group, done, labels, test_fraction, seed)
    shapes = [PartCloud(points[i], normals[i], part[i], int(labels[i]), ids[i])
              for i in range(len(labels))]
    return PartLabelled("tap3d", path, categories, blocks, names,
                        PartSplit([s for s, t in zip(shapes, test) if not t]),
                        PartSplit([s for s, t in zip(shapes, test) if t]), notes=[note])


def load_part_labelled(path: str | os.PathLike, test_fraction: float = 0.2,
                       seed: int = 0) -> PartLabelled:
    """Read a part-labelled dataset, recognised from its path.

    Args:
        path: a ShapeNetPart folder (``synsetoffset2category.txt`` inside) or a tap3d dataset
            with ``part`` labels.
        test_fraction, seed: the per-category split of a tap3d dataset without ``split``.

    Returns:
        A :class:`PartLabelled`.

    Raises:
        PartDataError: the path does not exist, is neither layout, or a file is malformed (the
            message names the file, and the line of a point file).
    """
    path = os.fspath(path)
    if "://" not in path and not os.path.exists(path):
        raise PartDataError(f"{path}: does not exist")
    if os.path.isfile(os.path.join(path, "synsetoffset2category.txt")):
        return read_shapenetpart(path)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "zarr.json")):
        raise PartDataError(f"{path}: not a part-labelled dataset: expected ShapeNetPart "
                            "(synsetoffset2category.txt, train_test_split/) or a tap3d dataset "
                            "with part labels (zarr.json)")
    return _tap3d(path, test_fraction, seed)
