"""kitti2bag: a KITTI Road folder (written from a synthetic drive) becomes a bag whose topics,
counts, stamps, encodings and values are checked against the folder's files read directly
with OpenCV and a hand parse of the calibration (independent of the package's KITTI reader)."""
import cv2
import numpy as np
import pytest

from mmcert_ros.bags import BagReader
from mmcert_ros.segmenter.message_fields import stamp_to_ns
from mmcert_ros.sim.synthetic import SceneConfig, export_kitti
from mmcert_ros.tools import cli

FRAMES = 3
WIDTH, HEIGHT = 96, 32
TOPICS = {'/rgb/image': 'sensor_msgs/msg/Image', '/depth/image': 'sensor_msgs/msg/Image',
          '/rgb/camera_info': 'sensor_msgs/msg/CameraInfo',
          '/road_gt/image': 'sensor_msgs/msg/Image'}


@pytest.fixture(scope='module')
def kitti(tmp_path_factory):
    root = tmp_path_factory.mktemp('kitti')
    names = export_kitti(root, seed=4, num_frames=FRAMES,
                         config=SceneConfig().with_image_size(WIDTH, HEIGHT))
    return root, names


def _p2(path):
    for line in path.read_text().splitlines():
        if line.startswith('P2:'):
            return np.array([float(v) for v in line.split()[1:]]).reshape(3, 4)
    raise AssertionError(f'no P2 in {path}')


def _by_topic(bag_path):
    with BagReader(bag_path) as bag:
        topics = {name: (t.msgtype, t.count) for name, t in bag.topics.items()}
        messages = {}
        for item in bag.messages(list(bag.topics)):
            assert item.error is None
            messages.setdefault(item.topic, []).append(item.message)
    return topics, messages


