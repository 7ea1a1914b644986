"""Cast shadows on the flat ground of one frame, drawn in road coordinates."""
from __future__ import annotations

import cv2
import numpy as np

from mmcert_ros.sim import scene as sc

SHADOW_RES_M = 0.1           #: size of a shadow-map cell along and across the road
SHADOW_HALF_WIDTH_M = 40.0   #: the map covers lateral offsets within this of the centreline
SHADOW_AHEAD_M = 170.0       #: and arc lengths from 15 m behind to this far ahead


class ShadowMap:
    """Cast shadows on the ground, drawn in road coordinates ``(l, s)`` for one frame.

    Buildings, tree lines, trees, poles and vehicles project their silhouettes along the
    sun direction onto the flat road (anti-aliased, 0.1 m cells, up to
    ``SHADOW_AHEAD_M`` ahead); ``lookup`` returns the shadow fraction in ``[0, 1]``.
    """

    def __init__(self, world, ego, lighting, chunks, vehicles) -> None:
        self.enabled = lighting.shadow_strength > 0 and lighting.direct > 0
        res = SHADOW_RES_M
        self.origin = np.floor((ego.s - 15.0) / res) * res   #: arc length of canvas row 0
        if not self.enabled:
            return
        end = ego.s + SHADOW_AHEAD_M
        canvas = np.zeros((int((end - self.origin) / res), int(2 * SHADOW_HALF_WIDTH_M / res)),
                          np.uint8)
        cot = 1.0 / np.tan(lighting.sun_elevation)

        def displacement(s):
            """Ground shift per metre of height, ``(dl, ds)``, for objects at ``s``."""
            rel = lighting.sun_azimuth - world.heading(np.asarray(s, dtype=np.float64))
            return -np.sin(rel) * cot, -np.cos(rel) * cot

        def fixed(lateral, s):
            """Canvas coordinates in 1/16 pixel (cv2's ``shift=4``)."""
            return np.stack([(np.asarray(lateral) + SHADOW_HALF_WIDTH_M) / res * 16,
                             (np.asarray(s) - self.origin) / res * 16], -1
                            ).round().astype(np.int32)

        def polygon(lateral, s):
            cv2.fillConvexPoly(canvas, cv2.convexHull(fixed(lateral, s)), 255, cv2.LINE_AA, 4)

        def width(s):
            return 0.5 * world.road_width(np.asarray(s, dtype=np.float64))

        for ch in chunks:
            if ch.index * sc.CHUNK_M > end:
                break
            for side, sign in ((0, 1.0), (1, -1.0)):
                walk = ch.sides[side].sidewalk_width_m
                casting = ch.blocks[side][ch.blocks[side][:, 4] != sc.BLOCK_HILL]
                if not len(casting):
                    continue
                s0, s1, setback, height = casting[:, :4].T
                mid = 0.5 * (s0 + s1)
                lateral = sign * (width(mid) + walk + setback)
                dl, ds = displacement(mid)
                for i in range(len(mid)):
                    h = height[i]
                    top, back = lateral[i] + h * dl[i], lateral[i] + sign * 20
                    polygon([lateral[i], lateral[i], top, top, back, back],
                            [s0[i], s1[i], s1[i] + h * ds[i], s0[i] + h * ds[i], s1[i], s0[i]])
            if len(ch.trees):
                s, offset, trunk_h, crown_r, crown_k = ch.trees[:, :5].T
                lateral = np.sign(offset) * (width(s) + np.abs(offset))
                dl, ds = displacement(s)
                top = trunk_h + 0.8 * crown_r * crown_k
                base, tip = fixed(lateral, s), fixed(lateral + top * dl, s + top * ds)
                angle = np.degrees(np.arctan2(ds, dl))
                stretch = np.sqrt(1 + cot ** 2) * crown_k
                for i in range(len(s)):
                    cv2.line(canvas, tuple(base[i]), tuple(tip[i]), 255, 2, cv2.LINE_AA, 4)
                    axes = (int(round(crown_r[i] / res * stretch[i] * 16)),
                            int(round(crown_r[i] / res * 16)))
                    cv2.ellipse(canvas, tuple(tip[i]), axes, angle[i], 0, 360, 255, -1,
                                cv2.LINE_AA, 4)
            if len(ch.poles):
                s, offset, height = ch.poles.T
                lateral = np.sign(offset) * (width(s) + np.abs(offset))
                dl, ds = displacement(s)
                base, tip = fixed(lateral, s), fixed(lateral + height * dl, s + height * ds)
                for i in range(len(s)):
                    cv2.line(canvas, tuple(base[i]), tuple(tip[i]), 255, 1, cv2.LINE_AA, 4)
        if len(vehicles):
            s, lateral, length, width_v, height = vehicles[:, :5].T
            dl, ds = displacement(s)
            for i in range(len(s)):
                corners_l = lateral[i] + np.array([-1, -1, 1, 1]) * width_v[i] / 2
                corners_s = s[i] + np.array([-1, 1, -1, 1]) * length[i] / 2
                polygon(np.concatenate([corners_l, corners_l + height[i] * dl[i]]),
                        np.concatenate([corners_s, corners_s + height[i] * ds[i]]))
        self.canvas = canvas

    def lookup(self, lateral: np.ndarray, s_from_origin: np.ndarray) -> np.ndarray:
        """Shadow fraction in ``[0, 1]`` (float32) at lateral offsets and arc lengths
        measured from :attr:`origin` (2-D arrays of one shape)."""
        if not self.enabled:
            return np.zeros(np.shape(lateral), np.float32)
        scale = np.float32(1 / SHADOW_RES_M)
        map_x = (lateral + np.float32(SHADOW_HALF_WIDTH_M)) * scale
        map_y = s_from_origin * scale
        out = cv2.remap(self.canvas, map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.astype(np.float32) * np.float32(1 / 255)
