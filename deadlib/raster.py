"""Batched mesh rasterisation with pytorch3d in *pixel* coordinates.

Every mesh in this project (tracked faces, synthetic heads) lives in the image's own pixel
frame: x to the right, y down, z = depth (larger = farther from the camera), for a square
image of ``size`` pixels. ``rasterize`` converts that to pytorch3d's NDC convention (+X left,
+Y up) and calls the C++ rasteriser directly, so no camera object is needed and UVs/masks
land exactly on the pixels the tracker measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch3d.ops import interpolate_face_attributes
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes


@dataclass
class Fragments:
    """Which triangle covers each pixel and where inside it."""

    pix_to_face: torch.Tensor  # (B, S, S) long, packed face index, -1 where empty
    bary: torch.Tensor  # (B, S, S, 3) barycentric coordinates
    depth: torch.Tensor  # (B, S, S) z of the visible surface, -1 where empty
    faces_packed: torch.Tensor  # (sum F, 3) long, vertex indices into the packed (B*V) vertices

    @property
    def mask(self) -> torch.Tensor:
        """(B, S, S) bool: pixel is covered by the mesh."""
        return self.pix_to_face >= 0


def pixels_to_ndc(verts_pix: torch.Tensor, size: int) -> torch.Tensor:
    """(B, V, 3) pixel-frame vertices → pytorch3d NDC (+X left, +Y up, z kept, shifted > 0)."""
    x = 1.0 - (2.0 * verts_pix[..., 0]) / size  # pixel centre j+0.5 → ndc of pytorch3d's pixel j
    y = 1.0 - (2.0 * verts_pix[..., 1]) / size
    # Keep depth order; the rasteriser drops faces behind z=0, so shift into positive range.
    z = verts_pix[..., 2] / size + 10.0
    return torch.stack([x, y, z], dim=-1)


def rasterize(verts_pix: torch.Tensor, faces: torch.Tensor, size: int,
              faces_per_batch: list[torch.Tensor] | None = None) -> Fragments:
    """Rasterise B meshes sharing ``faces`` (F, 3) with vertices (B, V, 3) in pixel space.

    ``faces_per_batch`` optionally gives a different face list per mesh (e.g. a closed mouth
    in one frame, an open one in the next). Returns the nearest surface per pixel.
    """
    verts_ndc = pixels_to_ndc(verts_pix.float(), size)
    face_list = faces_per_batch or [faces] * verts_ndc.shape[0]
    meshes = Meshes(verts=list(verts_ndc), faces=[f.long() for f in face_list])
    pix_to_face, zbuf, bary, _ = rasterize_meshes(
        meshes, image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=0,
        perspective_correct=False, cull_backfaces=False,
    )
    depth = torch.where(pix_to_face[..., 0] >= 0, (zbuf[..., 0] - 10.0) * size, -torch.ones_like(zbuf[..., 0]))
    return Fragments(pix_to_face=pix_to_face[..., 0], bary=bary[..., 0, :], depth=depth,
                     faces_packed=meshes.faces_packed())


def interpolate(frags: Fragments, vert_attrs: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes (B, V, D) or (V, D) over the pixels → (B, S, S, D), 0 off-mesh."""
    B = frags.pix_to_face.shape[0]
    if vert_attrs.dim() == 2:
        vert_attrs = vert_attrs.unsqueeze(0).expand(B, -1, -1)
    packed_attrs = torch.cat(list(vert_attrs), dim=0)  # (sum V, D)
    face_attrs = packed_attrs[frags.faces_packed]  # (sum F, 3, D)
    out = interpolate_face_attributes(frags.pix_to_face[..., None], frags.bary[..., None, :], face_attrs)
    return out[..., 0, :]
