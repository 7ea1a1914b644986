"""`mmcert-ros certify` on frames written by `mmcert-ros synth`."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from mmcert_ros.certify import delta
from mmcert_ros.models import DEFAULT_CHECKPOINT, NetworkConfig, build_model, save_checkpoint
from mmcert_ros.tools.cli import main

WIDTH, HEIGHT = 160, 48
N_PIXELS = WIDTH * HEIGHT
K_RGB, K_DEPTH = round(0.0193 * N_PIXELS), round(0.00214 * N_PIXELS)  # 148, 16


@pytest.fixture(scope='module')
def drive(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp('synth')
    assert main(['synth', '--out', str(out), '--frames', '1', '--seed', '4', '--width',
                 str(WIDTH), '--height', str(HEIGHT)]) == 0
    training = out / 'training'
    return {'rgb': next((training / 'image_2').glob('*.png')),
            'depth': next((training / 'depth_u16').glob('*.png')),
            'gt': next((training / 'gt_image_2').glob('*.png'))}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    """A small network with non-trivial batch-norm statistics (fast to certify)."""
    torch.manual_seed(0)
    model = build_model(NetworkConfig(width=8, feature_dim=4))
    model.eval()
    with torch.no_grad():
        model.log_scale.fill_(2.0)
    return save_checkpoint(tmp_path_factory.mktemp('model') / 'tiny.pt', model, {'test': True})


def certify(drive, out, *extra, gt=True) -> int:
    args = ['certify', '--rgb', str(drive['rgb']), '--depth', str(drive['depth']),
            '--out', str(out), *extra]
    if gt:
        args += ['--gt', str(drive['gt'])]
    return main(args)


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_outputs_agree_with_each_other_and_with_the_ground_truth(drive, checkpoint, tmp_path):
    assert certify(drive, tmp_path, '--checkpoint', str(checkpoint), '--num-samples', '30',
                   '--seed', '1') == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    segmentation = read(tmp_path / 'segmentation.png')
    certification = read(tmp_path / 'certification.png')
    radius = read(tmp_path / 'radius.png')
    overlay = read(tmp_path / 'overlay.png')
    assert segmentation.shape == certification.shape == radius.shape == (HEIGHT, WIDTH)
    assert overlay.shape == (HEIGHT, WIDTH, 3)
    assert set(np.unique(segmentation)) <= {0, 1}
    assert set(np.unique(certification)) <= {0, 255}

    assert report['num_samples'] == 30 and report['alpha'] == 0.001
    assert report['n'] == {'rgb': N_PIXELS, 'depth': N_PIXELS}
    assert report['k'] == {'rgb': K_RGB, 'depth': K_DEPTH}
    assert report['radius'] == {'rgb': 0, 'depth': 0} and report['delta'] == 0.0
    assert report['seed'] == 1
    certified = certification == 255
    assert report['certified_fraction'] == pytest.approx(certified.mean())
    # the radius map certifies (t >= 0) no pixel that Holm at radius 0 leaves out
    assert not np.any((radius != 255) & ~certified)
    assert {'sampling', 'inference', 'certification', 'total'} <= set(report['timings_s'])

    # metrics: an independent count from the written PNGs and the KITTI ground truth
    road = read(drive['gt'])[:, :, 0] > 0  # BGR: blue channel
    correct = (segmentation == 1) == road
    tp = int(np.sum(certified & correct & road))
    fp = int(np.sum(~road & ~(certified & correct)))
    fn = int(np.sum(road & ~(certified & correct)))
    assert (report['certified']['tp'], report['certified']['fp'],
            report['certified']['fn']) == (tp, fp, fn)
    assert report['certified']['iou'] == pytest.approx(tp / (tp + fp + fn))
    wrong = int(np.sum(certified & ~correct))     # certified, label differs from the truth
    assert report['certified']['wrong'] == wrong
    assert report['certified']['wrong_fraction'] == pytest.approx(wrong / certified.sum())
    plain_tp = int(np.sum((segmentation == 1) & road))
    plain_errors = np.sum((segmentation == 1) & ~road) + np.sum((segmentation == 0) & road)
    assert report['plain']['iou'] == pytest.approx(plain_tp / (plain_tp + plain_errors))

    # the overlay tints uncertified not-road red and leaves certified not-road untinted
    rgb = read(drive['rgb'])
    untinted = certified & (segmentation == 0)
    np.testing.assert_array_equal(overlay[untinted], rgb[untinted])


def test_a_fixed_seed_reproduces_the_outputs(drive, checkpoint, tmp_path):
    for name in ('a', 'b'):
        assert certify(drive, tmp_path / name, '--checkpoint', str(checkpoint),
                       '--num-samples', '10', '--seed', '7', gt=False) == 0
    for image in ('segmentation.png', 'certification.png', 'radius.png', 'overlay.png'):
        np.testing.assert_array_equal(read(tmp_path / 'a' / image), read(tmp_path / 'b' / image))
    report = json.loads((tmp_path / 'a' / 'report.json').read_text())
    assert 'certified' not in report and 'plain' not in report  # no --gt, no metrics


def test_config_file_sets_the_engine_and_model_and_flags_override_it(drive, checkpoint,
                                                                     tmp_path):
    config = tmp_path / 'mmcert.yaml'
    config.write_text(yaml.safe_dump({'mmcert_segmenter': {'ros__parameters': {
        'certify': {'num_samples': 12, 'radius_rgb': 1, 'radius_depth': 2, 'seed': 3},
        'model': {'checkpoint': str(checkpoint)}}}}))
    assert certify(drive, tmp_path / 'from_file', '--config', str(config)) == 0
    report = json.loads((tmp_path / 'from_file' / 'report.json').read_text())
    assert report['num_samples'] == 12 and report['seed'] == 3
    assert report['checkpoint'] == str(checkpoint)
    assert report['radius'] == {'rgb': 1, 'depth': 2}
    assert report['delta'] == pytest.approx(
        delta((N_PIXELS, N_PIXELS), (K_RGB, K_DEPTH), (1, 2)))
    assert certify(drive, tmp_path / 'flags', '--config', str(config), '--num-samples', '8',
                   '--radius-rgb', '0') == 0
    report = json.loads((tmp_path / 'flags' / 'report.json').read_text())
    assert report['num_samples'] == 8 and report['radius'] == {'rgb': 0, 'depth': 2}


def test_a_mono_ground_truth_mask_counts_like_the_kitti_one(drive, checkpoint, tmp_path):
    mono = tmp_path / 'mask.png'
    cv2.imwrite(str(mono), ((read(drive['gt'])[:, :, 0] > 0) * 7).astype(np.uint8))
    common = ['--checkpoint', str(checkpoint), '--num-samples', '10', '--seed', '2']
    assert certify(drive, tmp_path / 'kitti', *common) == 0
    assert certify(dict(drive, gt=mono), tmp_path / 'mono', *common) == 0
    kitti = json.loads((tmp_path / 'kitti' / 'report.json').read_text())
    masked = json.loads((tmp_path / 'mono' / 'report.json').read_text())
    assert kitti['certified'] == masked['certified'] and kitti['plain'] == masked['plain']


def test_bad_inputs_fail_with_a_message_naming_the_file(drive, checkpoint, tmp_path, capsys):
    tiny = ['--checkpoint', str(checkpoint), '--num-samples', '4']
    # an 8-bit colour image where uint16 millimetres are expected
    assert certify(dict(drive, depth=drive['rgb']), tmp_path / 'o', *tiny) == 2
    error = capsys.readouterr().err
    assert str(drive['rgb']) in error and 'single-channel' in error
    grey8 = tmp_path / 'grey8.png'
    cv2.imwrite(str(grey8), np.zeros((HEIGHT, WIDTH), np.uint8))
    assert certify(dict(drive, depth=grey8), tmp_path / 'o', *tiny) == 2
    error = capsys.readouterr().err
    assert str(grey8) in error and '16-bit' in error

    assert certify(dict(drive, rgb=tmp_path / 'missing.png'), tmp_path / 'o', *tiny) == 2
    assert 'missing.png' in capsys.readouterr().err

    small_gt = tmp_path / 'small_gt.png'
    cv2.imwrite(str(small_gt), np.ones((10, 10), np.uint8))
    assert certify(dict(drive, gt=small_gt), tmp_path / 'o', *tiny) == 2
    assert 'small_gt.png' in capsys.readouterr().err

    broken = tmp_path / 'broken.pt'
    broken.write_bytes(b'garbage')
    assert certify(drive, tmp_path / 'o', '--checkpoint', str(broken)) == 2
    assert 'corrupt' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()  # nothing half-written


def test_the_shipped_default_model_is_used_without_a_checkpoint(drive, tmp_path):
    assert certify(drive, tmp_path, '--num-samples', '10', '--seed', '0') == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['checkpoint'] == str(DEFAULT_CHECKPOINT)
    assert report['plain']['iou'] > 0.3  # a trained model finds the road


class RunsCode:
    """Unpickling this runs a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f'touch {self.marker}',)


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in lines[0], lines
    assert lines[0].startswith('mmcert-ros certify: error: ')
    return lines[0]


