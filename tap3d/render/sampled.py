"""Any tap3d appearance as a PyTorch3D texture, so that ``HardPhongShader`` can shade it.

PyTorch3D's ``TexturesUV`` holds one image per mesh (or several of one size) and wraps by
clamping; :class:`~tap3d.render.textures.MaterialTextures` holds one image per material at its own
size with repeat or clamp wrapping. :class:`SampledTextures` hands PyTorch3D the texels that
the appearance samples for the covered pixels of the Fragments, so ``--shader pytorch3d`` shows
the same colours as the tap3d shader.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.textures import TexturesBase

__all__ = ["SampledTextures"]


class SampledTextures(TexturesBase):
    """A PyTorch3D texture whose ``sample_textures`` asks a tap3d appearance.

    Args:
        appearance: an object with ``sample(face, bary) -> (M, 3)`` (numpy, see
            :mod:`tap3d.render.textures`).
        num_faces: faces ``F`` of the mesh; a batch of ``N`` copies (``Meshes.extend``) indexes
            faces ``i * F + f`` in packed order.
        copies: meshes in the batch.
    """

    def __init__(self, appearance, num_faces: int, copies: int = 1):
        self.appearance = appearance
        self.num_faces = num_faces
        self.copies = copies
        self.device = torch.device("cpu")
        self._N = copies
        self.valid = torch.ones(copies, dtype=torch.bool)

    def isempty(self) -> bool:
        return False

    def check_shapes(self, batch_size: int, max_num_verts: int, max_num_faces: int) -> bool:
        return batch_size == self.copies and max_num_faces == self.num_faces

    def extend(self, N: int) -> "SampledTextures":
        return SampledTextures(self.appearance, self.num_faces, self.copies * N)

    def to(self, device) -> "SampledTextures":
        return self  # sampling runs on the CPU; texels follow the Fragments' device

    def clone(self) -> "SampledTextures":
        return SampledTextures(self.appearance, self.num_faces, self.copies)

    def detach(self) -> "SampledTextures":
        return self

    def __getitem__(self, index) -> "SampledTextures":
        return SampledTextures(self.appearance, self.num_faces, 1)

    def sample_textures(self, fragments, **kwargs) -> torch.Tensor:
        """Texels ``(N, H, W, K, 3)`` float32 for the Fragments' faces (0 where uncovered)."""
        pix = fragments.pix_to_face
        covered = pix >= 0
        face = (pix[covered] % self.num_faces).cpu().numpy()
        bary = fragments.bary_coords[covered].detach().cpu().numpy()
        texels = torch.zeros(pix.shape + (3,), dtype=torch.float32, device=pix.device)
        texels[covered] = torch.from_numpy(self.appearance.sample(face, bary)).to(pix.device)
        return texels
