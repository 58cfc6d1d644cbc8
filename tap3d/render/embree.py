"""The Embree backend: ray casting through pixel centres (Open3D ``RaycastingScene``).

Part of :mod:`tap3d.render.rasterize` (import it from there), which says what every backend
gives: :meth:`EmbreeRasterizer.covered` (the covered pixels alone, what the renderer reads, as
:class:`~tap3d.render.covered.CoveredPixels`), a callable ``(meshes, cameras) -> Fragments``
and :meth:`EmbreeRasterizer.rasterize_views`.
"""

from __future__ import annotations

from tap3d.render.covered import CUT_LAYERS, CoveredPixels

__all__ = ["EmbreeRasterizer"]

#: Embree rays of recent camera sets, shared by the rasterizers of a process.
_RAY_CACHE: dict = {}


class EmbreeRasterizer:
    """Ray casting through pixel centres with Embree (Open3D ``RaycastingScene``), as Fragments.

    For ``faces_per_pixel=1`` and no blur, rasterization finds the nearest face whose projection
    covers each pixel centre, which is the first face hit by the ray from the camera centre
    through that pixel centre. Rays follow PyTorch3D's NDC convention for square images (+X left,
    +Y up, pixel ``(row i, column j)`` at NDC ``(1 - (2 j + 1) / S, 1 - (2 i + 1) / S)``) and are
    unprojected with the cameras' own ``unproject_points``, so every perspective camera class
    works (``FoVPerspectiveCameras``, ``PerspectiveCameras``). Orthographic cameras
    (``OrthographicCameras`` in NDC, ``FoVOrthographicCameras``) get parallel rays along the
    viewing direction, from the plane of view-space z 0 through each pixel centre. Embree's BVH
    makes the cost O(pixels x log faces) instead of PyTorch3D's CPU O(pixels x faces).

    One Embree scene is built per distinct mesh of the batch and reused for all its views (the
    renderer passes one mesh extended to ``V`` views), and all rays go in one call.

    Returns ``Fragments`` like PyTorch3D's ``MeshRasterizer`` with ``faces_per_pixel=1``:
    ``pix_to_face`` ``(N, S, S, 1)`` int64 in packed face indexing (-1 background),
    ``zbuf`` ``(N, S, S, 1)`` float32 view-space z (-1 background), ``bary_coords``
    ``(N, S, S, 1, 3)`` float32 world-space (perspective-correct) barycentrics of the face's
    vertices in order, ``dists`` ``(N, S, S, 1)`` float32 minus the squared NDC distance from the
    pixel centre to the face's nearest edge (-1 background). :meth:`rasterize_views` (one mesh,
    ``N`` cameras) leaves ``dists`` None: no shader here reads it. :meth:`covered` (one mesh,
    ``N`` cameras, what the renderer uses) gives the covered pixels alone.

    Args:
        image_size: side ``S`` of the square images, pixels.
        threads: Embree threads; 0 uses all cores.

    """

    name = "embree"
    max_batch_faces = None  # all views in one call, one scene

    def __init__(self, image_size: int, threads: int = 0):
        self.image_size = image_size
        self.threads = threads

    def _pixel_ndc(self):
        """``(S * S, 2)`` NDC (x, y) of the pixel centres, row-major (PyTorch3D: +X left, +Y up)."""
        import torch

        S = self.image_size
        ndc = 1.0 - (2.0 * torch.arange(S, dtype=torch.float32) + 1.0) / S
        y, x = torch.meshgrid(ndc, ndc, indexing="ij")
        return torch.stack([x.reshape(-1), y.reshape(-1)], -1)

    def _rays(self, cameras):
        """World-space ray origins and unit directions, ``(N, S * S, 3)`` each, row-major pixels.

        ``FoVPerspectiveCameras`` with aspect ratio 1 (every layout's) get their rays in closed
        form: view direction ``(x tan(fov / 2), y tan(fov / 2), 1)`` for NDC ``(x, y)``, turned
        to the world by ``R^T`` from the centre ``-T R^T``; other cameras go through their
        ``unproject_points``. Orthographic cameras: origins on the view plane z = 0 (NDC
        unprojected there), every direction the view's +Z.
        """
        import math

        import torch
        from pytorch3d.renderer import FoVPerspectiveCameras

        S, N = self.image_size, len(cameras)
        xy = self._pixel_ndc()
        if not cameras.is_perspective():
            plane = torch.cat([xy.expand(N, S * S, 2), torch.zeros(N, S * S, 1)], -1)
            origin = cameras.unproject_points(plane, world_coordinates=True)
            direction = cameras.R.float()[:, :, 2][:, None, :].expand(N, S * S, 3)
            return origin, torch.nn.functional.normalize(direction, dim=-1)
        aspect = torch.as_tensor(cameras.aspect_ratio, dtype=torch.float32)
        if isinstance(cameras, FoVPerspectiveCameras) and bool((aspect == 1).all()):
            fov = torch.as_tensor(cameras.fov, dtype=torch.float32).expand(N)
            half = torch.tan((fov * (math.pi / 180.0) if cameras.degrees else fov) / 2)
            view = torch.cat([xy.expand(N, S * S, 2) * half[:, None, None],
                              torch.ones(N, S * S, 1)], -1)
            R, T = cameras.R.float(), cameras.T.float()
            direction = view @ R.transpose(1, 2)
            origin = -(T[:, None, :] @ R.transpose(1, 2))
            return origin.expand(N, S * S, 3), torch.nn.functional.normalize(direction, dim=-1)
        ones = torch.ones(N, S * S, 1)
        far = cameras.unproject_points(torch.cat([xy.expand(N, S * S, 2), ones], -1),
                                       world_coordinates=True)
        origin = cameras.get_camera_center()[:, None, :].expand(N, S * S, 3)
        return origin, torch.nn.functional.normalize(far - origin, dim=-1)

    def _ray_set(self, cameras):
        """Rays as Embree takes them, ``(N * S * S, 6)`` float32 (origin, unit direction), and
        the view z per unit of ray length ``(N, S * S)``; cached for the last few camera sets
        (a build's layout is the same for every object)."""
        import numpy as np

        key = (self.image_size, type(cameras).__name__, cameras.R.numpy().tobytes(),
               cameras.T.numpy().tobytes()) + tuple(
            np.asarray(getattr(cameras, name, 0.0), np.float32).tobytes()
            for name in ("fov", "focal_length", "principal_point", "min_x", "max_y"))
        if key not in _RAY_CACHE:
            origin, direction = self._rays(cameras)
            zscale = (direction * cameras.R.float()[:, None, :, 2]).sum(-1)
            rays = np.concatenate([origin.numpy(), direction.numpy()], -1).reshape(-1, 6)
            if len(_RAY_CACHE) >= 4:
                _RAY_CACHE.clear()
            _RAY_CACHE[key] = (np.ascontiguousarray(rays, np.float32), zscale.numpy())
        return _RAY_CACHE[key]

    def _scene(self, verts, faces):
        """One mesh's Embree scene."""
        import numpy as np
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene(nthreads=self.threads)
        scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(verts.numpy(), np.float32)),
                            o3d.core.Tensor(faces.numpy().astype(np.uint32)))
        return scene

    def _cast(self, scene, rays):
        """First hits of ``(R, 6)`` rays in a scene: face ``(R,)`` uint32, distance ``(R,)``
        float32 (inf: no hit) and the hit's (u, v) ``(R, 2)`` float32, numpy arrays."""
        import open3d as o3d

        hits = scene.cast_rays(o3d.core.Tensor(rays), nthreads=self.threads)
        return (hits["primitive_ids"].numpy(), hits["t_hit"].numpy(),
                hits["primitive_uvs"].numpy())

    def covered(self, verts, faces, cameras, cut=None) -> CoveredPixels:
        """One mesh seen by every camera, covered pixels only (what the renderer reads).

        Only rays through the pixels inside each view's projection of the mesh's bounding box
        are cast (all rays when a box corner is not in front of a camera).

        Args:
            verts: ``(V, 3)`` float32 tensor; faces: ``(F, 3)`` int64 tensor.
            cameras: ``N`` perspective or orthographic cameras.
            cut: ``cut(face, bary) -> (M,) bool``: surface points to see through
                (``alphaMode: MASK``); a ray that hits one goes on from just past it, through
                at most :data:`~tap3d.render.covered.CUT_LAYERS` surfaces.

        Returns:
            :class:`~tap3d.render.covered.CoveredPixels`: ``pixel`` ``(M,)`` int64 flat index
            into ``(N, S, S)``, ``face`` ``(M,)`` int64, ``bary`` ``(M, 3)`` float32, ``depth``
            ``(M,)`` float32 view-space z and ``direction`` ``(M, 3)`` float32 unit ray
            directions (camera to surface, world frame), numpy.
        """
        import numpy as np


        cameras = cameras.to("cpu")
        rays, zscale = self._ray_set(cameras)
        window = self._window(verts.detach().cpu().numpy(), cameras)
        if window is not None:
            rays = rays[window]
        scene = self._scene(verts.detach().cpu(), faces.cpu())
        face, t_hit, uv = self._cast(scene, rays)
        if cut is not None:
            face, t_hit, uv = self._peel(scene, rays, face, t_hit, uv, cut)
        hit = np.flatnonzero(np.isfinite(t_hit))
        pixel = hit if window is None else window[hit]
        uv = uv[hit]
        bary = np.empty((len(hit), 3), np.float32)
        bary[:, 1:] = uv
        bary[:, 0] = 1.0 - uv[:, 0] - uv[:, 1]
        return CoveredPixels(pixel, face[hit].astype(np.int64), bary,
                             t_hit[hit] * zscale.reshape(-1)[pixel], rays[hit, 3:])

    def _peel(self, scene, rays, face, t_hit, uv, cut):
        """The first hits of ``rays`` that ``cut`` keeps: a cut hit's ray is cast again from
        just past it (its distance accumulated), :data:`CUT_LAYERS` times at most."""
        import numpy as np

        t_hit = t_hit.copy()
        for _ in range(CUT_LAYERS):
            hit = np.flatnonzero(np.isfinite(t_hit))
            bary = np.stack([1.0 - uv[hit, 0] - uv[hit, 1], uv[hit, 0], uv[hit, 1]], 1)
            again = hit[cut(face[hit].astype(np.int64), bary.astype(np.float32))]
            if not len(again):
                return face, t_hit, uv
            start = t_hit[again] + np.float32(1e-5)
            moved = rays[again].copy()
            moved[:, :3] += moved[:, 3:] * start[:, None]
            f, t, u = self._cast(scene, moved)
            face[again], t_hit[again], uv[again] = f, t + start, u
        hit = np.flatnonzero(np.isfinite(t_hit))  # still cut after the last layer: nothing
        bary = np.stack([1.0 - uv[hit, 0] - uv[hit, 1], uv[hit, 0], uv[hit, 1]], 1)
        t_hit[hit[cut(face[hit].astype(np.int64), bary.astype(np.float32))]] = np.inf
        return face, t_hit, uv

    def _window(self, verts, cameras):
        """Flat indices into ``(N, S, S)`` of the pixels inside each view's projection of the
        bounding box of ``verts`` (one pixel of margin), or None (not ``FoVPerspectiveCameras``
        of aspect ratio 1 nor ``OrthographicCameras`` in NDC, or a box corner not in front of a
        camera)."""
        import itertools
        import math

        import numpy as np
        from pytorch3d.renderer import FoVPerspectiveCameras, OrthographicCameras

        S, N = self.image_size, len(cameras)
        lo, hi = verts.min(0), verts.max(0)
        corners = np.array(list(itertools.product(*zip(lo, hi))), np.float64)  # (8, 3)
        view = corners[None] @ cameras.R.double().numpy() + cameras.T.double().numpy()[:, None]
        if isinstance(cameras, OrthographicCameras) and cameras.in_ndc():
            ndc = view[..., :2] * cameras.focal_length.double().numpy()[:, None] + \
                cameras.principal_point.double().numpy()[:, None]
        elif isinstance(cameras, FoVPerspectiveCameras) and \
                bool((np.asarray(cameras.aspect_ratio) == 1).all()):
            if not (view[..., 2] > 1e-6).all():
                return None
            fov = np.broadcast_to(np.asarray(cameras.fov, np.float64), (N,))
            half = np.tan((np.radians(fov) if cameras.degrees else fov) / 2)
            ndc = view[..., :2] / (view[..., 2:] * half[:, None, None])
        else:
            return None
        # pixel j's centre is at NDC 1 - (2 j + 1) / S (PyTorch3D: +X left, +Y up)
        col, row = ((1 - ndc[..., 0]) * S - 1) / 2, ((1 - ndc[..., 1]) * S - 1) / 2
        parts = []
        for n in range(N):
            c0, c1 = (int(np.clip(f(c), 0, S - 1)) for f, c in
                      ((lambda x: math.floor(x) - 1, col[n].min()),
                       (lambda x: math.ceil(x) + 1, col[n].max())))
            r0, r1 = (int(np.clip(f(r), 0, S - 1)) for f, r in
                      ((lambda x: math.floor(x) - 1, row[n].min()),
                       (lambda x: math.ceil(x) + 1, row[n].max())))
            rows, cols = np.arange(r0, r1 + 1), np.arange(c0, c1 + 1)
            parts.append((n * S * S + rows[:, None] * S + cols[None, :]).reshape(-1))
        return np.concatenate(parts)

    def _fragments(self, face, t_hit, uv, zscale, dists, offset, device):
        """Fragments ``(N, S, S, 1)`` from the hits of ``N`` views (``offset`` ``(N, 1)`` or a
        number added to covered faces)."""
        import numpy as np
        import torch
        from pytorch3d.renderer.mesh.rasterizer import Fragments

        S, N = self.image_size, zscale.shape[0]
        t_hit, uv = t_hit.reshape(N, -1), uv.reshape(N, -1, 2)
        covered = np.isfinite(t_hit)
        face = face.reshape(N, -1).astype(np.int64)
        zbuf = np.where(covered, t_hit * zscale, np.float32(-1.0))
        bary = np.empty(face.shape + (3,), np.float32)
        bary[..., 1:] = uv
        bary[..., 0] = 1.0 - uv[..., 0] - uv[..., 1]
        bary[~covered] = -1.0
        packed = np.where(covered, face + offset, -1)
        shape = (N, S, S, 1)
        return Fragments(
            pix_to_face=torch.from_numpy(packed).reshape(shape).to(device),
            zbuf=torch.from_numpy(zbuf).reshape(shape).to(device),
            bary_coords=torch.from_numpy(bary).reshape(shape + (3,)).to(device),
            dists=None if dists is None else dists.reshape(shape).to(device),
        )

    def __call__(self, meshes, cameras):
        import numpy as np
        import torch

        N = len(meshes)
        cameras = cameras.to("cpu")
        rays, zscale = self._ray_set(cameras)
        P = zscale.shape[1]
        verts_list = [v.detach().cpu() for v in meshes.verts_list()]
        faces_list = [f.cpu() for f in meshes.faces_list()]
        first_face = meshes.mesh_to_faces_packed_first_idx().cpu().numpy()
        # one scene per distinct mesh, consecutive copies of one mesh share it
        groups: list[list[int]] = []
        for i in range(N):
            same = groups and torch.equal(verts_list[i], verts_list[groups[-1][0]]) and \
                torch.equal(faces_list[i], faces_list[groups[-1][0]])
            groups[-1].append(i) if same else groups.append([i])
        face = np.zeros((N, P), np.uint32)
        t_hit = np.full((N, P), np.inf, np.float32)
        uv = np.zeros((N, P, 2), np.float32)
        views = rays.reshape(N, P, 6)
        for group in groups:
            hit = self._cast(self._scene(verts_list[group[0]], faces_list[group[0]]),
                             np.ascontiguousarray(views[group].reshape(-1, 6)))
            face[group], t_hit[group], uv[group] = (a.reshape((len(group), P) + a.shape[1:])
                                                    for a in hit)
        covered = np.isfinite(t_hit)
        dists = self._edge_dists(meshes, cameras, torch.from_numpy(
            np.where(covered, face.astype(np.int64), -1)), torch.from_numpy(covered))
        return self._fragments(face, t_hit, uv, zscale, dists, first_face[:, None],
                               meshes.device)

    def rasterize_views(self, verts, faces, cameras):
        """One mesh seen by every camera: one Embree scene, all rays in one call, no copies
        of the mesh; ``dists`` is None (no shader here reads it)."""
        device = cameras.device
        cameras = cameras.to("cpu")
        rays, zscale = self._ray_set(cameras)
        face, t_hit, uv = self._cast(self._scene(verts.detach().cpu(), faces.cpu()), rays)
        return self._fragments(face, t_hit, uv, zscale, None, 0, device)

    def _edge_dists(self, meshes, cameras, face, covered):
        """Minus the squared NDC distance from each covered pixel centre to its face's edges."""
        import torch

        S, N = self.image_size, len(meshes)
        pixel = self._pixel_ndc()
        projected = cameras.transform_points(meshes.verts_padded())[..., :2].cpu()  # (N, V, 2)
        view, pix = covered.nonzero(as_tuple=True)
        corner = meshes.faces_padded().cpu()[view, face[view, pix]]  # (M, 3) vertex indices
        tri = projected[view[:, None], corner]  # (M, 3, 2)
        a, b = tri, tri.roll(-1, dims=1)
        ab, p = b - a, pixel[pix][:, None, :]
        t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-20)).clamp(0, 1)
        dists = torch.full((N, S * S), -1.0)
        dists[view, pix] = -((p - a - t[..., None] * ab) ** 2).sum(-1).min(-1).values
        return dists
