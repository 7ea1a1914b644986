"""Ray casting of simple solids through the pixels of a pinhole camera.

Every pixel ``(u, v)`` casts the ray ``t * ((u - cx) / fx, (v - cy) / fy, 1)`` from the
optical centre, so the ray parameter ``t`` *is* the depth (z) of the point it reaches.
Each intersection works on the pixels of the solid's projected bounding box only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcert_ros.sim.camera import CameraModel

NEAR_Z_M = 0.3          #: surfaces nearer than this (metres of depth) are not drawn
MAX_OBJECT_Z_M = 180.0  #: solids entirely beyond this depth are skipped

Region = tuple[int, int, int, int]   # rows r0:r1, columns c0:c1


@dataclass
class BoxHit:
    """Where the rays of ``region`` meet a box.

    :ivar hit: bool mask over the region.
    :ivar depth: depth of the entry point (meaningful where ``hit``).
    :ivar local: entry point in box coordinates ``(across, down, along)``, metres from
        the centre.
    :ivar axis: box axis of the entered face: 0 = side, 1 = top/bottom, 2 = front/back.
    :ivar right, forward: the box's horizontal axes in camera coordinates.
    """

    region: Region
    hit: np.ndarray
    depth: np.ndarray
    local: tuple[np.ndarray, np.ndarray, np.ndarray]
    axis: np.ndarray
    right: np.ndarray
    forward: np.ndarray

    def normal_dot(self, direction: np.ndarray) -> np.ndarray:
        """Dot product of each entered face's outward normal with a camera-frame vector."""
        across, down, along = self.local
        side = np.sign(across) * (self.axis == 0) * (self.right @ direction)
        end = np.sign(along) * (self.axis == 2) * (self.forward @ direction)
        vertical = np.sign(down) * (self.axis == 1) * direction[1]
        return side + end + vertical


@dataclass
class EllipsoidHit:
    """Where the rays of ``region`` meet an axis-aligned ellipsoid.

    :ivar rows, cols: region-relative indices of the hit pixels.
    :ivar depth: ``(region)`` depth of the entry point, ``inf`` where missed.
    :ivar offset: ``(3, n)`` entry points minus the centre, camera axes.
    :ivar normal: ``(3, n)`` unit outward normals there.
    """

    region: Region
    hit: np.ndarray
    depth: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    offset: np.ndarray
    normal: np.ndarray


class CameraRays:
    """The per-pixel rays of ``camera`` and the solids they can be intersected with."""

    def __init__(self, camera: CameraModel) -> None:
        self.camera = camera
        self.col_slope = camera.column_slopes()
        self.row_slope = camera.row_slopes()

    def region(self, corners: np.ndarray) -> Region | None:
        """Pixels that may see a solid with these camera-frame bounding corners ``(8, 3)``.

        Corners behind the near plane stretch the region to the image border on their
        side, so the region always contains every pixel of the visible part.
        """
        cam = self.camera
        z = corners[:, 2]
        if z.max() < NEAR_Z_M or z.min() > MAX_OBJECT_Z_M:
            return None
        front = z >= NEAR_Z_M
        uv = cam.project(corners[front])
        c0, c1 = np.floor(uv[:, 0].min()), np.ceil(uv[:, 0].max()) + 1
        r0, r1 = np.floor(uv[:, 1].min()), np.ceil(uv[:, 1].max()) + 1
        for x, y in corners[~front][:, :2]:
            c0, c1 = (c0, cam.width) if x > 0 else (0, c1)
            r0, r1 = (r0, cam.height) if y > 0 else (0, r1)
        c0, c1 = int(max(c0, 0)), int(min(c1, cam.width))
        r0, r1 = int(max(r0, 0)), int(min(r1, cam.height))
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def box(self, center: np.ndarray, half: np.ndarray, yaw: float) -> BoxHit | None:
        """Slab-test intersection with a box of half sizes ``(across, vertical, along)``
        centred at ``center`` and turned by ``yaw`` (radians, clockwise seen from above)
        about the vertical axis; None when no pixel sees it."""
        c, s = np.cos(yaw), np.sin(yaw)
        right = np.array([c, 0.0, -s])
        forward = np.array([s, 0.0, c])
        up = np.array([0.0, 1.0, 0.0])
        signs = np.array([(i, j, k) for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
        corners = center + (signs * half) @ np.stack([right, up, forward])
        region = self.region(corners)
        if region is None:
            return None
        r0, r1, c0, c1 = region
        a = self.col_slope[c0:c1][None, :]
        b = self.row_slope[r0:r1][:, None]
        o = -np.asarray(center, dtype=np.float64)
        ox, oy, oz = o @ right, o[1], o @ forward
        dx = a * right[0] + right[2]
        dz = a * forward[0] + forward[2]
        with np.errstate(divide='ignore', invalid='ignore'):
            tx1, tx2 = (-half[0] - ox) / dx, (half[0] - ox) / dx
            ty1, ty2 = (-half[1] - oy) / b, (half[1] - oy) / b
            tz1, tz2 = (-half[2] - oz) / dz, (half[2] - oz) / dz
            tminx, tmaxx = np.minimum(tx1, tx2), np.maximum(tx1, tx2)
            tminy, tmaxy = np.minimum(ty1, ty2), np.maximum(ty1, ty2)
            tminz, tmaxz = np.minimum(tz1, tz2), np.maximum(tz1, tz2)
            near = np.maximum(np.maximum(tminx, tminy), tminz)
            far = np.minimum(np.minimum(tmaxx, tmaxy), tmaxz)
            hit = (near <= far) & (near > NEAR_Z_M)
        if not hit.any():
            return None
        axis = np.where(near == tminx, 0, np.where(near == tminy, 1, 2))
        local = (ox + near * dx, oy + near * b, oz + near * dz)
        return BoxHit(region, hit, near, local, axis, right, forward)

    def ellipsoid(self, center: np.ndarray, radii: np.ndarray) -> EllipsoidHit | None:
        """Intersection with the axis-aligned ellipsoid ``sum(((p - center) / radii)**2) = 1``;
        None when no pixel sees it."""
        signs = np.array([(i, j, k) for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
        region = self.region(center + signs * radii)
        if region is None:
            return None
        r0, r1, c0, c1 = region
        a = self.col_slope[c0:c1][None, :]
        b = self.row_slope[r0:r1][:, None]
        inv = 1.0 / radii
        qa = (a * inv[0]) ** 2 + (b * inv[1]) ** 2 + inv[2] ** 2
        qb = -2 * (a * center[0] * inv[0] ** 2 + b * center[1] * inv[1] ** 2
                   + center[2] * inv[2] ** 2)
        qc = np.sum((center * inv) ** 2) - 1
        disc = qb * qb - 4 * qa * qc
        hit = disc >= 0
        if not hit.any():
            return None
        depth = np.where(hit, (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa), np.inf)
        hit &= depth > NEAR_Z_M
        rows, cols = np.nonzero(hit)
        d = depth[rows, cols]
        offset = np.stack([a[0, cols] * d - center[0], b[rows, 0] * d - center[1],
                           d - center[2]])
        normal = offset * (inv ** 2)[:, None]
        normal /= np.linalg.norm(normal, axis=0) + 1e-12
        return EllipsoidHit(region, hit, depth, rows, cols, offset, normal)
