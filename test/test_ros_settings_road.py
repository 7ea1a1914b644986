"""One params file, one road: the node (in this process, ``--params-file``), ``mmcert-ros
evaluate`` and ``mmcert-ros certify`` read the same settings from it: the same engine, the
same l2 certificate, ``~`` expanded in ``model.checkpoint`` and ``fs.booster``, and the same
default device. Also what the node does with some settings: a keep fraction the model was
not trained for keeps /diagnostics at WARN; ``sync.*`` changes reach the pairer from the
input callbacks."""
import contextlib
import dataclasses
import json
import shutil

import pytest

from helpers.ros_harness import shifted_domain

pytestmark = pytest.mark.ros   # needs ROS: the node runs on rclpy


def plain(config) -> dict:
    """A CertifyConfig as metrics.json writes it (tuples as lists)."""
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(config).items()}


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_checkpoint):
    """HOME is ``tmp_path``, holding ``~/models/tiny.pt`` and a booster that fits it."""
    from mmcert_ros.models.booster import BoosterConfig, SmoothnessBooster, save_booster
    monkeypatch.setenv('HOME', str(tmp_path))
    models = tmp_path / 'models'
    models.mkdir()
    shutil.copy(tiny_checkpoint, models / 'tiny.pt')
    save_booster(models / 'booster.pt', SmoothnessBooster(
        BoosterConfig(feature_dim=4, purifier_width=4, mapper_width=4)), {'test': True})
    return tmp_path


@contextlib.contextmanager
def in_process_node(params, monkeypatch, domain_id):
    """A SegmenterNode in this process started with the params file ``params`` (not spun)."""
    import rclpy

    from mmcert_ros.ros.segmenter_node import SegmenterNode
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=shifted_domain(domain_id))
    try:
        node = SegmenterNode(context=context,
                             cli_args=['--ros-args', '--params-file', str(params)])
        try:
            yield node
        finally:
            node.close()
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def node_settings(params, monkeypatch, domain_id):
    """The settings, engine device and booster of a SegmenterNode started with ``params``."""
    with in_process_node(params, monkeypatch, domain_id) as node:
        return node._settings, node._engines.device, node._engines.booster


def test_node_evaluate_and_certify_read_one_params_file_alike(home, monkeypatch, domain_id):
    from mmcert_ros.device import resolve_device
    from mmcert_ros.segmenter.settings import load_settings
    from mmcert_ros.tools import cli

    params = home / 'mmcert.yaml'
    params.write_text(
        'mmcert_segmenter:\n  ros__parameters:\n'
        '    model.checkpoint: ~/models/tiny.pt\n    model.batch_size: 8\n'
        '    certify.num_samples: 8\n    certify.seed: 3\n    certify.radius_rgb: 1\n'
        '    certify.alpha: 0.01\n    certify.ray: [1, 1]\n'
        '    fs.sigma: 0.25\n    fs.num_samples: 8\n    fs.booster: ~/models/booster.pt\n')
    checkpoint, booster = home / 'models' / 'tiny.pt', home / 'models' / 'booster.pt'

    settings, device, node_booster = node_settings(params, monkeypatch, domain_id)
    assert settings == load_settings(params)          # the loader the tools use
    assert settings.checkpoint == str(checkpoint) and settings.l2.booster == str(booster)
    assert node_booster is not None
    assert settings.certify.device == 'auto' and device == resolve_device('auto')
    assert (settings.certify.num_samples, settings.certify.seed) == (8, 3)

    kitti, bag, out = home / 'kitti', home / 'bag', home / 'evaluate'
    assert cli.main(['synth', '--out', str(kitti), '--frames', '1', '--seed', '4',
                     '--width', '96', '--height', '32']) == 0
    assert cli.main(['kitti2bag', str(kitti), str(bag), '--no-progress']) == 0
    assert cli.main(['evaluate', '--bag', str(bag), '--gt-topic', '/road_gt/image',
                     '--config', str(params), '--out', str(out), '--no-progress']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['config'] == plain(settings.certify)
    assert metrics['model'] == settings.checkpoint
    assert metrics['l2']['boosted'] and metrics['l2']['sigma'] == settings.l2.sigma
    assert metrics['l2']['num_samples'] == 8

    training = kitti / 'training'
    report_dir = home / 'certify'
    assert cli.main(['certify', '--rgb', str(next((training / 'image_2').glob('*.png'))),
                     '--depth', str(next((training / 'depth_u16').glob('*.png'))),
                     '--config', str(params), '--out', str(report_dir)]) == 0
    report = json.loads((report_dir / 'report.json').read_text())
    config = settings.certify
    assert report['checkpoint'] == settings.checkpoint
    assert (report['num_samples'], report['alpha'], report['seed'], report['device'],
            report['precision']) == (config.num_samples, config.alpha, config.seed,
                                     config.device, config.precision)
    assert report['radius'] == {'rgb': config.radius_rgb, 'depth': config.radius_depth}
    assert report['ray'] == list(config.ray)
    assert report['l2']['booster'] == settings.l2.booster and report['l2']['boosted']
    assert report['l2']['sigma'] == settings.l2.sigma


def test_a_keep_fraction_the_model_was_not_trained_for_keeps_diagnostics_at_warn(
        home, monkeypatch, domain_id):
    from diagnostic_msgs.msg import DiagnosticStatus
    params = home / 'fractions.yaml'
    params.write_text('mmcert_segmenter:\n  ros__parameters:\n'
                      '    model.checkpoint: ~/models/tiny.pt\n'
                      '    certify.keep_fraction_rgb: 0.05\n')
    with in_process_node(params, monkeypatch, domain_id) as node:
        published = []
        node._diagnostics_pub.publish = published.append   # the array the timer would send
        node.publish_diagnostics()
        status, = published[0].status
        assert status.level == DiagnosticStatus.WARN
        assert 'keep fractions 0.05 RGB' in status.message
        assert 'does not record its training keep fractions' in status.message


def test_sync_changes_reach_the_pairer_from_the_input_callbacks(home, monkeypatch,
                                                                domain_id):
    from rclpy.parameter import Parameter
    params = home / 'sync.yaml'
    params.write_text('mmcert_segmenter:\n  ros__parameters:\n'
                      '    model.checkpoint: ~/models/tiny.pt\n    sync.slop: 0.02\n')
    with in_process_node(params, monkeypatch, domain_id) as node:
        result = node.set_parameters_atomically([Parameter('sync.slop', value=0.5),
                                                 Parameter('sync.max_age', value=3.0)])
        assert result.successful
        assert node._pairing._pairer.slop_s == 0.02        # the parameter callback left it alone
        node._expire_pending()                    # the next input-group callback
        assert (node._pairing._pairer.slop_s, node._pairing._pairer.max_age_s) == (0.5, 3.0)
