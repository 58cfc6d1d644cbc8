"""The ShapeNetPart layout (Yi et al., SIGGRAPH Asia 2016): its 16 categories and 50 part ids,
the part-labelled clouds it holds, and :func:`read_shapenetpart` (the layout is described in
:mod:`tap3d.clouds.parts`, which also reads tap3d datasets with part labels)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from tap3d.clouds.errors import PartDataError

__all__ = ["SHAPENETPART_CATEGORIES", "SHAPENETPART_PARTS", "SPLIT_FILES", "PartCloud",
           "PartSplit", "PartLabelled", "part_blocks", "read_shapenetpart"]


#: ShapeNetPart's 16 categories in label order: (name as in ``synsetoffset2category.txt``,
#: ShapeNetCore synset id).
SHAPENETPART_CATEGORIES = (
    ("Airplane", "02691156"), ("Bag", "02773838"), ("Cap", "02954340"), ("Car", "02958343"),
    ("Chair", "03001627"), ("Earphone", "03261776"), ("Guitar", "03467517"),
    ("Knife", "03624134"), ("Lamp", "03636649"), ("Laptop", "03642806"),
    ("Motorbike", "03790512"), ("Mug", "03797390"), ("Pistol", "03948459"),
    ("Rocket", "04099429"), ("Skateboard", "04225987"), ("Table", "04379243"))
#: Parts per category, in order: category ``i`` owns ids ``sum(parts[:i]) ..`` (airplane 0-3,
#: bag 4-5, cap 6-7, car 8-11, chair 12-15, earphone 16-18, guitar 19-21, knife 22-23,
#: lamp 24-27, laptop 28-29, motorbike 30-35, mug 36-37, pistol 38-40, rocket 41-43,
#: skateboard 44-46, table 47-49: the benchmark's 50 parts, as the TAP authors'
#: ``cls2parts``).
SHAPENETPART_PARTS = (4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3)
SPLIT_FILES = {"train": "shuffled_train_file_list.json", "val": "shuffled_val_file_list.json",
               "test": "shuffled_test_file_list.json"}


def part_blocks(counts) -> list[list[int]]:
    """Global part ids of each category from its number of parts: ``[2, 3]`` ->
    ``[[0, 1], [2, 3, 4]]``."""
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    return [list(range(starts[i], starts[i + 1])) for i in range(len(counts))]


@dataclass
class PartCloud:
    """One shape: ``points`` ``(P, 3)`` and ``normals`` ``(P, 3)`` float32 (y-up, the
    dataset's frame), ``part`` ``(P,)`` int64 global part ids, ``category`` its index."""

    points: np.ndarray
    normals: np.ndarray
    part: np.ndarray
    category: int
    name: str = ""


@dataclass
class PartSplit:
    """The shapes of one split (point counts may differ between shapes)."""

    shapes: list[PartCloud]

    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def categories(self) -> np.ndarray:
        """``(N,)`` int64 category of every shape."""
        return np.array([s.category for s in self.shapes], dtype=np.int64)


@dataclass
class PartLabelled:
    """A part-segmentation benchmark held in memory.

    Attributes:
        name: ``shapenetpart`` or ``tap3d``.
        path: where it was read from.
        categories: category names; category ``i`` is ``categories[i]``.
        category_parts: global part ids of each category (contiguous blocks).
        part_names: names of every global part id (``<category>_<i>`` where the data has none).
        train, test: the splits (ShapeNetPart: train + val, and test).
        notes: how the split was made, ...
    """

    name: str
    path: str
    categories: list[str]
    category_parts: list[list[int]]
    part_names: list[str]
    train: PartSplit
    test: PartSplit
    notes: list[str] = field(default_factory=list)

    @property
    def num_parts(self) -> int:
        return len(self.part_names)

    def summary(self) -> str:
        """One line: name, sizes, categories and parts."""
        return (f"{self.name} ({self.path}): {len(self.train)} train / {len(self.test)} test "
                f"shapes, {len(self.categories)} categories, {self.num_parts} parts")


def _read_categories(root: str) -> list[tuple[str, str]]:
    path = os.path.join(root, "synsetoffset2category.txt")
    if not os.path.isfile(path):
        raise PartDataError(f"{root}: not a ShapeNetPart folder: {path} is missing")
    entries = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise PartDataError(f"{path}:{number}: expected '<name> <synset>', got "
                                    f"{line.strip()!r}")
            entries.append((fields[0], fields[1]))
    for column, what in ((0, "name"), (1, "synset")):
        values = [entry[column] for entry in entries]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise PartDataError(f"{path}: {what} {', '.join(repeated)} listed more than once")
    if not entries:
        raise PartDataError(f"{path}: lists no category")
    return entries


def _read_split(root: str, split: str, synsets: dict[str, int]) -> list[tuple[str, str]]:
    """``[(synset, token), ...]`` of one split file, checked against the category list."""
    path = os.path.join(root, "train_test_split", SPLIT_FILES[split])
    if not os.path.isfile(path):
        raise PartDataError(f"{root}: the {split} split file {path} is missing")
    try:
        with open(path) as f:
            entries = json.load(f)
    except json.JSONDecodeError as error:
        raise PartDataError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
    if not isinstance(entries, list):
        raise PartDataError(f"{path}: expected a JSON list of 'shape_data/<synset>/<token>'")
    out = []
    for number, entry in enumerate(entries, 1):
        fields = entry.split("/") if isinstance(entry, str) else []
        if len(fields) != 3 or fields[0] != "shape_data":
            raise PartDataError(f"{path}: entry {number} is {entry!r}, not "
                                "'shape_data/<synset>/<token>'")
        if fields[1] not in synsets:
            raise PartDataError(f"{path}: entry {number} ({entry}) names synset {fields[1]}, "
                                "which synsetoffset2category.txt does not list")
        out.append((fields[1], fields[2]))
    return out


def _read_points(path: str, parts: list[int] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points, normals, part)`` of one ``<token>.txt``; every row checked (its part within
    ``parts``, or a whole number >= 0 where ``parts`` is None)."""
    if not os.path.isfile(path):
        raise PartDataError(f"{path}: listed in the split files but missing")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 7:
                raise PartDataError(f"{path}:{number}: {len(fields)} columns, expected 7 "
                                    "(x y z nx ny nz part)")
            try:
                rows.append([float(v) for v in fields])
            except ValueError:
                raise PartDataError(f"{path}:{number}: not numbers: {line.strip()!r}") from None
            part = rows[-1][6]
            if parts is None and (part != int(part) or part < 0):
                raise PartDataError(f"{path}:{number}: part {fields[6]} is not a part id "
                                    "(a whole number >= 0)")
            if parts is not None and (part != int(part) or not parts[0] <= part <= parts[-1]):
                raise PartDataError(f"{path}:{number}: part {fields[6]} is not one of this "
                                    f"category's parts {parts[0]}..{parts[-1]}")
    if not rows:
        raise PartDataError(f"{path}: no points")
    table = np.asarray(rows)
    return (table[:, :3].astype(np.float32), table[:, 3:6].astype(np.float32),
            table[:, 6].astype(np.int64))


def _inferred_blocks(path: str, entries: list[tuple[str, str]], splits: dict
                     ) -> list[list[int]]:
    """Each listed category's part ids: the range of the ids in its shapes over all splits,
    checked contiguous, disjoint across categories and together ``0 .. P - 1``."""
    found: list[dict[int, str]] = [{} for _ in entries]  # category -> {id: first file with it}
    for shapes in splits.values():
        for shape in shapes:
            for part in np.unique(shape.part).tolist():
                found[shape.category].setdefault(part, shape.name)
    blocks = []
    for (name, synset), ids in zip(entries, found):
        if not ids:
            raise PartDataError(f"{path}: category {name} ({synset}) has no shape in the split "
                                "files, so its part ids cannot be read from them")
        low, high = min(ids), max(ids)
        missing = sorted(set(range(low, high + 1)) - set(ids))
        if missing:
            raise PartDataError(
                f"{path}: category {name} ({synset}) has part ids {low}..{high} without "
                f"{', '.join(map(str, missing))} in any of its files (a category's parts must be "
                "a contiguous block of ids)")
        blocks.append(list(range(low, high + 1)))
    owner = {}
    for c, block in enumerate(blocks):
        for part in block:
            if part in owner:
                other = owner[part]
                raise PartDataError(
                    f"{path}: part id {part} is used by category {entries[other][0]} "
                    f"(in {found[other][part]}.txt) and by category {entries[c][0]} (in "
                    f"{found[c][part]}.txt); each category needs its own block of ids")
            owner[part] = c
    unused = sorted(set(range(max(owner) + 1)) - set(owner))
    if unused:
        raise PartDataError(f"{path}: no category uses part id(s) "
                            f"{', '.join(map(str, unused))}; the ids must run from 0 to "
                            f"{max(owner)} without gaps")
    return blocks


def read_shapenetpart(root: str | os.PathLike) -> PartLabelled:
    """Read a ShapeNetPart folder (module docstring): train + val for training, test.

    When every category of ``synsetoffset2category.txt`` is one of ShapeNetPart's 16 (all of
    them or a subset), the categories are the 16 in their order and the part ids the
    benchmark's fixed 50 (:data:`SHAPENETPART_PARTS`). Otherwise (categories of one's own in the
    same layout) the categories are the file's lines in order and each one's part ids are read
    from its point files over the train, val and test lists: they must form a contiguous block
    per category, the blocks disjoint and together ``0 .. P - 1``; the parts are named
    ``<category>_<i>``.

    Returns:
        A :class:`PartLabelled` named ``shapenetpart``; points and normals ``(P, 3)`` float32,
        part ids ``(P,)`` int64 per shape.

    Raises:
        PartDataError: a missing file, a category or synset listed twice, a split entry that
            names an unlisted synset or a missing point file, a row without 7 numbers, a part id
            outside its category's fixed block (the 16) or not a whole number >= 0 (other
            categories), a category of one's own without shapes, with a gap in its ids, sharing
            an id with another category (both named with a file), or ids that leave a gap
            (file, and line where one applies, named).
    """
    root = os.fspath(root)
    entries = _read_categories(root)
    order = {name: i for i, (name, _) in enumerate(SHAPENETPART_CATEGORIES)}
    standard = all(name in order for name, _ in entries)
    if standard:
        blocks = part_blocks(SHAPENETPART_PARTS)
        synsets = {synset: order[name] for name, synset in entries}
    else:
        blocks = None
        synsets = {synset: i for i, (_, synset) in enumerate(entries)}
    entries_of = {split: _read_split(root, split, synsets) for split in SPLIT_FILES}
    splits = {}
    for split, listed in entries_of.items():
        shapes = []
        for synset, token in listed:
            category = synsets[synset]
            points, normals, part = _read_points(os.path.join(root, synset, f"{token}.txt"),
                                                 blocks[category] if blocks else None)
            shapes.append(PartCloud(points, normals, part, category, f"{synset}/{token}"))
        splits[split] = shapes
    notes = ["train: train + val split files; test: test split file"]
    if standard:
        categories = [name for name, _ in SHAPENETPART_CATEGORIES]
        names = [f"{name}_{j}" for name, count in zip(categories, SHAPENETPART_PARTS)
                 for j in range(count)]
    else:
        blocks = _inferred_blocks(os.path.join(root, "synsetoffset2category.txt"), entries,
                                  splits)
        categories = [name for name, _ in entries]
        names = [""] * (max(block[-1] for block in blocks) + 1)
        for name, block in zip(categories, blocks):
            for j, part in enumerate(block):
                names[part] = f"{name}_{j}"
        notes.append("categories not ShapeNetPart's 16: part ids read from the files ("
                     + ", ".join(f"{name} {block[0]}..{block[-1]}"
                                 for name, block in zip(categories, blocks)) + ")")
    return PartLabelled("shapenetpart", root, categories, blocks, names,
                        PartSplit(splits["train"] + splits["val"]), PartSplit(splits["test"]),
                        notes=notes)
