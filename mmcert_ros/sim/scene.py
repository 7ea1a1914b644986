"""The procedural world of a synthetic drive: road geometry, roadside layout and objects.

Everything is a pure function of ``(seed, position)``: the world is cut into fixed-length
chunks along the road's arc length ``s`` and each chunk is generated from its own
``SeedSequence([seed, stream, index])``, so any frame of any drive can be rendered without
rendering the frames before it, and two runs with the same seed are identical.

Road coordinates: ``s`` = arc length along the road centreline (metres), ``l`` = signed
lateral offset from the centreline, positive to the right of the driving direction.
Traffic drives on the right (the ego vehicle and same-direction traffic at ``l > 0``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache

import numpy as np

from mmcert_ros.sim.camera import CameraModel
from mmcert_ros.sim.lidar import LidarConfig

CHUNK_M = 100.0          #: length of a layout chunk (one roadside layout per side)
DISTRICT_CHUNKS = 4      #: chunks per district (urban / suburban / rural)
CURVE_SPACING_M = 60.0   #: spacing of curvature control points
PARKING_STRIP_M = 2.2    #: width of a parking strip along a kerb
PARKING_RAMP_M = 8.0     #: a parking strip fades in/out over this either side of a chunk end
PARKING_MIN_WIDTH_M = (7.5, 9.5)  #: road width needed to park on one / on both sides
WIDTH_SPACING_M = 50.0   #: spacing of road-width control points
_INDEX_OFFSET = 1 << 20  #: keeps SeedSequence entropy non-negative for negative indices

# random streams (the second SeedSequence word), one per independent kind of content
STREAM_CURVATURE, STREAM_WIDTH, STREAM_DISTRICT, STREAM_CHUNK = 1, 2, 3, 4
STREAM_ONCOMING, STREAM_LEAD, STREAM_DRIVE, STREAM_FRAME = 5, 6, 7, 8

URBAN, SUBURBAN, RURAL = 0, 1, 2
DISTRICT_NAMES = ('urban', 'suburban', 'rural')

# ground surface materials beyond the kerb
VERGE_PAVING, VERGE_GRASS, VERGE_DIRT, VERGE_GRAVEL = 0, 1, 2, 3
# backdrop block kinds (what a ray leaving the road sideways finally hits)
BLOCK_BUILDING, BLOCK_TREES, BLOCK_HILL = 0, 1, 2


def _pair(value, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f'SceneConfig.{name} must be a (low, high) pair with low <= high, '
                         f'got {value!r}')
    return lo, hi


@dataclass(frozen=True)
class SceneConfig:
    """Every knob of the simulator. Defaults give KITTI-Road-like urban and suburban drives.

    Ranges are ``(low, high)`` pairs sampled uniformly per drive, district or object;
    densities are expected counts per 100 m of road (trees and parked vehicles: per
    100 m where the district and the parking strips allow them); the overcast probability
    is per drive, the lead-vehicle probability per 16 s window (every other window has
    its chance), the others per district.
    The configuration is hashable (renderer tables are cached per configuration).

    :ivar camera: the pinhole camera (size, intrinsics, mount height).
    :ivar lidar: the sparse LiDAR-like depth pattern.
    :ivar frame_rate_hz: frames per second of :func:`~mmcert_ros.sim.synthetic.drive`.
    :ivar max_depth_m: dense depth beyond this range is invalid (NaN), like a sensor's range.
    """

    camera: CameraModel = field(default_factory=CameraModel)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    frame_rate_hz: float = 10.0
    max_depth_m: float = 120.0
    # ego motion
    speed_range_mps: tuple[float, float] = (6.0, 14.0)
    lane_sway_m: float = 0.25
    # road
    district_weights: tuple[float, float, float] = (0.45, 0.35, 0.2)  # urban, suburban, rural
    road_width_range_m: tuple[float, float] = (5.5, 12.0)
    max_curvature_per_m: float = 1.0 / 90.0
    straight_probability: float = 0.35
    lane_marking_probability: float = 0.75
    # roadside
    sidewalk_width_range_m: tuple[float, float] = (1.5, 4.0)
    curb_height_range_m: tuple[float, float] = (0.08, 0.16)
    building_height_range_m: tuple[float, float] = (5.0, 18.0)
    tree_density: float = 5.0
    pole_density: float = 3.0
    parked_vehicle_density: float = 8.0
    oncoming_vehicle_density: float = 1.2
    lead_vehicle_probability: float = 0.5
    # light
    sun_elevation_range_deg: tuple[float, float] = (15.0, 65.0)
    overcast_probability: float = 0.25
    shadow_strength_range: tuple[float, float] = (0.45, 0.75)
    exposure_range: tuple[float, float] = (0.8, 1.2)
    # sensor
    rgb_noise_std: float = 2.5
    blur_sigma_px: float = 0.6

    def __post_init__(self) -> None:
        if not isinstance(self.camera, CameraModel):
            raise ValueError(f'SceneConfig.camera must be a CameraModel, got {self.camera!r}')
        if not isinstance(self.lidar, LidarConfig):
            raise ValueError(f'SceneConfig.lidar must be a LidarConfig, got {self.lidar!r}')
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(('_range_m', '_range_mps', '_range_deg', '_range')):
                object.__setattr__(self, f.name, _pair(value, f.name))
        positive = ('frame_rate_hz', 'max_depth_m', 'max_curvature_per_m')
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(
                    f'SceneConfig.{name} must be positive, got {getattr(self, name)!r}')
        non_negative = ('lane_sway_m', 'tree_density', 'pole_density', 'parked_vehicle_density',
                        'oncoming_vehicle_density', 'rgb_noise_std', 'blur_sigma_px')
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f'SceneConfig.{name} must be >= 0, got {getattr(self, name)!r}')
        for name in ('straight_probability', 'lane_marking_probability',
                     'lead_vehicle_probability', 'overcast_probability'):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(
                    f'SceneConfig.{name} must be a probability in [0, 1], got '
                    f'{getattr(self, name)!r}')
        weights = tuple(float(w) for w in self.district_weights)
        object.__setattr__(self, 'district_weights', weights)
        weights = np.asarray(weights)
        if weights.shape != (3,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError('SceneConfig.district_weights must be three non-negative weights '
                             f'(urban, suburban, rural), got {self.district_weights!r}')
        if self.road_width_range_m[0] < 3.0:
            raise ValueError('SceneConfig.road_width_range_m must start at >= 3 m, got '
                             f'{self.road_width_range_m!r}')

    def with_image_size(self, width: int, height: int) -> SceneConfig:
        """This configuration rendered at ``width`` x ``height`` (intrinsics scaled)."""
        return replace(self, camera=self.camera.scaled(width, height))


def random_generator(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """The generator of one independent piece of content: drive ``seed``, content kind
    ``stream``, position ``index``."""
    return np.random.default_rng([int(seed), stream, int(index) + _INDEX_OFFSET])


def _smooth(x: np.ndarray) -> np.ndarray:
    """Cosine ease from 0 (x = 0) to 1 (x = 1)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0, 1))


