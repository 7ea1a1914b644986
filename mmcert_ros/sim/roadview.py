"""The road centreline as seen from the camera at one instant."""
from __future__ import annotations

import numpy as np

from mmcert_ros.sim.motion import EgoState
from mmcert_ros.sim.scene import World

MAX_VIEW_HEADING = 1.3   #: radians (75 degrees); the table stops where the road turns more


class RoadView:
    """The road centreline seen from the camera: lookups by depth and by arc length.

    Built by integrating the road heading from the camera's position, then moving into the
    camera frame (x right, z forward). The table ends where the road stops running away
    from the camera; lookups beyond it continue in a straight line, so arc lengths grow
    monotonically with depth.
    """

    def __init__(self, world: World, ego: EgoState, behind_m: float = 30.0,
                 ahead_m: float = 400.0) -> None:
        d = np.arange(-behind_m, ahead_m + 1.0, 1.0)
        s = ego.s + d
        theta = world.heading(s) - world.heading(np.array([ego.s]))[0]
        origin = int(behind_m)
        step_x = 0.5 * (np.sin(theta[1:]) + np.sin(theta[:-1]))
        step_z = 0.5 * (np.cos(theta[1:]) + np.cos(theta[:-1]))
        xr = np.concatenate([[0.0], np.cumsum(step_x)])
        zr = np.concatenate([[0.0], np.cumsum(step_z)])
        xr -= xr[origin] + ego.lateral
        zr -= zr[origin]
        c, si = np.cos(ego.yaw), np.sin(ego.yaw)
        x = xr * c - zr * si
        z = xr * si + zr * c
        phi = theta - ego.yaw
        # keep the stretch ahead that still runs away from the camera: depth increasing and
        # heading within MAX_VIEW_HEADING (a road bending further leaves the view sideways)
        usable = np.concatenate([[True], np.diff(z) > 0.2]) & (np.abs(phi) < MAX_VIEW_HEADING)
        ahead = usable[origin:]
        stop = len(z) if ahead.all() else origin + max(int(np.argmin(ahead)), 2)
        self.x, self.z, self.phi, self.s = x[:stop], z[:stop], phi[:stop], s[:stop]

    def at_depth(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centreline ``(x, heading, arc length)`` at camera depth ``depth`` (any shape)."""
        depth = np.asarray(depth, dtype=np.float64)
        x = np.interp(depth, self.z, self.x)
        phi = np.interp(depth, self.z, self.phi)
        s = np.interp(depth, self.z, self.s)
        beyond = depth > self.z[-1]
        if beyond.any():
            heading = np.clip(self.phi[-1], -MAX_VIEW_HEADING, MAX_VIEW_HEADING)
            extra = depth - self.z[-1]
            x = np.where(beyond, self.x[-1] + np.tan(heading) * extra, x)
            s = np.where(beyond, self.s[-1] + extra / np.cos(heading), s)
        return x, phi, s

    def at_arclength(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centreline ``(x, z, heading)`` in the camera frame at arc length ``s``."""
        s = np.asarray(s, dtype=np.float64)
        return (np.interp(s, self.s, self.x), np.interp(s, self.s, self.z),
                np.interp(s, self.s, self.phi))
