"""The synthetic drive simulator: geometry that makes a road a road, determinism, API."""
import itertools

import numpy as np
import pytest

from mmcert_ros.sim.camera import CameraModel
from mmcert_ros.data.frame import Frame
from mmcert_ros.sim.lidar import LidarConfig
from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive, drive, render_frame

SMALL = SceneConfig().with_image_size(320, 96)
MOUNT_HEIGHT_M = 1.65          # KITTI camera height, the simulator's default


@pytest.fixture(scope='module')
def frames():
    """Four frames from each of five drives at 320x96, two seconds apart."""
    return [SyntheticDrive(seed, SMALL).frame(index)
            for seed in range(5) for index in (0, 20, 40, 60)]


def test_frames_have_the_documented_types(frames):
    for frame in frames:
        assert isinstance(frame, Frame)
        assert frame.rgb.shape == (96, 320, 3) and frame.rgb.dtype == np.uint8
        assert frame.depth.shape == (96, 320) and frame.depth.dtype == np.float32
        assert frame.road_mask.dtype == np.uint8 and set(np.unique(frame.road_mask)) <= {0, 1}
        assert np.array_equal(frame.camera_matrix, SMALL.camera.matrix)


def test_road_fraction_is_plausible(frames):
    fractions = np.array([f.road_mask.mean() for f in frames])
    assert (fractions > 0.04).all(), fractions        # every frame shows road
    assert (fractions < 0.6).all(), fractions         # and never only road
    assert 0.12 < fractions.mean() < 0.4               # KITTI Road: about a quarter


def test_road_lies_only_below_the_horizon(frames):
    horizon = SMALL.camera.cy
    rows = np.arange(96)
    for frame in frames:
        road_rows = rows[frame.road_mask.any(axis=1)]
        assert road_rows.min() > horizon


def test_road_depth_is_the_ground_plane_formula(frames):
    """Independent oracle: z = fy * h / (v - cy) from the frame's own K."""
    for frame in frames:
        k = frame.camera_matrix
        v, u = np.nonzero(frame.road_mask)
        expected = k[1, 1] * MOUNT_HEIGHT_M / (v - k[1, 2])
        expected = np.where(expected <= SMALL.max_depth_m, expected, np.nan)
        np.testing.assert_allclose(frame.depth[v, u], expected, rtol=2e-6)


def test_road_depth_grows_towards_the_horizon(frames):
    for frame in frames:
        depth = np.where(frame.road_mask > 0, frame.depth, np.nan)
        for column in range(0, 320, 7):
            values = depth[:, column][np.isfinite(depth[:, column])]
            assert (np.diff(values) < 0).all()          # rows go down, depth goes down


def test_invalid_depth_is_sky_or_beyond_the_range(frames):
    cam = SMALL.camera
    for frame in frames:
        v, u = np.nonzero(~np.isfinite(frame.depth) & (frame.road_mask > 0))
        # road without depth only where the road plane is farther than the sensor range
        assert (cam.fy * MOUNT_HEIGHT_M / (v - cam.cy) > SMALL.max_depth_m).all()
        above = ~np.isfinite(frame.depth[:int(cam.cy)])
        assert (frame.road_mask[:int(cam.cy)][above] == 0).all()
    assert np.mean([np.isnan(f.depth[:10]).mean() for f in frames]) > 0.1   # sky is seen


def test_off_road_surfaces_are_nearer_than_the_ground_behind_them(frames):
    """Walls, vehicles and trees sit on the ground: nothing off-road is farther than the
    road plane's depth at the same row, except beyond kerbs (raised by at most 0.2 m)."""
    cam = SMALL.camera
    rows = np.arange(cam.height)
    below = rows > cam.cy + 1
    ground = np.full(cam.height, np.inf)
    ground[below] = cam.fy * MOUNT_HEIGHT_M / (rows[below] - cam.cy)
    for frame in frames:
        finite = np.isfinite(frame.depth)
        assert (frame.depth[finite] <= (ground[:, None] * 1.0 + 1e-3)
                .repeat(cam.width, 1)[finite]).all()


def test_lidar_depth_is_sparse_and_samples_the_dense_depth():
    sim = SyntheticDrive(3)                                  # full KITTI size
    dense = sim.frame(12, 'dense')
    lidar = sim.frame(12, 'lidar')
    assert np.array_equal(dense.rgb, lidar.rgb)
    valid = np.isfinite(lidar.depth)
    assert 0.01 < valid.mean() < 0.12                        # most pixels invalid
    assert not (valid & ~np.isfinite(dense.depth)).any()     # no return from the sky
    noise = SceneConfig().lidar.range_noise_m
    assert np.abs(lidar.depth[valid] - dense.depth[valid]).max() < 6 * noise + 1e-3
    assert (lidar.depth[valid] <= SceneConfig().lidar.max_range_m).all()
    rows_with_returns = np.nonzero(valid.any(axis=1))[0]
    assert rows_with_returns.min() > 100                     # beams span +2 .. -24.8 degrees