def _cosine_blend(values: np.ndarray, spacing: float, s: np.ndarray) -> np.ndarray:
    """Cosine interpolation of control values placed at ``i * spacing`` (i from 0)."""
    position = np.asarray(s, dtype=np.float64) / spacing
    i = np.floor(position).astype(np.int64)
    f = position - i
    w = 0.5 - 0.5 * np.cos(np.pi * f)
    return values[i] * (1 - w) + values[i + 1] * w


@dataclass(frozen=True)
class District:
    """Road style of a stretch of ``DISTRICT_CHUNKS`` chunks."""

    kind: int
    width_range_m: tuple[float, float]
    center_line: str            # 'dashed', 'solid' or 'none'
    edge_lines: bool
    dash_length_m: float
    dash_period_m: float
    asphalt_rgb: tuple[float, float, float]
    paint_rgb: tuple[float, float, float]
    sidewalk_probability: float
    building_probability: float
    backdrops: tuple[tuple[int, float, float], tuple[int, float, float]]  # right, left


@dataclass(frozen=True)
class SideLayout:
    """What lies beyond one road edge in one chunk.

    :ivar curb_height_m: height of the kerb and of everything beyond it (0 = no kerb).
    :ivar sidewalk_width_m: width of the paved walk from the road edge (0 = none).
    :ivar verge: material beyond the walk (``VERGE_*``).
    :ivar asphalt_walk: the walk is asphalt like the road, told apart only by the kerb.
    """

    curb_height_m: float
    sidewalk_width_m: float
    verge: int
    asphalt_walk: bool = False


