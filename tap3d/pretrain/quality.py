"""Whether the model takes a photo: generated views against their targets."""

from __future__ import annotations

import torch

from tap3d.pretrain.loss import tap_loss

__all__ = ["psnr", "evaluate"]


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1], one value per image.

    Args:
        prediction, target: ``(B, 3, S, S)`` float.

    Returns:
        ``(B,)`` float32, ``-10 log10(MSE)`` (MSE clamped at 1e-10).
    """
    mse = ((prediction.float() - target.float()) ** 2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def evaluate(model, dataset: str, config, device: str = "cpu", batch_size: int = 8) -> dict:
    """Generated views of every done object against their targets, and a baseline.

    Every stored view of every done object is generated from ``config.points`` points
    (the stream's sampling, seed ``config.seed``, no scaling). The baseline is the dataset's mean
    image (the per-pixel mean of all those targets), the best constant prediction in MSE.

    Args:
        model: a :class:`tap3d.models.TAPModel`.
        dataset: dataset path or fsspec URL.
        config: the run's :class:`tap3d.pretrain.TrainConfig`.

    Returns:
        ``{"psnr", "psnr_mean_image", "loss_fg", "loss_bg", "objects", "views"}``: mean PSNR
        (dB) over views of the generated and of the mean image, and TAP's foreground/background
        MSEs of the generated views.
    """
    from tap3d.stream import ViewStream
    from tap3d.views import open_views

    views = open_views(dataset)["rgb"].shape[1]
    stream = ViewStream(dataset, points=config.points, views_per_sample=views,
                        sampling=config.sampling, shuffle=False, scale_range=None,
                        seed=config.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=batch_size)
    generated, targets, masks = [], [], []
    model.eval()
    for batch in loader:
        images = model(batch["features"].to(device), batch["K"].to(device),
                       batch["world_to_camera"].to(device)).float().cpu()
        generated.append(images.flatten(0, 1))
        targets.append(batch["images"].flatten(0, 1).float() / 255.0)
        masks.append(batch["masks"].flatten(0, 1))
    generated, targets, masks = torch.cat(generated), torch.cat(targets), torch.cat(masks)
    mean_image = targets.mean(0, keepdim=True).expand_as(targets)
    losses = tap_loss(generated, targets, masks)
    return {"psnr": float(psnr(generated, targets).mean()),
            "psnr_mean_image": float(psnr(mean_image, targets).mean()),
            "loss_fg": float(losses["loss_fg"]), "loss_bg": float(losses["loss_bg"]),
            "objects": len(stream), "views": len(targets)}