def test_drive_is_deterministic_and_frames_do_not_depend_on_their_predecessors():
    first = list(drive(11, num_frames=3, config=SMALL, depth='lidar'))
    second = list(drive(11, num_frames=3, config=SMALL, depth='lidar'))
    alone = SyntheticDrive(11, SMALL).frame(2, 'lidar')
    for a, b in zip(first, second):
        assert np.array_equal(a.rgb, b.rgb)
        assert np.array_equal(a.depth, b.depth, equal_nan=True)
        assert np.array_equal(a.road_mask, b.road_mask)
    assert np.array_equal(first[2].rgb, alone.rgb)
    assert np.array_equal(first[2].depth, alone.depth, equal_nan=True)
    other = next(drive(12, num_frames=1, config=SMALL))
    assert not np.array_equal(first[0].rgb, other.rgb)


def test_drive_runs_at_ten_hertz_with_consistent_ego_motion():
    frames = list(drive(5, num_frames=6, config=SceneConfig().with_image_size(160, 48)))
    stamps = np.array([f.stamp_ns for f in frames])
    assert stamps[0] == 0 and (np.diff(stamps) == 100_000_000).all()
    travelled = np.diff([f.extras['ego_s_m'] for f in frames])
    speeds = np.array([f.extras['ego_speed_mps'] for f in frames])
    np.testing.assert_allclose(travelled, 0.1 * speeds[:-1], rtol=0.05)
    assert {f.frame_id for f in frames} == {'camera'}
    assert len({f.name for f in frames}) == 6


def test_endless_drive_and_frame_count():
    assert len(list(itertools.islice(drive(1, config=SceneConfig().with_image_size(160, 48)),
                                     4))) == 4
    assert list(drive(1, num_frames=0, config=SMALL)) == []


def test_render_frame_from_seed_or_generator():
    a = render_frame(21, SMALL)
    b = render_frame(21, SMALL)
    assert np.array_equal(a.rgb, b.rgb) and a.name == b.name
    c = render_frame(np.random.default_rng(21), SMALL, depth='lidar')
    assert c.name == a.name and np.array_equal(c.rgb, a.rgb)
    assert np.isfinite(c.depth).mean() < np.isfinite(a.depth).mean()


def test_full_size_frame_uses_kitti_geometry():
    frame = render_frame(2)
    assert frame.rgb.shape == (375, 1242, 3)
    np.testing.assert_allclose(frame.camera_matrix, [[721.5377, 0, 609.5593],
                                                     [0, 721.5377, 172.854], [0, 0, 1]])


def test_scaled_camera_maps_the_same_rays_to_the_same_image_positions():
    full = CameraModel.kitti()
    small = full.scaled(311, 94)
    points = np.random.default_rng(0).uniform([-20, -3, 2], [20, 1.6, 80], (50, 3))
    sx, sy = 311 / 1242, 94 / 375
    expected = (full.project(points) + 0.5) * [sx, sy] - 0.5      # pixel edges scale
    np.testing.assert_allclose(small.project(points), expected, atol=1e-9)


@pytest.mark.parametrize('changes, field', [
    ({'road_width_range_m': (8.0, 6.0)}, 'road_width_range_m'),
    ({'frame_rate_hz': 0.0}, 'frame_rate_hz'),
    ({'overcast_probability': 1.5}, 'overcast_probability'),
    ({'tree_density': -1.0}, 'tree_density'),
    ({'district_weights': (0, 0, 0)}, 'district_weights'),
])
def test_bad_configuration_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        SceneConfig(**changes)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='depth'):
        next(drive(0, 1, SMALL, depth='stereo'))
    with pytest.raises(ValueError, match='seed'):
        SyntheticDrive(-1, SMALL)
    with pytest.raises(ValueError, match='beams'):
        LidarConfig(beams=0)
    with pytest.raises(ValueError, match='height'):
        CameraModel(height=4)


def test_road_heading_is_the_integral_of_its_curvature():
    from scipy.integrate import quad

    from mmcert_ros.sim.scene import World
    world = World(4, SceneConfig())

    def curvature(x):
        return world.curvature(np.array([x]))[0]

    for s in (0.0, 37.0, 250.0, 1234.5, 4000.0):
        edges = np.append(np.arange(0.0, s, 60.0), s)   # one smooth piece per control span
        integral = sum(quad(curvature, lo, hi)[0] for lo, hi in zip(edges[:-1], edges[1:]))
        assert world.heading(np.array([s]))[0] == pytest.approx(integral, abs=1e-9)
    assert np.abs(world.curvature(np.linspace(0, 5000, 2001))).max() <= (
        SceneConfig().max_curvature_per_m + 1e-12)


