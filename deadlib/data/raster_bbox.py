"""A vectorised CPU rasteriser: every triangle is tested only against the pixels of its own bounding box.

pytorch3d's CPU rasteriser (``deadlib.data.raster.rasterize``) visits every pixel and, for each, every
triangle of its tile: at 128 px a tracked face costs ≈ 16 ms a frame on 2 cores, the largest share of
dubbing (benchmarks/bench_dub.py). Face meshes have many small triangles, so the pixels a triangle
can cover — its bounding box — are a few dozen; enumerating those (triangle, pixel) pairs for a whole
batch of meshes at once is a handful of tensor operations, with no Python loop over tiles or meshes.

Same conventions and result as ``raster.rasterize`` (benchmarks/bench_raster.py measures the agreement
on real tracked meshes): the pixel (i, j) samples the point (j + 0.5, i + 0.5) of the pixel frame; a
pixel is covered when its centre lies strictly inside the triangle (all three barycentric coordinates
> 0: a centre exactly on an edge belongs to neither side, as in pytorch3d with ``blur_radius`` 0);
barycentrics are affine (``perspective_correct=False``); the nearest surface (smallest z) wins and a
depth tie goes to the lower face index. The arithmetic is the same up to float rounding in another
coordinate frame, so a pixel centre within rounding of an edge may fall to the neighbouring triangle.
"""

from __future__ import annotations

import numpy as np
import torch

from deadlib.data.facemesh import load_topology
from deadlib.data.raster import Fragments


def _edge(ax, ay, bx, by, px, py):
    """Twice the signed area of (a, b, p); broadcasts."""
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def rasterize_bbox(verts_pix: torch.Tensor, faces: torch.Tensor, size: int) -> Fragments:
    """Rasterise B meshes (B, V, 3) in pixel space sharing ``faces`` (F, 3) → Fragments (as ``raster.rasterize``)."""
    B, V, _ = verts_pix.shape
    faces = faces.long()
    F_ = faces.shape[0]
    tri = verts_pix.float()[:, faces]  # (B, F, 3 corners, 3 xyz)
    lo, hi = tri[..., :2].amin(dim=2), tri[..., :2].amax(dim=2)  # (B, F, 2) bounding box in px
    # pixel index range whose centres (k + 0.5) can fall inside [lo, hi]
    first = torch.ceil(lo - 0.5).clamp(min=0).long()  # (B, F, 2)
    last = torch.floor(hi - 0.5).clamp(max=size - 1).long()
    extent = last - first + 1  # (B, F, 2) columns, rows; ≤ 0 → no pixel
    x0, y0, x1, y1, x2, y2 = (tri[..., c, a] for c in range(3) for a in range(2))  # each (B, F)
    area = _edge(x0, y0, x1, y1, x2, y2)  # (B, F) twice the signed area
    live = (extent > 0).all(-1) & (area.abs() > 1e-12)
    # triangles are grouped by the power-of-two size of their bounding box (columns × rows), so that the
    # padded (triangle, pixel) grid of each group wastes at most ≈ 3/4 of its slots; an extent is at most
    # ``size`` (first/last are clipped to the image), so its exponent is below ``base``
    log2 = torch.ceil(torch.log2(extent.clamp(min=1).float())).long()  # (B, F, 2)
    base = size.bit_length() + 1

    pix_ids, depths, face_ids, barys = [], [], [], []
    groups = (log2[..., 0] * base + log2[..., 1]).masked_fill(~live, -1)  # (B, F)
    for group in torch.unique(groups).tolist():
        if group < 0:
            continue
        b, f = torch.nonzero(groups == group, as_tuple=True)  # (n,) triangles of this group
        w, h = 1 << (group // base), 1 << (group % base)
        dy, dx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        px = first[b, f, 0][:, None] + dx.reshape(1, -1)  # (n, h*w) pixel columns
        py = first[b, f, 1][:, None] + dy.reshape(1, -1)
        in_box = (px <= last[b, f, 0][:, None]) & (py <= last[b, f, 1][:, None])
        cx, cy = px.float() + 0.5, py.float() + 0.5  # pixel centres
        ax, ay, bx, by, qx, qy = (c[b, f][:, None] for c in (x0, y0, x1, y1, x2, y2))
        a = area[b, f][:, None]
        w0 = _edge(bx, by, qx, qy, cx, cy) / a  # (n, h*w) barycentrics; the sign of a makes them > 0 inside
        w1 = _edge(qx, qy, ax, ay, cx, cy) / a
        w2 = _edge(ax, ay, bx, by, cx, cy) / a
        inside = in_box & (w0 > 0) & (w1 > 0) & (w2 > 0)
        k, j = torch.nonzero(inside, as_tuple=True)  # (m,) covered (triangle, pixel) pairs
        bk, fk = b[k], f[k]
        z = tri[bk, fk, :, 2]  # (m, 3)
        bary = torch.stack([w0[k, j], w1[k, j], w2[k, j]], dim=-1)  # (m, 3)
        pix_ids.append((bk * size + py[k, j]) * size + px[k, j])
        depths.append((bary * z).sum(-1))
        face_ids.append(bk * F_ + fk)
        barys.append(bary)

    pix_to_face = torch.full((B * size * size,), -1, dtype=torch.long)
    bary_out = torch.full((B * size * size, 3), -1.0)  # -1 off the mesh, as pytorch3d
    depth_out = torch.full((B * size * size,), -1.0)
    if pix_ids:
        pix, depth, face, bary = (torch.cat(x) for x in (pix_ids, depths, face_ids, barys))
        # z-buffer: the nearest candidate of each pixel, then the lowest face index among equal depths
        nearest = torch.full((B * size * size,), float("inf")).scatter_reduce(0, pix, depth, "amin")
        front = depth == nearest[pix]
        pix, depth, face, bary = pix[front], depth[front], face[front], bary[front]
        lowest = torch.full((B * size * size,), B * F_, dtype=torch.long).scatter_reduce(0, pix, face, "amin")
        win = face == lowest[pix]
        pix = pix[win]
        pix_to_face[pix], bary_out[pix], depth_out[pix] = face[win], bary[win], depth[win]
    offsets = (torch.arange(B) * V)[:, None, None]  # packed vertex offset of each mesh
    return Fragments(pix_to_face=pix_to_face.reshape(B, size, size), bary=bary_out.reshape(B, size, size, 3),
                     depth=depth_out.reshape(B, size, size), faces_packed=(faces[None] + offsets).reshape(-1, 3))


def posed_mean_faces(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 468, 3) the project's mean face in pixel space at random scale, turn and shift, partly off the
    image: meshes with every case a rasteriser meets (tests and benchmarks/bench_raster.py)."""
    rng = np.random.default_rng(seed)
    mean = load_topology().mean_shape.astype(np.float64) * np.array([1.0, -1.0, -1.0])  # y down, z away
    mean = (mean - mean.mean(0)) / np.ptp(mean[:, 1])
    out = []
    for _ in range(n):
        yaw, pitch, roll = rng.uniform(-0.6, 0.6, 3)
        rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
        ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
        scale = rng.uniform(0.5, 1.2) * size
        out.append(mean @ (rz @ ry @ rx).T * scale + np.array([*rng.uniform(0.2, 0.8, 2) * size, 0.0]))
    return torch.as_tensor(np.stack(out), dtype=torch.float32)