def test_user_errors_are_one_line_and_exit_2(drive, checkpoint, tmp_path, capsys):
    tiny = ['--checkpoint', str(checkpoint), '--num-samples', '4']
    existing = tmp_path / 'report.txt'
    existing.write_text('keep me')
    assert certify(drive, existing, *tiny) == 2
    assert f'--out {existing} is an existing file' in one_error_line(capsys)
    assert existing.read_text() == 'keep me'

    assert certify(drive, tmp_path / 'o', *tiny, '--alpha', '2') == 2
    assert 'alpha' in one_error_line(capsys)
    assert certify(drive, tmp_path / 'o', '--checkpoint', str(checkpoint),
                   '--num-samples', 'many') == 2
    assert "argument --num-samples: invalid int value: 'many'" in one_error_line(capsys)
    assert certify(drive, tmp_path / 'o', *tiny, '--config', str(tmp_path / 'none.yaml')) == 2
    assert 'none.yaml' in one_error_line(capsys)

    pickled = tmp_path / 'pickled.pt'
    torch.save({'weights': RunsCode(tmp_path / 'code_ran')}, pickled)
    assert certify(drive, tmp_path / 'o', '--checkpoint', str(pickled)) == 2
    line = one_error_line(capsys)
    assert (f'checkpoint {pickled} is refused: not a plain-tensor checkpoint (it would run code '
            'when unpickled)') in line
    assert 'weights_only' not in line and not (tmp_path / 'code_ran').exists()
    assert certify(drive, tmp_path / 'o', '--checkpoint', '/etc/passwd') == 2
    assert 'checkpoint /etc/passwd is corrupt: not a readable torch file' in one_error_line(capsys)
    assert not (tmp_path / 'o').exists()  # nothing half-written
