"""Shading rasterized views into RGB, depth and mask with PyTorch3D.

The shading follows the CLIP2Point supplement, section 5: PyTorch3D ``HardPhongShader`` with a
white background and white light. The light is a point light at each view's camera centre (a
head light) with PyTorch3D's default ambient 0.5, diffuse 0.3 and specular 0.2, so that every
view, the bottom one included, is lit from the front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RenderedViews", "ViewRenderer", "LIGHTS"]

#: Light colours (RGB each) of the head light; recorded in the dataset's ``lights`` attribute.
LIGHTS = {
    "type": "point light at each camera centre",
    "ambient_color": [0.5, 0.5, 0.5],
    "diffuse_color": [0.3, 0.3, 0.3],
    "specular_color": [0.2, 0.2, 0.2],
}


@dataclass
class RenderedViews:
    """The views of one object.

    Attributes:
        rgb: ``(V, S, S, 3)`` uint8, shaded colour; ``background`` where ``mask`` is false.
        mask: ``(V, S, S)`` bool, pixel covered by the object.
        depth: ``(V, S, S)`` float32, view-space z (object units) of the visible surface, 0 where
            not covered.
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


class ViewRenderer:
    """Rasterizer + ``HardPhongShader``, like PyTorch3D's ``MeshRendererWithFragments``.

    Args:
        rasterizer: a backend from :mod:`tap3d.render.rasterize`.
        device: torch device of the shading.
        background: background colour, RGB in [0, 1].

    Views are rasterized in batches of at most ``rasterizer.max_batch_faces`` faces in total
    (mesh faces x views; None: all views at once), which bounds memory on large meshes.
    """

    def __init__(self, rasterizer, device="cpu", background=(1.0, 1.0, 1.0)):
        self.rasterizer = rasterizer
        self.device = device
        self.background = tuple(float(c) for c in background)

    def __call__(self, mesh, cameras) -> RenderedViews:
        """Render one mesh from every camera.

        Args:
            mesh: a :class:`tap3d.render.meshes.Mesh`.
            cameras: PyTorch3D cameras, a batch of ``V``.

        Returns:
            :class:`RenderedViews` with ``V`` views.
        """
        import torch
        from pytorch3d.renderer import BlendParams, HardPhongShader, PointLights

        meshes = mesh.to_meshes(self.device)
        num_views = len(cameras)
        limit = getattr(self.rasterizer, "max_batch_faces", None)
        per_batch = num_views if limit is None else \
            max(1, min(num_views, limit // max(1, mesh.num_faces)))
        rgb, mask, depth = [], [], []
        with torch.no_grad():
            for start in range(0, num_views, per_batch):
                index = torch.arange(start, min(start + per_batch, num_views))
                cams = cameras[index]
                batch = meshes.extend(len(index))
                fragments = self.rasterizer(batch, cams)
                lights = PointLights(
                    device=self.device,
                    location=cams.get_camera_center(),
                    ambient_color=(LIGHTS["ambient_color"],),
                    diffuse_color=(LIGHTS["diffuse_color"],),
                    specular_color=(LIGHTS["specular_color"],),
                )
                shader = HardPhongShader(
                    device=self.device,
                    cameras=cams,
                    lights=lights,
                    blend_params=BlendParams(background_color=self.background),
                )
                images = shader(fragments, batch)[..., :3]
                covered = fragments.pix_to_face[..., 0] >= 0
                rgb.append((images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
                mask.append(covered.cpu())
                depth.append(torch.where(covered, fragments.zbuf[..., 0], 0.0).cpu())
        return RenderedViews(
            rgb=torch.cat(rgb).numpy(),
            mask=torch.cat(mask).numpy(),
            depth=torch.cat(depth).numpy().astype(np.float32),
        )
