"""KITTI Road reader on fabricated folders, broken folders, and synth round trips."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmcert_ros.data.depth import metres_to_millimetres, millimetres_to_metres
from mmcert_ros.data.kitti import KittiCalibration, KittiRoad, project_velodyne
from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
from mmcert_ros.tools import cli

WIDTH, HEIGHT = 800, 250
P2 = [[700.0, 0.0, 600.0, 45.0], [0.0, 700.0, 170.0, -0.3], [0.0, 0.0, 1.0, 0.003]]
TR_VELO_TO_CAM = [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]]
# Velodyne points and where they must land, worked out by hand:
#   A (10.27, -1, 0.58):  cam (1, -0.66, 10)     P2 -> (6745, 1237.7, 10.003) -> u 674.30, v 123.73
#   B (20.27, 2, -1.42):  cam (-2, 1.34, 20)     P2 -> (10645, 4337.7, 20.003)
#                          -> u 532.17, v 216.85
#   C (30.27, -3.11, 1.89047): cam (3.11, -1.97047, 30) -> (20222, 3720.371, 30.003)
#                          -> u 674.00, v 124.00: same pixel as A but farther, so A wins
#   D (-5, 0, 0): behind the camera (z = -5.27);  E (10.27, -10, 0): u = 1304.2, off the image
POINTS = np.array([[10.27, -1.0, 0.58, 0.5], [20.27, 2.0, -1.42, 0.1],
                   [30.27, -3.11, 1.89047, 0.9], [-5.0, 0.0, 0.0, 0.3],
                   [10.27, -10.0, 0.0, 0.2]], np.float32)


def write_calib(path: Path, p2=P2, tr=TR_VELO_TO_CAM, skip=None) -> None:
    lines = {'P0': np.ravel(P2), 'P1': np.ravel(P2), 'P2': np.ravel(p2), 'P3': np.ravel(P2),
             'R0_rect': np.eye(3).ravel(), 'Tr_velo_to_cam': np.ravel(tr),
             'Tr_imu_to_velo': np.eye(3, 4).ravel()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{k}: ' + ' '.join(f'{v:.12e}' for v in values) + '\n'
                            for k, values in lines.items() if k != skip))


def fabricate(root: Path, names=('um_000000',), depth_u16=False) -> Path:
    """A KITTI Road training folder with hand-made images, masks, calib and scans."""
    base = root / 'training'
    for i, name in enumerate(names):
        category, number = name.split('_')
        (base / 'image_2').mkdir(parents=True, exist_ok=True)
        rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        rgb[..., 0] = 200                       # red
        rgb[10, 20] = (1, 2, 3)
        rgb[0, 0, 2] = i                        # tells the frames apart
        assert cv2.imwrite(str(base / 'image_2' / f'{name}.png'), rgb[:, :, ::-1])
        gt = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        gt[..., 2] = 255                        # KITTI: red = not road ...
        gt[200:, 100:700, 0] = 255              # ... magenta (blue > 0) = road
        (base / 'gt_image_2').mkdir(exist_ok=True)
        assert cv2.imwrite(str(base / 'gt_image_2' / f'{category}_road_{number}.png'), gt)
        write_calib(base / 'calib' / f'{name}.txt')
        (base / 'velodyne').mkdir(exist_ok=True)
        POINTS.tofile(base / 'velodyne' / f'{name}.bin')
        if depth_u16:
            (base / 'depth_u16').mkdir(exist_ok=True)
            mm = np.zeros((HEIGHT, WIDTH), np.uint16)
            mm[100, 100] = 12345
            assert cv2.imwrite(str(base / 'depth_u16' / f'{name}.png'), mm)
    return root


def test_reads_rgb_mask_calibration_and_projects_velodyne_points(tmp_path):
    frame = KittiRoad(fabricate(tmp_path)).frame('um_000000')
    assert frame.rgb.shape == (HEIGHT, WIDTH, 3) and frame.rgb.dtype == np.uint8
    assert tuple(frame.rgb[10, 20]) == (1, 2, 3) and frame.rgb[5, 5, 0] == 200   # RGB order
    expected_mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    expected_mask[200:, 100:700] = 1
    assert np.array_equal(frame.road_mask, expected_mask)
    np.testing.assert_allclose(frame.camera_matrix, np.array(P2)[:, :3])
    assert frame.extras == {'category': 'um', 'depth_source': 'velodyne'}
    valid = np.argwhere(np.isfinite(frame.depth))
    assert sorted(map(tuple, valid)) == [(124, 674), (217, 532)]
    assert frame.depth[124, 674] == pytest.approx(10.003, abs=1e-4)   # A, nearer than C
    assert frame.depth[217, 532] == pytest.approx(20.003, abs=1e-4)   # B


def test_project_velodyne_keeps_the_nearest_point_per_pixel():
    calib = KittiCalibration(np.array(P2), np.eye(3), np.array(TR_VELO_TO_CAM))
    only_far = project_velodyne(POINTS[[2]], calib, WIDTH, HEIGHT)
    assert only_far[124, 674] == pytest.approx(30.003, abs=1e-4)
    both = project_velodyne(POINTS[[2, 0]], calib, WIDTH, HEIGHT)
    assert both[124, 674] == pytest.approx(10.003, abs=1e-4)


def test_depth_u16_is_preferred_and_velodyne_can_be_forced(tmp_path):
    road = KittiRoad(fabricate(tmp_path, depth_u16=True))
    frame = road.frame('um_000000')
    assert frame.extras['depth_source'] == 'depth_u16'
    assert frame.depth[100, 100] == pytest.approx(12.345)
    assert np.isfinite(frame.depth).sum() == 1
    forced = road.frame('um_000000', depth='velodyne')
    assert np.isfinite(forced.depth).sum() == 2


def test_testing_subset_without_ground_truth(tmp_path):
    fabricate(tmp_path)
    (tmp_path / 'training').rename(tmp_path / 'testing')
    for gt in (tmp_path / 'testing' / 'gt_image_2').iterdir():
        gt.unlink()
    frame = KittiRoad(tmp_path, subset='testing').frame('um_000000')
    assert frame.road_mask is None


def test_seeded_split_is_a_reproducible_partition(tmp_path):
    names = [f'{c}_{i:06d}' for c in ('um', 'umm', 'uu') for i in range(4)]
    road = KittiRoad(fabricate(tmp_path, names))
    assert road.names == sorted(names)
    train, test = road.split(seed=3, test_fraction=0.25)
    assert len(test) == 3 and len(train) == 9
    assert sorted(train + test) == sorted(names)
    assert road.split(seed=3, test_fraction=0.25) == (train, test)
    assert any(road.split(seed=s, test_fraction=0.25)[1] != test for s in range(4, 10))
    assert [f.name for f in road.frames('test', seed=3, test_fraction=0.25)] == test
    stamps = [f.stamp_ns for f in road.frames('all')]
    assert stamps == [i * 100_000_000 for i in range(12)]


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='no KITTI Road layout'):
        KittiRoad(tmp_path)
    (tmp_path / 'training' / 'image_2').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='image_2'):
        KittiRoad(tmp_path)


@pytest.mark.parametrize('break_it, error, pattern', [
    (lambda b: (b / 'calib' / 'um_000000.txt').unlink(), FileNotFoundError,
     r'calib/um_000000\.txt'),
    (lambda b: write_calib(b / 'calib' / 'um_000000.txt', skip='Tr_velo_to_cam'), ValueError,
     r'um_000000\.txt.*Tr_velo_to_cam'),
    (lambda b: write_calib(b / 'calib' / 'um_000000.txt', p2=[1.0, 2.0]), ValueError,
     r'um_000000\.txt.*P2 needs 12'),
    (lambda b: (b / 'calib' / 'um_000000.txt').write_text('P2: 1 2 x\n'), ValueError,
     r'um_000000\.txt:1.*non-numeric'),
    (lambda b: (b / 'image_2' / 'um_000000.png').write_bytes(b'not a png'), ValueError,
     r'image_2/um_000000\.png.*decode'),
    (lambda b: (b / 'velodyne' / 'um_000000.bin').write_bytes(b'\0' * 10), ValueError,
     r'velodyne/um_000000\.bin.*10 bytes'),
    (lambda b: (b / 'velodyne' / 'um_000000.bin').unlink(), FileNotFoundError,
     r'velodyne/um_000000\.bin'),
    (lambda b: cv2.imwrite(str(b / 'gt_image_2' / 'um_road_000000.png'),
                           np.zeros((5, 5, 3), np.uint8)), ValueError,
     r'um_road_000000\.png.*ground truth is \(5, 5\)'),
])
def test_broken_files_raise_errors_naming_the_file(tmp_path, break_it, error, pattern):
    fabricate(tmp_path)
    break_it(tmp_path / 'training')
    with pytest.raises(error, match=pattern):
        KittiRoad(tmp_path).frame('um_000000')


def test_eight_bit_depth_u16_is_refused(tmp_path):
    fabricate(tmp_path, depth_u16=True)
    path = tmp_path / 'training' / 'depth_u16' / 'um_000000.png'
    cv2.imwrite(str(path), np.zeros((HEIGHT, WIDTH), np.uint8))
    with pytest.raises(ValueError, match=r'depth_u16/um_000000\.png.*16-bit'):
        KittiRoad(tmp_path).frame('um_000000')


def test_unknown_frame_and_bad_arguments(tmp_path):
    road = KittiRoad(fabricate(tmp_path))
    with pytest.raises(FileNotFoundError, match='um_000007'):
        road.frame('um_000007')
    with pytest.raises(ValueError, match='split'):
        next(road.frames('validation'))
    with pytest.raises(ValueError, match='depth'):
        road.frame('um_000000', depth='stereo')


@pytest.mark.parametrize('depth', ['dense', 'lidar'])
def test_synth_writes_a_drive_that_reads_back_exactly(tmp_path, depth):
    assert cli.main(['synth', '--out', str(tmp_path), '--frames', '3', '--seed', '8',
                     '--depth', depth, '--width', '320', '--height', '96', '--stride', '2']) == 0
    config = SceneConfig().with_image_size(320, 96)
    sim = SyntheticDrive(8, config)
    road = KittiRoad(tmp_path)
    assert road.names == ['um_000000', 'um_000001', 'um_000002']
    for position, frame in enumerate(road.frames()):
        original = sim.frame(2 * position, depth)
        assert np.array_equal(frame.rgb, original.rgb)
        assert np.array_equal(frame.road_mask, original.road_mask)
        expected = millimetres_to_metres(metres_to_millimetres(original.depth))
        assert np.array_equal(frame.depth, expected, equal_nan=True)
        np.testing.assert_allclose(frame.camera_matrix, original.camera_matrix)
        # the velodyne scan reprojects onto the LiDAR pattern's pixels and depths
        scan = road.frame(frame.name, depth='velodyne').depth
        lidar = sim.frame(2 * position, 'lidar').depth
        assert np.array_equal(np.isfinite(scan), np.isfinite(lidar))
        np.testing.assert_allclose(scan[np.isfinite(scan)], lidar[np.isfinite(lidar)],
                                   rtol=1e-5)


def test_synth_contact_sheet(tmp_path):
    path = tmp_path / 'sheet.png'
    assert cli.main(['synth', '--contact-sheet', str(path), '--frames', '2',
                     '--width', '320', '--height', '96']) == 0
    sheet = cv2.imread(str(path))
    assert sheet.shape == (2 * round(96 * 414 / 320), 3 * 414, 3)


def test_synth_without_output_is_an_error(capsys):
    assert cli.main(['synth']) == 2
    assert '--out' in capsys.readouterr().err


#: image sizes (width, height) that occur in KITTI Road beside 1242x375
ODD_SIZES = ((1241, 376), (1238, 374), (1226, 370))


def kitti_colour_ground_truth(height: int, width: int, rng) -> np.ndarray:
    """An RGB ground-truth image as KITTI publishes it: red (not road), magenta (road), a
    black unlabelled void, and stray colours that test the per-channel rule."""
    gt = np.zeros((height, width, 3), np.uint8)
    gt[..., 0] = 255                                    # red: labelled, not road
    gt[height // 2:, width // 4: 3 * width // 4, 2] = 255    # + blue: magenta = road
    gt[: height // 5] = 0                               # the void above the horizon
    stray = rng.random((height, width)) < 0.01          # any red > 0 is labelled, blue > 0
    gt[stray] = rng.integers(0, 256, (int(stray.sum()), 3), dtype=np.uint8)   # is road
    return gt


@pytest.mark.parametrize('width, height', ODD_SIZES)
def test_odd_kitti_sizes_and_the_devkit_ground_truth_decoding(tmp_path, width, height):
    """Road = blue > 0 and labelled = red > 0 (the devkit's roadArea and validArea), read
    back against PIL's decoding of the same file, at the sizes KITTI Road really has."""
    from PIL import Image

    rng = np.random.default_rng(width)
    base = tmp_path / 'training'
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    gt = kitti_colour_ground_truth(height, width, rng)
    for folder, name, image in (('image_2', 'uu_000007', rgb),
                                ('gt_image_2', 'uu_road_000007', gt)):
        (base / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(base / folder / f'{name}.png')
    write_calib(base / 'calib' / 'uu_000007.txt')
    (base / 'velodyne').mkdir()
    POINTS.tofile(base / 'velodyne' / 'uu_000007.bin')

    frame = KittiRoad(tmp_path).frame('uu_000007')
    decoded = np.asarray(Image.open(base / 'gt_image_2' / 'uu_road_000007.png').convert('RGB'))
    assert frame.rgb.shape == (height, width, 3) and frame.depth.shape == (height, width)
    np.testing.assert_array_equal(frame.rgb, rgb)
    np.testing.assert_array_equal(frame.road_mask, (decoded[..., 2] > 0).astype(np.uint8))
    np.testing.assert_array_equal(frame.road_valid, decoded[..., 0] > 0)
    np.testing.assert_array_equal(frame.road_valid, gt[..., 0] > 0)      # as written
    assert 0.15 < 1 - frame.road_valid.mean() < 0.25                       # the void
    assert frame.extras['category'] == 'uu'


def test_unlabelled_pixels_are_left_out_of_every_metric(tmp_path):
    """Evaluating a KITTI folder with a void area counts exactly its labelled pixels, and
    equals the metrics of the same frames with the void pixels cut out by hand."""
    from helpers.evaluation_inputs import CONFIG, LocalBrightness
    from mmcert_ros.certify import CertifiedSegmenter
    from mmcert_ros.evaluation import KittiFrames, evaluate
    from mmcert_ros.evaluation.metrics import certified_confusion, plain_confusion
    from mmcert_ros.evaluation.seeds import frame_seed
    from mmcert_ros.sim.synthetic import export_kitti

    export_kitti(tmp_path / 'kitti', seed=3, num_frames=2,
                 config=SceneConfig().with_image_size(96, 32))
    dataset = KittiRoad(tmp_path / 'kitti')
    for name in dataset.names:          # blank out the top rows as KITTI's void
        path = dataset.paths(name)['gt']
        gt = cv2.imread(str(path))
        gt[:8] = 0
        assert cv2.imwrite(str(path), gt)
    metrics = evaluate(KittiFrames(tmp_path / 'kitti'), CertifiedSegmenter(LocalBrightness(),
                       CONFIG), tmp_path / 'out', progress=False, input_id='k')
    labelled = 2 * (32 - 8) * 96
    plain, certified = metrics['plain'], metrics['certified']
    assert plain['tp'] + plain['tn'] + plain['fp'] + plain['fn'] == labelled
    assert certified['tp'] + certified['tn'] + certified['fp'] + certified['fn'] == labelled
    # the same counts from the frames with the void rows cut out (the same per-frame seeds)
    by_hand_plain = by_hand_certified = None
    for frame in KittiFrames(tmp_path / 'kitti'):
        certificate = CertifiedSegmenter(LocalBrightness(), CONFIG.replace(
            seed=frame_seed(CONFIG.seed, 'k', frame.stamp_ns))).certify_frame(frame)
        assert not frame.road_valid[:8].any() and frame.road_valid[8:].all()
        cut = (slice(8, None), slice(None))
        plain_counts = plain_confusion(certificate.labels[cut], frame.road_mask[cut])
        certified_counts = certified_confusion(certificate.labels[cut],
                                               certificate.certified[cut], frame.road_mask[cut])
        by_hand_plain = plain_counts if by_hand_plain is None else by_hand_plain + plain_counts
        by_hand_certified = (certified_counts if by_hand_certified is None
                             else by_hand_certified + certified_counts)
    assert plain == by_hand_plain.as_dict() and certified == by_hand_certified.as_dict()