def test_road_view_follows_the_integrated_centreline():
    """The centreline in the camera frame, against a fine Euler integration of the heading."""
    from mmcert_ros.sim.motion import Motion
    from mmcert_ros.sim.render import RoadView
    from mmcert_ros.sim.scene import World
    world = World(9, SceneConfig())
    ego = Motion(world).ego(3.7)
    view = RoadView(world, ego)
    step = 0.01
    s = ego.s + np.arange(0, 60.0 + step / 2, step)
    theta = world.heading(s) - world.heading(np.array([ego.s]))[0]
    x = np.concatenate([[0.0], np.cumsum(np.sin(theta[:-1]) * step)]) - ego.lateral
    z = np.concatenate([[0.0], np.cumsum(np.cos(theta[:-1]) * step)])
    c, si = np.cos(ego.yaw), np.sin(ego.yaw)        # into the yawed camera frame
    x_cam, z_cam = x * c - z * si, x * si + z * c
    got_x, got_z, _ = view.at_arclength(s[::500])
    np.testing.assert_allclose(got_x, x_cam[::500], atol=2e-3)
    np.testing.assert_allclose(got_z, z_cam[::500], atol=2e-3)


def _march(rays, region, inside):
    """Depth of the first point inside a solid along each ray of ``region`` (5 mm steps)."""
    r0, r1, c0, c1 = region
    directions = np.stack(np.broadcast_arrays(rays.col_slope[c0:c1][None, :],
                                              rays.row_slope[r0:r1][:, None], 1.0), -1)
    ts = np.linspace(0.3, 30.0, 5941)
    first = np.full((r1 - r0, c1 - c0), np.inf)
    for i, j in np.ndindex(first.shape):
        inner = inside(ts[:, None] * directions[i, j])
        if inner.any():
            first[i, j] = ts[np.argmax(inner)]
    return first


def _agree(hit, depth, marched):
    both = hit & np.isfinite(marched)
    assert hit.sum() > 100 and both.sum() >= 0.98 * max(hit.sum(), np.isfinite(marched).sum())
    np.testing.assert_allclose(depth[both], marched[both], atol=0.006)   # one march step


def test_box_intersection_agrees_with_ray_marching():
    from mmcert_ros.sim.primitives import CameraRays
    rays = CameraRays(SceneConfig().with_image_size(160, 48).camera)
    center, half, yaw = np.array([1.2, 0.9, 9.0]), np.array([0.9, 0.75, 2.2]), 0.4
    found = rays.box(center, half, yaw)
    right = np.array([np.cos(yaw), 0, -np.sin(yaw)])       # independent of the code's axes
    forward = np.array([np.sin(yaw), 0, np.cos(yaw)])

    def inside(points):
        rel = points - center
        return ((np.abs(rel @ right) <= half[0]) & (np.abs(rel[..., 1]) <= half[1])
                & (np.abs(rel @ forward) <= half[2]))

    _agree(found.hit, found.depth, _march(rays, found.region, inside))
    # the camera-facing end (-forward) is lit by a sun behind the camera, the far end is not
    seen = found.normal_dot(-forward)[found.hit & (found.axis == 2)]
    assert seen.size and np.allclose(seen, 1.0)


def test_ellipsoid_intersection_agrees_with_ray_marching():
    from mmcert_ros.sim.primitives import CameraRays
    rays = CameraRays(SceneConfig().with_image_size(160, 48).camera)
    center, radii = np.array([-1.5, -2.5, 11.0]), np.array([1.8, 2.2, 1.8])
    found = rays.ellipsoid(center, radii)
    _agree(found.hit, found.depth,
           _march(rays, found.region, lambda p: (((p - center) / radii) ** 2).sum(-1) <= 1))
    np.testing.assert_allclose(np.linalg.norm(found.normal, axis=0), 1.0)
    np.testing.assert_allclose((((found.offset.T) / radii) ** 2).sum(-1), 1.0, atol=1e-9)


def test_material_ids_are_distinct_palette_rows():
    from mmcert_ros.sim import materials
    singles = [name for name in ('CURB', 'SIDEWALK', 'PAVING', 'GRASS', 'DIRT', 'GRAVEL',
                                 'SHOULDER', 'ASPHALT_WALK', 'FOLIAGE', 'TRUNK', 'POLE', 'GLASS',
                                 'TIRE', 'TAILLIGHT', 'HEADLIGHT', 'HILL', 'TREELINE')]
    ids = [getattr(materials, name) for name in singles]
    assert len(set(ids)) == len(ids) and max(ids) < materials.BUILDING0
    ranges = [(materials.BUILDING0, 16), (materials.VEHICLE0, 32), (materials.ROAD0, 8),
              (materials.SKY0, 64)]
    ends = [start + size for start, size in ranges]
    assert all(end <= nxt for end, (nxt, _) in zip(ends, ranges[1:])) and ends[-1] <= 256


def test_sharp_bends_ahead_keep_the_road_lookups_sane():
    """Drive 77 at 18 s looks at a road that bends beyond 75 degrees within 140 m: the view
    table stops there and arc lengths keep growing with depth past it."""
    from mmcert_ros.sim.motion import Motion
    from mmcert_ros.sim.roadview import RoadView
    from mmcert_ros.sim.scene import World
    world = World(77, SMALL)
    view = RoadView(world, Motion(world).ego(180.0))
    assert view.z[-1] < 150
    _, _, s = view.at_depth(np.geomspace(1.0, 5000.0, 200))
    assert (np.diff(s) > 0).all()
    frame = SyntheticDrive(77, SMALL).frame(1800)
    assert frame.road_mask.any()