@pytest.mark.parametrize('storage, suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_bag_holds_every_frame_with_exact_values(tmp_path, kitti, storage, suffix, capsys):
    root, names = kitti
    out = tmp_path / 'kitti_bag'
    assert cli.main(['kitti2bag', str(root), str(out), '--storage', storage,
                     '--no-progress', '--start-time', '0']) == 0
    assert f'wrote {out} ({storage})' in capsys.readouterr().out
    assert next(out.glob(f'*{suffix}')) and (out / 'metadata.yaml').is_file()
    topics, messages = _by_topic(out)
    assert topics == {**{name: (msgtype, FRAMES) for name, msgtype in TOPICS.items()},
                      '/points': ('sensor_msgs/msg/PointCloud2', FRAMES),
                      '/tf_static': ('tf2_msgs/msg/TFMessage', 1)}   # one calibration
    for topic, items in messages.items():
        if topic == '/tf_static':
            continue
        assert [stamp_to_ns(m.header.stamp) for m in items] == [i * 100_000_000
                                                                for i in range(FRAMES)]
        assert {m.header.frame_id for m in items} == {'velodyne' if topic == '/points'
                                                      else 'camera'}
    base = root / 'training'
    for index, name in enumerate(names):
        rgb, depth, gt = (messages[t][index] for t in ('/rgb/image', '/depth/image',
                                                       '/road_gt/image'))
        assert (rgb.encoding, depth.encoding, gt.encoding) == ('rgb8', '16UC1', 'mono8')
        png = cv2.imread(str(base / 'image_2' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(rgb.data.reshape(HEIGHT, WIDTH, 3), png[:, :, ::-1])
        depth_png = cv2.imread(str(base / 'depth_u16' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert depth_png.dtype == np.uint16 and depth.is_bigendian == 0
        np.testing.assert_array_equal(depth.data.view('<u2').reshape(HEIGHT, WIDTH), depth_png)
        gt_png = cv2.imread(str(base / 'gt_image_2' / f'{name.replace("_", "_road_")}.png'),
                            cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(gt.data.reshape(HEIGHT, WIDTH),
                                      np.where(gt_png[:, :, 0] > 0, 255, 0))
        info = messages['/rgb/camera_info'][index]
        p2 = _p2(base / 'calib' / f'{name}.txt')
        assert (info.width, info.height) == (WIDTH, HEIGHT)
        np.testing.assert_array_equal(info.p.reshape(3, 4), p2)
        np.testing.assert_array_equal(info.k.reshape(3, 3), p2[:, :3])


def test_testing_subset_has_no_ground_truth_topic(tmp_path, kitti):
    root, _ = kitti
    subset = tmp_path / 'data_road'
    (subset / 'testing').mkdir(parents=True)
    for folder in ('image_2', 'calib', 'depth_u16'):
        (subset / 'testing' / folder).symlink_to(root / 'training' / folder)
    assert cli.main(['kitti2bag', str(subset), str(tmp_path / 'bag'), '--subset', 'testing',
                     '--no-progress']) == 0
    topics, _ = _by_topic(tmp_path / 'bag')
    assert set(topics) == set(TOPICS) - {'/road_gt/image'}


def test_existing_output_needs_force_and_a_failed_conversion_keeps_the_old_bag(
        tmp_path, kitti, capsys):
    root, names = kitti
    out = tmp_path / 'bag'
    argv = ['kitti2bag', str(root), str(out), '--no-progress']
    assert cli.main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert cli.main(argv) == 2
    assert 'exists already; pass --force' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    broken = tmp_path / 'broken'
    (broken / 'training').mkdir(parents=True)
    for folder in ('image_2', 'calib', 'gt_image_2'):
        (broken / 'training' / folder).symlink_to(root / 'training' / folder)
    (broken / 'training' / 'depth_u16').mkdir()
    for name in names:
        (broken / 'training' / 'depth_u16' / f'{name}.png').write_bytes(b'not a png')
    assert cli.main(['kitti2bag', str(broken), str(out), '--force', '--no-progress']) == 2
    error = capsys.readouterr().err
    assert 'depth_u16' in error and 'cannot decode depth image' in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['bag', 'broken']  # no leftovers

    assert cli.main([*argv, '--force']) == 0
    not_a_bag = tmp_path / 'notes'
    not_a_bag.mkdir()
    assert cli.main(['kitti2bag', str(root), str(not_a_bag), '--force', '--no-progress']) == 2
    assert 'is not a rosbag2 bag; not removing it' in capsys.readouterr().err


def test_missing_kitti_folder_is_a_clear_error(tmp_path, capsys):
    assert cli.main(['kitti2bag', str(tmp_path / 'nope'), str(tmp_path / 'bag')]) == 2
    assert 'no KITTI Road layout' in capsys.readouterr().err
    assert not (tmp_path / 'bag').exists()


def test_missing_ground_truth_image_stops_the_conversion_naming_it(tmp_path, kitti, capsys):
    root, names = kitti
    partial = tmp_path / 'partial' / 'training'
    partial.mkdir(parents=True)
    for folder in ('image_2', 'calib', 'depth_u16'):
        (partial / folder).symlink_to(root / 'training' / folder)
    (partial / 'gt_image_2').mkdir()
    kept = sorted((root / 'training' / 'gt_image_2').iterdir())[:-1]   # lose the last one
    for path in kept:
        (partial / 'gt_image_2' / path.name).symlink_to(path)
    missing = partial / 'gt_image_2' / f'{names[-1].replace("_", "_road_", 1)}.png'
    assert not missing.exists()
    out = tmp_path / 'bag'
    assert cli.main(['kitti2bag', str(tmp_path / 'partial'), str(out), '--no-progress']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'Traceback' not in error[0]
    assert f'ground truth missing for 1 of {FRAMES} frames: {missing}' in error[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['partial']   # no staging left


def _matrix(path, key, shape):
    for line in path.read_text().splitlines():
        if line.startswith(f'{key}:'):
            return np.array([float(v) for v in line.split()[1:]]).reshape(shape)
    raise AssertionError(f'no {key} in {path}')


def test_velodyne_scans_become_clouds_and_the_calibration_a_static_transform(tmp_path, kitti):
    """The clouds hold the .bin files' points exactly; the /tf_static transform and the
    camera_info K project them where P2 @ R0_rect @ Tr_velo_to_cam (hand-parsed) does."""
    from scipy.spatial.transform import Rotation

    from mmcert_ros.data.point_cloud import decode_xyz

    root, names = kitti
    out = tmp_path / 'bag'
    assert cli.main(['kitti2bag', str(root), str(out), '--no-progress']) == 0
    _, messages = _by_topic(out)
    (stamped,) = messages['/tf_static'][0].transforms
    assert (stamped.header.frame_id, stamped.child_frame_id) == ('camera', 'velodyne')
    t, q = stamped.transform.translation, stamped.transform.rotation
    rotation = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    base = root / 'training'
    for index, name in enumerate(names):
        scan = np.fromfile(base / 'velodyne' / f'{name}.bin', dtype='<f4').reshape(-1, 4)
        cloud = messages['/points'][index]
        assert [f.name for f in cloud.fields] == ['x', 'y', 'z', 'intensity']
        np.testing.assert_array_equal(decode_xyz(cloud), scan[:, :3])
        calib = base / 'calib' / f'{name}.txt'
        p2, r0 = _matrix(calib, 'P2', (3, 4)), _matrix(calib, 'R0_rect', (3, 3))
        tr = np.vstack([_matrix(calib, 'Tr_velo_to_cam', (3, 4)), [0, 0, 0, 1]])
        rect = np.eye(4)
        rect[:3, :3] = r0
        expected = (p2 @ rect @ tr @ np.hstack([scan[:, :3], np.ones((len(scan), 1))]).T).T
        camera = scan[:, :3].astype(np.float64) @ rotation.T + [t.x, t.y, t.z]
        got = camera @ messages['/rgb/camera_info'][index].k.reshape(3, 3).T
        np.testing.assert_allclose(got[:, :2] / got[:, 2:], expected[:, :2] / expected[:, 2:],
                                   atol=1e-6)
