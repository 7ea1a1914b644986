"""Ego motion and moving traffic of a synthetic drive, in closed form as functions of time.

Closed forms (no state carried from frame to frame) make every frame of a drive
reproducible on its own: frame ``i`` of ``drive(seed)`` is the same whether or not the
frames before it were rendered.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcert_ros.sim.scene import (STREAM_DRIVE, STREAM_LEAD, STREAM_ONCOMING, World,
                                  random_generator, random_vehicle)

START_S_M = 200.0        #: smallest arc length a drive can start at (room to look back)
LEAD_WINDOW_S = 16.0     #: a lead vehicle appears and leaves within one such window
FAR_GAP_M = 170.0        #: gap at which a lead vehicle enters and leaves the view
ONCOMING_CHUNK_M = 100.0  # : oncoming traffic is generated per this length of its own axis

#: columns of :meth:`Motion.moving_vehicles` rows (``facing`` is +1 along the road, -1 against)
MOVING_COLUMNS = ('s', 'l', 'length', 'width', 'height', 'color', 'yaw', 'kind', 'facing')


@dataclass(frozen=True)
class EgoState:
    """Pose of the camera at one instant, in road coordinates.

    :ivar time_s: seconds since the start of the drive.
    :ivar s: arc length of the camera position along the road, metres.
    :ivar lateral: signed lateral offset of the camera from the centreline (+ right), metres.
    :ivar yaw: heading relative to the road tangent, radians (+ = turned right).
    :ivar speed: forward speed, metres per second.
    """

    time_s: float
    s: float
    lateral: float
    yaw: float
    speed: float


class Motion:
    """The ego vehicle's path and the moving traffic of one drive."""

    def __init__(self, world: World) -> None:
        self.world = world
        rng = random_generator(world.seed, STREAM_DRIVE, 0)
        lo, hi = world.config.speed_range_mps
        self.base_speed = rng.uniform(lo, hi)
        self.speed_amplitude = self.base_speed * rng.uniform(0.0, 0.2)
        self.speed_omega = 2 * np.pi / rng.uniform(15.0, 40.0)
        self.speed_phase = rng.uniform(0, 2 * np.pi)
        self.start_s = START_S_M + rng.uniform(0.0, 3000.0)
        self.sway_omega = 2 * np.pi / rng.uniform(6.0, 14.0)
        self.sway_phase = rng.uniform(0, 2 * np.pi)
        self.oncoming_speed = rng.uniform(7.0, 14.0)

    def s_at(self, t: float) -> float:
        """Arc length of the ego vehicle at time ``t`` (the integral of its speed)."""
        w, p = self.speed_omega, self.speed_phase
        return (self.start_s + self.base_speed * t
                - self.speed_amplitude / w * (np.cos(w * t + p) - np.cos(p)))

    def lateral_at(self, t: float) -> float:
        """Lateral offset of the camera: the right lane's centre plus a slow sway."""
        s = self.s_at(t)
        sway = self.world.config.lane_sway_m * np.sin(self.sway_omega * t + self.sway_phase)
        return float(self.world.lane_centre(np.array([s]))[0] + sway)

    def ego(self, t: float) -> EgoState:
        """The camera pose at time ``t`` (yaw follows the lateral drift)."""
        dt = 0.05
        speed = self.base_speed + self.speed_amplitude * np.sin(
            self.speed_omega * t + self.speed_phase)
        drift = (self.lateral_at(t + dt) - self.lateral_at(t - dt)) / (2 * dt)
        return EgoState(time_s=float(t), s=float(self.s_at(t)), lateral=self.lateral_at(t),
                        yaw=float(np.arctan2(drift, speed)), speed=float(speed))

    def moving_vehicles(self, t: float, s_lo: float, s_hi: float, ego_s: float) -> np.ndarray:
        """Moving vehicles with arc length in ``[s_lo, s_hi]`` at time ``t`` (MOVING_COLUMNS)."""
        rows = []
        offset = self.oncoming_speed * t   # oncoming traffic is fixed on the axis q = s + v t
        density = self.world.config.oncoming_vehicle_density
        for index in range(int(np.floor((s_lo + offset) / ONCOMING_CHUNK_M)),
                           int(np.floor((s_hi + offset) / ONCOMING_CHUNK_M)) + 1):
            rng = random_generator(self.world.seed, STREAM_ONCOMING, index)
            count = rng.poisson(density)
            q = np.sort(rng.uniform(0, ONCOMING_CHUNK_M, count)) + index * ONCOMING_CHUNK_M
            last = -np.inf
            for qi in q:
                vehicle = random_vehicle(rng)
                if qi - last < 14.0:
                    continue
                last = qi
                s = qi - offset
                if s_lo <= s <= s_hi and s >= 0:
                    lane = self.world.lane_centre(np.array([s]), side=1)[0]
                    rows.append((s, lane, *vehicle[:4], 0.0, vehicle[4], -1.0))
        window = int(np.floor(t / LEAD_WINDOW_S))
        if window % 2 == 0:
            rng = random_generator(self.world.seed, STREAM_LEAD, window)
            if rng.uniform() < self.world.config.lead_vehicle_probability:
                closest = rng.uniform(9.0, 45.0)
                u = t / LEAD_WINDOW_S - window
                gap = FAR_GAP_M - (FAR_GAP_M - closest) * np.sin(np.pi * u) ** 2
                vehicle = random_vehicle(rng)
                s = ego_s + gap
                if s_lo <= s <= s_hi:
                    rows.append((s, self.world.lane_centre(np.array([s]))[0], *vehicle[:4],
                                 0.0, vehicle[4], 1.0))
        return np.array(rows, dtype=np.float64).reshape(-1, len(MOVING_COLUMNS))
