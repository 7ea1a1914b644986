"""build_engines: one parameter file gives the same model, l0 engine, booster and l2 certifier
to the node and every offline tool (shipped model and boosters)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmcert_ros.certify.l2.certifier import FrameCertification
from mmcert_ros.data.frame import Frame
from mmcert_ros.errors import UserError
from mmcert_ros.models.booster import BoosterConfig, SmoothnessBooster, default_booster_path
from mmcert_ros.segmenter.engines import build_engines
from mmcert_ros.segmenter.settings import load_settings

torch.set_num_threads(1)
BOOSTER = default_booster_path(0.25)


def _params(tmp_path, **fs) -> str:
    lines = ['mmcert_segmenter:', '  ros__parameters:', '    model.device: cpu',
             '    certify.num_samples: 6', '    certify.seed: 3', '    model.batch_size: 6',
             *(f'    fs.{name}: {value}' for name, value in fs.items())]
    path = tmp_path / 'mmcert.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return path


@pytest.fixture(scope='module')
def frame_files(tmp_path_factory):
    """One synthetic frame as the PNGs ``mmcert-ros certify`` reads, and the Frame."""
    import cv2
    from mmcert_ros.data.kitti import read_depth_u16, read_rgb
    folder = tmp_path_factory.mktemp('frame')
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    depth_mm = rng.integers(1000, 40000, (16, 24)).astype(np.uint16)
    cv2.imwrite(str(folder / 'rgb.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / 'depth.png'), depth_mm)
    frame = Frame(rgb=read_rgb(folder / 'rgb.png'), depth=read_depth_u16(folder / 'depth.png'))
    return folder / 'rgb.png', folder / 'depth.png', frame


def test_the_factory_builds_what_the_parameter_file_says(tmp_path):
    settings = load_settings(_params(tmp_path, sigma=0.25, radius=0.02, num_samples=10,
                                     booster=str(BOOSTER), joint='true'))
    engines = build_engines(settings)
    assert engines.device == torch.device('cpu') and engines.segmenter.model is engines.model
    assert engines.booster is not None and engines.l2.boosted
    assert engines.l2.config == settings.certify.replace(num_samples=10)
    assert engines.l2.settings.joint and engines.l2.device == engines.device
    off = build_engines(load_settings(_params(tmp_path, booster=str(BOOSTER))))
    assert off.l2 is None and off.booster is not None   # loaded (and checked) while sigma is 0


def test_a_rebuild_reuses_what_did_not_change(tmp_path):
    first = build_engines(load_settings(_params(tmp_path, sigma=0.25, booster=str(BOOSTER))))
    settings = load_settings(_params(tmp_path, sigma=0.5, booster=str(BOOSTER)),
                             {'certify.num_samples': 9})
    second = build_engines(settings, previous=first)
    assert second.model is first.model and second.segmenter is first.segmenter
    assert second.booster is first.booster and second.l2.settings.sigma == 0.5
    assert second.l2.config.num_samples == 9
    other = build_engines(load_settings(_params(tmp_path, sigma=0.25,
                                                booster=str(default_booster_path(0.5)))),
                          previous=second)
    assert other.model is first.model and other.booster is not first.booster


@pytest.fixture(scope='module')
def misfit_booster(tmp_path_factory):
    from mmcert_ros.models.booster import save_booster
    path = tmp_path_factory.mktemp('booster') / 'small.pt'
    return save_booster(path, SmoothnessBooster(BoosterConfig(feature_dim=3)), {})


def test_a_booster_that_does_not_fit_the_model_is_refused_by_every_tool(
        tmp_path, misfit_booster, frame_files, capsys):
    from mmcert_ros.tools.cli import main
    params = _params(tmp_path, sigma=0.25, booster=str(misfit_booster))
    with pytest.raises(UserError, match='fs.booster .*small.pt.*does not fit'):
        build_engines(load_settings(params))
    rgb, depth, _ = frame_files
    out = tmp_path / 'out'
    assert main(['certify', '--rgb', str(rgb), '--depth', str(depth), '--out', str(out),
                 '--config', str(params)]) == 2
    error = capsys.readouterr().err
    assert 'fs.booster' in error and 'does not fit' in error and 'Traceback' not in error
    assert not out.exists()


def test_certify_with_fs_joint_publishes_the_joint_ensemble(tmp_path, frame_files):
    import cv2
    from mmcert_ros.tools.cli import main
    rgb, depth, frame = frame_files
    params = _params(tmp_path, sigma=0.25, radius=0.01, num_samples=12, booster=str(BOOSTER))
    out = tmp_path / 'joint'
    assert main(['certify', '--rgb', str(rgb), '--depth', str(depth), '--out', str(out),
                 '--config', str(params), '--fs-joint']) == 0
    engines = build_engines(load_settings(params, {'fs.joint': True}))
    run = FrameCertification(engines.segmenter, engines.l2, frame)
    l0, l2 = run.l0(), run.l2()
    report = json.loads((out / 'report.json').read_text())
    assert report['joint'] and report['num_samples'] == 12 and report['l2']['num_samples'] == 12
    segmentation = cv2.imread(str(out / 'segmentation.png'), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(out / 'l2_certification.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(segmentation, l0.labels)
    np.testing.assert_array_equal(mask == 255, l2.agreeing(l0.labels))
    assert report['certified_fraction'] == pytest.approx(l0.certified_fraction)


def test_evaluate_refuses_a_booster_that_does_not_fit_before_writing(tmp_path, misfit_booster,
                                                                     capsys):
    from mmcert_ros.tools.cli import main
    drive = tmp_path / 'drive'
    assert main(['synth', '--out', str(drive), '--frames', '1', '--seed', '4', '--width', '48',
                 '--height', '16']) == 0
    out = tmp_path / 'eval'
    params = _params(tmp_path, sigma=0.25, booster=str(misfit_booster))
    assert main(['evaluate', '--kitti', str(drive), '--config', str(params), '--out', str(out),
                 '--no-progress']) == 2
    error = capsys.readouterr().err
    assert 'fs.booster' in error and 'does not fit' in error and 'Traceback' not in error
    assert not out.exists()


def test_bench_reads_its_engine_settings_through_the_settings_loader(tmp_path, capsys):
    from mmcert_ros.tools.cli import main
    out = tmp_path / 'bench.json'
    params = _params(tmp_path)                       # certify.num_samples: 6
    assert main(['bench', '--config', str(params), '--width', '64', '--height', '24',
                 '--skip-engine', '--json', str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures['num_samples'] == 6 and figures['batch_size'] == 6
    assert main(['bench', '--config', str(params), '--num-samples', '9', '--width', '64',
                 '--height', '24', '--skip-engine', '--json', str(out)]) == 0
    assert json.loads(out.read_text())['num_samples'] == 9
    capsys.readouterr()
    params.write_text('mmcert_segmenter:\n  ros__parameters:\n    certify.num_samples: zero\n')
    assert main(['bench', '--config', str(params), '--skip-engine']) == 2
    error = capsys.readouterr().err
    assert 'certify.num_samples' in error and 'Traceback' not in error
