"""What a checkpoint paints: the generated views of a dataset's objects (``tap-cli generate``).

For every done object (or the ones asked for) and every stored view, the TAP model of a
checkpoint (a tap3d pre-training run or checkpoint, or the authors' ``*_ckpt_latest.pth`` /
``*_ckpt_best.pth``: :func:`tap3d.train.weights.load_model_weights`) generates the view from
the object's points and the view's camera, without augmentation: the inputs are those of
pre-training's evaluation (:class:`tap3d.train.quality.ViewSet`: the run's point count,
sampling, normalization and seed, no scaling).

Output: a Zarr v3 group with

- ``generated``: float32 ``(object, view, y, x, channel)`` in [0, 1] (RGB), chunked one
  object per chunk;
- ``object_id``: str ``(object,)``, the dataset's ids; ``object_index``: int64 ``(object,)``,
  the objects' indices in the dataset;

and attributes ``checkpoint``, ``dataset``, ``origin`` (``tap3d run`` or ``openpoints``),
``config`` (the model's settings). With ``sheet``, a PNG: per object a row of generated views
over a row of the stored targets (the layout of TAP's Figure 1).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from tap3d.devices import resolve_device
from tap3d.train.weights import build_model, load_model_weights
from tap3d.views.pictures import generated_over_target

__all__ = ["generate"]

#: Objects per chunk of work (their views read once, generated, written).
_CHUNK = 8


@torch.no_grad()
def generate(checkpoint: str | os.PathLike, dataset: str, output: str | os.PathLike,
             sheet: str | os.PathLike | None = None, objects=None, config=None,
             device: str = "auto", batch_size: int = 4, sheet_objects: int = 8, *,
             trust: bool = False) -> dict:
    """Generate every stored view of a dataset's objects with a checkpoint's model.

    Args:
        checkpoint: tap3d run folder or checkpoint, or the authors' whole-model checkpoint.
        dataset: ``tap3d.views`` dataset (path or fsspec URL).
        output: Zarr group to create (module docstring); must not exist.
        sheet: PNG of :func:`~tap3d.views.pictures.generated_over_target` for the first ``sheet_objects`` objects.
        objects: dataset indices of done objects (default: every done object).
        config: a :class:`~tap3d.train.TrainConfig` for the model and its inputs (default: the
            checkpoint's, or for the authors' checkpoints their architecture and tap3d's input
            defaults; :func:`tap3d.train.weights.build_model`).
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: objects per forward pass.
        sheet_objects: objects on the sheet.
        trust: read a checkpoint that names types beyond tensors and numpy values with the
            full unpickler, which runs any code it holds
            (:func:`tap3d.train.torchfile.load_torch_file`).

    Returns:
        ``{"output", "objects", "views", "image_size", "origin", "sheet"}``.

    Raises:
        CheckpointError: without ``trust``, the checkpoint names other types (file and type
            named).
        WeightsError: the checkpoint cannot be read or does not fit.
        FormatError, ValueError: not a dataset, an object that is not done.
        FileExistsError: ``output`` exists.
    """
    import zarr

    from tap3d.train.quality import ViewSet, holdout_split
    from tap3d.views.projection import projection_of
    from tap3d.views.schema import open_views

    group = open_views(dataset)
    num_views, image_size = group["rgb"].shape[1:3]
    weights = load_model_weights(checkpoint, trust=trust)
    model, config = build_model(weights, int(image_size), config, projection_of(group.attrs),
                                group.attrs)
    device = torch.device(resolve_device(device))
    model.to(device)
    objects = holdout_split(dataset, 0.0)[0] if objects is None else np.asarray(objects)
    if os.path.exists(output):
        raise FileExistsError(f"{output}: exists")
    out = zarr.open_group(os.fspath(output), mode="w-", zarr_format=3)
    out.attrs.update({"checkpoint": os.fspath(checkpoint), "dataset": str(dataset),
                      "origin": weights.origin, "config": dataclasses.asdict(config)})
    n, S = len(objects), int(image_size)
    generated = out.create_array("generated", shape=(n, num_views, S, S, 3), dtype="float32",
                                 chunks=(1, num_views, S, S, 3), fill_value=0.0,
                                 dimension_names=("object", "view", "y", "x", "channel"))
    out.create_array("object_id", shape=(n,), dtype=str, fill_value="",
                     dimension_names=("object",))[:] = group["object_id"][:][objects] \
        if n else np.array([], dtype=str)
    out.create_array("object_index", shape=(n,), dtype="int64", fill_value=0,
                     dimension_names=("object",))[:] = objects
    shown: list[tuple[torch.Tensor, torch.Tensor]] = []
    for start in range(0, n, _CHUNK):
        views = ViewSet(dataset, config, objects[start:start + _CHUNK])
        images = views.generate(model, device, batch_size)  # (c, V, 3, S, S)
        generated[start:start + len(views)] = images.permute(0, 1, 3, 4, 2).numpy()
        if sheet and start < sheet_objects:
            shown.append((images[:sheet_objects - start], views.images[:sheet_objects - start]))
    if sheet and shown:
        from PIL import Image

        Image.fromarray(generated_over_target(torch.cat([g for g, _ in shown]),
                                              torch.cat([t for _, t in shown]))).save(sheet)
    return {"output": os.fspath(output), "objects": n, "views": int(num_views),
            "image_size": S, "origin": weights.origin, "sheet": os.fspath(sheet) if sheet
            else None}