@dataclass(frozen=True)
class Chunk:
    """The static content of ``[index * CHUNK_M, (index + 1) * CHUNK_M)``.

    Object tables are float64 arrays with one row per object; the column meaning is given
    by the ``*_COLUMNS`` constants of this module. Side 0 is the right, side 1 the left.
    """

    index: int
    district: District
    sides: tuple[SideLayout, SideLayout]
    blocks: tuple[np.ndarray, np.ndarray]   # BLOCK_COLUMNS, sorted by s, covering the chunk
    trees: np.ndarray                        # TREE_COLUMNS
    poles: np.ndarray                        # POLE_COLUMNS
    parked: np.ndarray                       # VEHICLE_COLUMNS
    parking: tuple[bool, bool]               # cars park along the right / left kerb


BLOCK_COLUMNS = ('s_start', 's_end', 'setback', 'height', 'kind', 'color')
#: ``edge_offset``: signed distance from the road edge outwards (+ right side, - left side)
TREE_COLUMNS = ('s', 'edge_offset', 'trunk_height', 'crown_radius', 'crown_height', 'color')
POLE_COLUMNS = ('s', 'edge_offset', 'height')
#: ``kerb_gap``: signed gap between a parked vehicle and the kerb (+ right, - left)
VEHICLE_COLUMNS = ('s', 'kerb_gap', 'length', 'width', 'height', 'color', 'yaw', 'kind')


class World:
    """The static world of one drive (road, roadside, parked cars), generated on demand."""

    def __init__(self, seed: int, config: SceneConfig) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
        self.seed = int(seed)
        self.config = config
        self._control_cache: dict[int, np.ndarray] = {}
        self._heading_at_controls = np.zeros(1)
        self.chunk = lru_cache(maxsize=16)(self._make_chunk)
        self.district = lru_cache(maxsize=8)(self._make_district)

    # ------------------------------------------------------------------ geometry
    def _control_block(self, stream: int, block: int) -> np.ndarray:
        """64 control values of ``stream`` (curvature or width) starting at ``64 * block``."""
        rng = random_generator(self.seed, stream, block)
        if stream == STREAM_CURVATURE:
            k = self.config.max_curvature_per_m
            values = rng.uniform(-k, k, 64) * np.sqrt(rng.uniform(0, 1, 64))
            values[rng.uniform(size=64) < self.config.straight_probability] = 0.0
            return values
        u = rng.uniform(size=64)
        positions = (np.arange(64) + 64 * block) * WIDTH_SPACING_M
        return np.array([self._width_from_unit(p, x) for p, x in zip(positions, u)])

    def _width_from_unit(self, s: float, unit: float) -> float:
        lo, hi = self.district(int(np.floor(s / (CHUNK_M * DISTRICT_CHUNKS)))).width_range_m
        return lo + (hi - lo) * unit

    def _controls(self, stream: int, spacing: float, s: np.ndarray) -> np.ndarray:
        """Control values covering ``s`` (non-negative), indexed from 0, grown on demand."""
        values = self._control_cache.get(stream, np.zeros(0))
        needed = int(np.max(s) // spacing) + 2
        if needed >= values.size:
            blocks = range(values.size // 64, needed // 64 + 1)
            values = np.concatenate([values] + [self._control_block(stream, b) for b in blocks])
            self._control_cache[stream] = values
            if stream == STREAM_CURVATURE:
                increments = CURVE_SPACING_M * 0.5 * (values[:-1] + values[1:])
                self._heading_at_controls = np.concatenate([[0.0], np.cumsum(increments)])
        return values

    def curvature(self, s: np.ndarray) -> np.ndarray:
        """Road curvature (1/m, positive = turning right) at arc lengths ``s >= 0``."""
        s = np.asarray(s, dtype=np.float64)
        return _cosine_blend(self._controls(STREAM_CURVATURE, CURVE_SPACING_M, s),
                             CURVE_SPACING_M, s)

    def heading(self, s: np.ndarray) -> np.ndarray:
        """Road heading (rad, clockwise from the heading at ``s = 0``): the exact integral
        of :meth:`curvature` (the cosine blend integrates in closed form)."""
        s = np.asarray(s, dtype=np.float64)
        k = self._controls(STREAM_CURVATURE, CURVE_SPACING_M, s)
        length = CURVE_SPACING_M
        position = s / length
        i = np.floor(position).astype(np.int64)
        f = position - i
        partial = length * (k[i] * f + (k[i + 1] - k[i]) * 0.5 * (f - np.sin(np.pi * f) / np.pi))
        return self._heading_at_controls[i] + partial

    def road_width(self, s: np.ndarray) -> np.ndarray:
        """Road surface width (kerb to kerb, metres) at arc lengths ``s >= 0``."""
        s = np.asarray(s, dtype=np.float64)
        return _cosine_blend(self._controls(STREAM_WIDTH, WIDTH_SPACING_M, s),
                             WIDTH_SPACING_M, s)

    def lane_centre(self, s: np.ndarray, side: int = 0) -> np.ndarray:
        """Lateral offset of a driving lane's centre: the middle between the centreline
        and the kerb, or the parking strip where cars park on that side (side 0 = right,
        the ego lane; side 1 = left, oncoming traffic, negative offsets)."""
        s = np.asarray(s, dtype=np.float64)
        free = 0.5 * self.road_width(s) - PARKING_STRIP_M * self.parking(s, side)
        return (0.5 if side == 0 else -0.5) * free

    def parking(self, s: np.ndarray, side: int) -> np.ndarray:
        """How much of a parking strip (0..1) lies along kerb ``side`` at arc lengths ``s``.

        Each chunk parks on a side or not; the strip fades in and out over
        ``PARKING_RAMP_M`` either side of chunk boundaries, where no car is parked.
        """
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        index = np.floor(s / CHUNK_M).astype(np.int64)
        offset = s - index * CHUNK_M
        out = np.empty(s.shape)
        for i in np.unique(index):
            here = float(self.chunk(int(i)).parking[side])
            before = float(self.chunk(int(i) - 1).parking[side])
            after = float(self.chunk(int(i) + 1).parking[side])
            sel = index == i
            o = offset[sel]
            ramp_in = 0.5 + 0.5 * np.clip(o / PARKING_RAMP_M, 0, 1)        # 0.5 .. 1
            ramp_out = 0.5 + 0.5 * np.clip((CHUNK_M - o) / PARKING_RAMP_M, 0, 1)
            value = here
            value = np.where(o < PARKING_RAMP_M, before + (here - before) * _smooth(ramp_in),
                             value)
            value = np.where(CHUNK_M - o < PARKING_RAMP_M,
                             after + (here - after) * _smooth(ramp_out), value)
            out[sel] = value
        return out

    # ------------------------------------------------------------------ layout
    def district_at(self, s: float) -> District:
        """The district that arc length ``s`` lies in."""
        return self.district(int(np.floor(s / (CHUNK_M * DISTRICT_CHUNKS))))

    def _make_district(self, index: int) -> District:
        rng = random_generator(self.seed, STREAM_DISTRICT, index)
        c = self.config
        weights = np.asarray(c.district_weights, dtype=float)
        kind = int(rng.choice(3, p=weights / weights.sum()))
        lo, hi = c.road_width_range_m
        if kind == RURAL:
            width = (lo, lo + 0.3 * (hi - lo))
        else:
            a = lo + rng.uniform(0.1, 0.55) * (hi - lo)
            width = (a, min(hi, a + 0.4 * (hi - lo)))
        marked = rng.uniform() < c.lane_marking_probability and width[0] >= 5.0
        center_line = str(rng.choice(['dashed', 'dashed', 'solid'])) if marked else 'none'
        long_dashes = kind == RURAL
        tone = rng.uniform(0.28, 0.5)
        tint = rng.normal(0, 0.015, 3)
        asphalt = tuple(float(np.clip(tone + t, 0.15, 0.65)) for t in tint)
        paint = (0.92, 0.92, 0.88) if rng.uniform() < 0.9 else (0.93, 0.82, 0.35)
        return District(
            kind=kind, width_range_m=width, center_line=center_line,
            edge_lines=bool(marked and rng.uniform() < 0.6),
            dash_length_m=6.0 if long_dashes else 3.0,
            dash_period_m=18.0 if long_dashes else 9.0,
            asphalt_rgb=asphalt, paint_rgb=paint,
            sidewalk_probability=(0.95, 0.7, 0.05)[kind],
            building_probability=(0.9, 0.55, 0.05)[kind],
            backdrops=tuple(self._backdrop(rng) for _side in range(2)))

    @staticmethod
    def _backdrop(rng: np.random.Generator) -> tuple[int, float, float]:
        """``(kind, setback, height)`` of what shows between buildings on one side."""
        if rng.uniform() < 0.7:
            return BLOCK_TREES, rng.uniform(6.0, 30.0), rng.uniform(6.0, 14.0)
        return BLOCK_HILL, rng.uniform(40.0, 90.0), rng.uniform(3.0, 12.0)

    def _make_chunk(self, index: int) -> Chunk:
        rng = random_generator(self.seed, STREAM_CHUNK, index)
        c = self.config
        district = self.district(index // DISTRICT_CHUNKS)
        s0 = index * CHUNK_M
        sides = []
        blocks = []
        for side in range(2):
            if rng.uniform() < district.sidewalk_probability:
                layout = SideLayout(curb_height_m=rng.uniform(*c.curb_height_range_m),
                                    sidewalk_width_m=rng.uniform(*c.sidewalk_width_range_m),
                                    verge=int(rng.choice([VERGE_PAVING, VERGE_GRASS,
                                                          VERGE_GRASS, VERGE_DIRT])),
                                    asphalt_walk=bool(rng.uniform() < 0.3))
            else:
                layout = SideLayout(curb_height_m=0.0, sidewalk_width_m=0.0,
                                    verge=int(rng.choice([VERGE_GRASS, VERGE_GRASS,
                                                          VERGE_DIRT, VERGE_GRAVEL])))
            sides.append(layout)
            blocks.append(self._blocks(rng, district, s0, side))
        trees = self._trees(rng, district, s0, sides)
        poles = self._poles(rng, s0, sides)
        narrowest = self.road_width(np.linspace(max(s0, 0.0), s0 + CHUNK_M, 11)).min()
        probability = (0.75, 0.5, 0.05)[district.kind]
        right = rng.uniform() < probability and narrowest >= PARKING_MIN_WIDTH_M[0]
        left = rng.uniform() < probability and narrowest >= PARKING_MIN_WIDTH_M[int(right)]
        parked = self._parked(rng, s0, (right, left))
        return Chunk(index, district, (sides[0], sides[1]), (blocks[0], blocks[1]),
                     trees, poles, parked, (bool(right), bool(left)))

    def _blocks(self, rng: np.random.Generator, district: District, s0: float,
                side: int) -> np.ndarray:
        """Buildings separated by gaps through which a tree line or hills show."""
        c = self.config
        far_kind, far_setback, far_height = district.backdrops[side]
        far_color = 0
        rows = []
        s = s0
        end = s0 + CHUNK_M
        build = rng.uniform() < district.building_probability
        while s < end - 1e-9:
            if build and rng.uniform() < 0.8:
                length = rng.uniform(8.0, 35.0)
                rows.append((s, min(end, s + length), rng.uniform(0.5, 6.0),
                             rng.uniform(*c.building_height_range_m), BLOCK_BUILDING,
                             rng.integers(0, 16)))
            else:
                length = rng.uniform(5.0, 25.0) if build else CHUNK_M
                rows.append((s, min(end, s + length), far_setback, far_height, far_kind,
                             far_color))
            s = min(end, s + length)
        return np.array(rows, dtype=np.float64)

    def _trees(self, rng, district, s0, sides) -> np.ndarray:
        count = rng.poisson(self.config.tree_density * (1.5 if district.kind != URBAN else 0.6))
        rows = []
        for _ in range(count):
            side = rng.integers(0, 2)
            layout = sides[side]
            offset = layout.sidewalk_width_m * rng.uniform(0.6, 0.9) if (
                layout.sidewalk_width_m > 2.0 and rng.uniform() < 0.5) else (
                layout.sidewalk_width_m + rng.uniform(0.8, 5.0))
            rows.append((s0 + rng.uniform(0, CHUNK_M), (1 if side == 0 else -1) * offset,
                         rng.uniform(1.8, 3.5), rng.uniform(1.2, 3.2), rng.uniform(0.8, 1.3),
                         rng.integers(0, 4)))
        return np.array(rows, dtype=np.float64).reshape(-1, len(TREE_COLUMNS))

    def _poles(self, rng, s0, sides) -> np.ndarray:
        rows = []
        for _ in range(rng.poisson(self.config.pole_density)):
            side = rng.integers(0, 2)
            offset = max(0.4, sides[side].sidewalk_width_m * 0.2) + rng.uniform(0, 0.5)
            rows.append((s0 + rng.uniform(0, CHUNK_M), (1 if side == 0 else -1) * offset,
                         rng.uniform(3.0, 8.0)))
        return np.array(rows, dtype=np.float64).reshape(-1, len(POLE_COLUMNS))

    def _parked(self, rng, s0, parking: tuple[bool, bool]) -> np.ndarray:
        """Parked vehicles along the kerbs that have a parking strip (not on the ramps)."""
        density = self.config.parked_vehicle_density
        rows = []
        for side, allowed in zip((1, -1), parking):
            if not allowed or density <= 0:
                continue
            s = s0 + PARKING_RAMP_M + rng.exponential(100.0 / density)
            while True:
                vehicle = random_vehicle(rng)
                if s + vehicle[0] > s0 + CHUNK_M - PARKING_RAMP_M:
                    break
                rows.append((s + vehicle[0] / 2, side * rng.uniform(0.1, 0.35), *vehicle[:4],
                             rng.normal(0, 0.03), vehicle[4]))
                s += vehicle[0] + rng.uniform(0.6, 2.0) + rng.exponential(100.0 / density)
        return np.array(rows, dtype=np.float64).reshape(-1, len(VEHICLE_COLUMNS))


def random_vehicle(rng: np.random.Generator) -> tuple[float, float, float, int, int]:
    """``(length, width, height, colour index, kind)``: a car (kind 0) or a van (kind 1)."""
    if rng.uniform() < 0.15:
        return rng.uniform(4.8, 6.0), rng.uniform(1.9, 2.1), rng.uniform(1.9, 2.5), \
            int(rng.integers(0, 32)), 1
    return rng.uniform(3.7, 4.9), rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.6), \
        int(rng.integers(0, 32)), 0


@dataclass(frozen=True)
class Lighting:
    """Light of one drive.

    :ivar sun_elevation: radians above the horizon.
    :ivar sun_azimuth: radians, clockwise from the road heading at ``s = 0``.
    :ivar direct: irradiance of the sun on a surface facing it (0 when overcast).
    :ivar ambient: sky irradiance on every surface.
    :ivar shadow_strength: fraction of the ground light removed in shadow.
    :ivar sky_horizon_rgb: sky colour at the horizon; ``sky_zenith_rgb`` at the top.
    """

    sun_elevation: float
    sun_azimuth: float
    direct: float
    ambient: float
    shadow_strength: float
    exposure: float
    sky_horizon_rgb: tuple[float, float, float]
    sky_zenith_rgb: tuple[float, float, float]


def make_lighting(seed: int, config: SceneConfig) -> Lighting:
    """The light of drive ``seed`` (sunny or overcast, sun direction, exposure)."""
    rng = random_generator(seed, STREAM_DRIVE, 1)
    overcast = rng.uniform() < config.overcast_probability
    elevation = np.radians(rng.uniform(*config.sun_elevation_range_deg))
    strength = rng.uniform(*config.shadow_strength_range) * (0.25 if overcast else 1.0)
    direct = 0.0 if overcast else 0.75
    ambient = 0.95 if overcast else 0.45
    horizon = (0.80, 0.82, 0.84) if overcast else (0.78, 0.85, 0.93)
    zenith = (0.66, 0.68, 0.72) if overcast else (rng.uniform(0.3, 0.45), 0.55, 0.85)
    return Lighting(sun_elevation=float(elevation), sun_azimuth=float(rng.uniform(-np.pi, np.pi)),
                    direct=direct, ambient=ambient, shadow_strength=float(strength),
                    exposure=float(rng.uniform(*config.exposure_range)),
                    sky_horizon_rgb=horizon, sky_zenith_rgb=zenith)
