"""The node's ROS-free pieces, without processes: output encodings, overlay legend,
diagnostics levels and counters, parameter validation, presets on the command line."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from mmcert_ros.ros.diagnostics import PipelineStats, diagnostic_array, should_log, values_of
from mmcert_ros.segmenter.outputs import (CERTIFICATION, CERTIFIED_RADIUS, OUTPUT_TOPICS, OVERLAY,
                                          SEGMENTATION, output_images, radius_image)
from mmcert_ros.segmenter.overlay import render_overlay
from mmcert_ros.segmenter.parameters import PARAMETERS, NodeSettings
from mmcert_ros.ros.parameter_descriptors import descriptor as parameter_descriptor
from mmcert_ros.errors import UserError

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_radius_image_saturates_and_marks_uncertified():
    radius = np.array([[-1, 0, 1], [253, 254, 9000]], np.int16)
    np.testing.assert_array_equal(radius_image(radius), [[255, 0, 1], [253, 254, 254]])


def test_overlay_legend_is_one_tint_per_case():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[1, 1], [0, 0]])
    certified = np.array([[True, False], [True, False]])
    out = render_overlay(rgb, labels, certified)
    assert out[0, 0].tolist() == [50, 177, 50]      # certified road: green
    assert out[0, 1].tolist() == [177, 177, 50]     # uncertified road: yellow
    assert out[1, 0].tolist() == [100, 100, 100]    # certified non-road: untouched
    assert out[1, 1].tolist() == [177, 50, 50]      # uncertified non-road: red
    with pytest.raises(ValueError, match='overlay'):
        render_overlay(rgb, labels[:1], certified)


def test_output_images_encode_the_certificate():
    class Certificate:
        labels = np.array([[0, 1, 1]], np.uint8)
        certified = np.array([[True, False, True]])
        radius = np.array([[3, -1, 0]], np.int16)
    rgb = np.zeros((1, 3, 3), np.uint8)
    images = output_images(Certificate, rgb, set(OUTPUT_TOPICS))
    assert images[SEGMENTATION].data == bytes([0, 1, 1])
    assert images[CERTIFICATION].data == bytes([255, 0, 255])
    assert images[CERTIFIED_RADIUS].data == bytes([3, 255, 0])
    assert (images[OVERLAY].encoding, images[OVERLAY].step) == ('rgb8', 9)
    assert set(output_images(Certificate, rgb, {SEGMENTATION})) == {SEGMENTATION}
    with pytest.raises(ValueError, match='unknown output'):
        output_images(Certificate, rgb, {'mmcert/other'})


def test_the_compressed_overlay_is_the_jpeg_of_the_overlay_rendered_or_reused():
    import cv2

    from mmcert_ros.segmenter.outputs import compressed_overlay
    rng = np.random.default_rng(2)

    class Certificate:
        labels = rng.integers(0, 2, (8, 12)).astype(np.uint8)
        certified = rng.random((8, 12)) < 0.5
        radius = np.zeros((8, 12), np.int16)
    rgb = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    overlay = render_overlay(rgb, Certificate.labels, Certificate.certified)
    ok, jpeg = cv2.imencode('.jpg', np.ascontiguousarray(overlay[..., ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, 80])
    rendered = output_images(Certificate, rgb, {OVERLAY})[OVERLAY]
    for reused in (None, rendered):
        assert compressed_overlay(Certificate, rgb, reused) == \
            ('rgb8; jpeg compressed bgr8', jpeg.tobytes())


def test_log_throttle_is_powers_of_ten():
    assert [n for n in range(1, 2001) if should_log(n)] == [1, 10, 100, 1000]


PAIRING = {'received_rgb': 0, 'received_depth': 0, 'unpaired_rgb': 0, 'unpaired_depth': 0,
           'paired': 0}


def test_report_levels_and_period_accounting():
    clock = FakeClock()
    stats = PipelineStats(clock)
    for _ in range(4):
        stats.count_input('rgb')
        stats.count_input('depth')
    stats.record_frame({'decode': 0.010, 'inference': 0.090}, 0.5, 0.8, 0.01)
    stats.record_frame({'decode': 0.030, 'inference': 0.110}, 0.7, 0.9, 0.01)
    clock.now = 2.0
    report = stats.report(dict(PAIRING, paired=4), dropped_pairs=2)
    assert report.level == DiagnosticStatus.WARN           # pairs were dropped
    assert report.rgb_rate_hz == pytest.approx(2.0) and report.frame_rate_hz == pytest.approx(1.0)
    assert report.stage_ms['decode'] == pytest.approx(20.0)
    assert report.processing_ms == pytest.approx(120.0)
    assert report.latency_ms_max == pytest.approx(700.0)
    assert report.pairing['dropped_period'] == 2 and report.pairing['paired_period'] == 4

    clock.now = 3.0                                          # nothing new: OK, rates zero
    report = stats.report(dict(PAIRING, paired=4), dropped_pairs=2)
    assert report.level == DiagnosticStatus.OK and report.frames_period == 0
    assert report.frames_total == 2

    assert stats.record_error('size_mismatch', 'rgb/image: short') == 1
    assert stats.record_error('size_mismatch', 'rgb/image: short') == 2
    clock.now = 4.0
    report = stats.report(dict(PAIRING, paired=4), dropped_pairs=2)
    assert report.level == DiagnosticStatus.ERROR and report.errors_period == 2
    assert report.errors_total == {'size_mismatch': 2}

    clock.now = 5.0                                          # unpaired and nothing paired: ERROR
    report = stats.report(dict(PAIRING, paired=4, unpaired_rgb=3), dropped_pairs=2)
    assert report.level == DiagnosticStatus.ERROR and 'no RGB/depth pair' in report.summary

    array = diagnostic_array(report, 'mmcert_segmenter: pipeline', '/mmcert_segmenter',
                             stamp=_time())
    values = values_of(array)
    assert values['errors.size_mismatch'] == '2' and values['unpaired_rgb'] == '3'
    assert array.status[0].level == DiagnosticStatus.ERROR


def _time():
    from builtin_interfaces.msg import Time
    return Time(sec=1, nanosec=2)


def defaults(**changes):
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update(changes)
    return values


def test_settings_validate_all_parameters_together():
    settings = NodeSettings.from_parameters(defaults(**{'certify.seed': -1, 'sync.slop': 0.05}))
    assert settings.certify.seed is None and settings.slop_s == 0.05
    assert NodeSettings.from_parameters(defaults(**{'certify.seed': 5})).certify.seed == 5
    for name, value, match in (('certify.keep_fraction_depth', 0.0, 'keep_fraction_depth'),
                               ('model.device', 'cuda:7', 'not available|cuda'),
                               ('qos.reliability', 'sometimes', 'qos.reliability'),
                               ('model.checkpoint', '/no/such.pt', 'model.checkpoint'),
                               ('publish.overlay', 'yes', 'publish.overlay')):
        with pytest.raises(ValueError, match=match):
            NodeSettings.from_parameters(defaults(**{name: value}))
    with pytest.raises(ValueError, match='missing'):
        NodeSettings.from_parameters({})


def test_every_numeric_parameter_announces_its_range():
    for spec in PARAMETERS:
        descriptor = parameter_descriptor(spec)
        assert descriptor.description
        if spec.low is not None:
            ranges = descriptor.integer_range or descriptor.floating_point_range
            assert len(ranges) == 1 and ranges[0].from_value <= spec.default <= ranges[0].to_value


def test_descriptors_are_the_parameter_table():
    for spec in PARAMETERS:
        descriptor = parameter_descriptor(spec)
        assert (descriptor.name, descriptor.description, descriptor.additional_constraints,
                descriptor.read_only) == (spec.name, spec.description, spec.constraints,
                                          spec.read_only)
        ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
        assert [(r.from_value, r.to_value) for r in ranges] == (
            [] if spec.low is None else [(spec.low, spec.high)]), spec.name
        if descriptor.integer_range:
            assert spec.type_name == 'integer', spec.name


def test_node_preset_arguments_load_the_file_and_remap_the_topics():
    from mmcert_ros.tools.cli import build_parser
    from mmcert_ros.tools.node import preset_arguments
    args = build_parser().parse_args(
        ['node', '--preset', 'carla', 'segmenter', '--ros-args', '-p', 'certify.alpha:=0.01'])
    assert (args.node, args.preset) == ('segmenter', 'carla')
    assert args.ros_args == ['--ros-args', '-p', 'certify.alpha:=0.01']
    arguments = preset_arguments('carla')
    assert arguments[:2] == ['--ros-args', '--params-file'] and arguments[2].endswith('carla.yaml')
    assert 'rgb/image:=/carla/ego_vehicle/rgb_front/image' in arguments
    assert arguments[-1] == '--'
    with pytest.raises(ValueError, match='unknown preset'):
        preset_arguments('zed')


def test_user_docs_describe_every_parameter():
    from pathlib import Path

    from mmcert_ros.ros.sim_drive_node import PARAMETERS as SIM_PARAMETERS
    docs = (Path(__file__).resolve().parents[1] / 'docs' / 'ros.md').read_text()
    for spec in PARAMETERS + SIM_PARAMETERS:
        assert f'`{spec.name}`' in docs, spec.name


def test_l2_image_marks_certified_pixels_whose_label_agrees_with_the_published_one():
    import torch

    from mmcert_ros.certify import CertifyConfig
    from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings
    from mmcert_ros.models import NetworkConfig, build_model
    from mmcert_ros.segmenter.outputs import l2_image
    torch.manual_seed(0)
    model = build_model(NetworkConfig(width=4, feature_dim=4))
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    depth = rng.uniform(1, 50, (8, 12)).astype(np.float32)
    config = CertifyConfig(num_samples=64, seed=1)
    reference = L2Certifier(model, L2Settings(sigma=0.1), config).certify(
        rgb, depth).cells.smoothed.reference
    prototype = torch.nn.functional.normalize(torch.tensor(reference).mean((1, 2)), dim=0)
    with torch.no_grad():     # antipodal prototypes on the features: margin ~pi, certified
        model.prototypes = torch.stack([prototype, -prototype]).float()
    l2 = L2Certifier(model, L2Settings(sigma=0.1, radius=0.0), config).certify(rgb, depth)
    published = l2.labels.copy()
    published[:, ::2] = 1 - published[:, ::2]                # disagree on every other column
    image = l2_image(l2, published)
    assert (image.height, image.width, image.encoding) == (16, 24, 'mono8')
    mask = np.frombuffer(image.data, np.uint8).reshape(16, 24)
    expected = np.where(l2.certified & (l2.labels == published), 255, 0)
    np.testing.assert_array_equal(mask, expected)
    assert l2.certified[:, 1::2].any() and not mask[:, ::2].any()


def test_l2_figures_appear_in_diagnostics_only_for_a_frame_with_the_l2_certificate():
    from mmcert_ros.ros.diagnostics import L2FrameStats
    stats = PipelineStats(FakeClock())
    l2 = L2FrameStats(certified_fraction=0.25, fcsb_mean=0.5, fcsb_min=-0.125, score_mean=0.9)
    stats.record_frame({'inference': 0.1, 'l2': 0.3}, 0.5, 0.8, 0.01, l2)
    report = stats.report(dict(PAIRING, paired=1), dropped_pairs=0)
    assert report.processing_ms == pytest.approx(400.0)      # the l2 stage is processing time
    values = values_of(diagnostic_array(report, 'n', '/n', stamp=_time()))
    assert (values['l2_certified_fraction'], values['l2_fcsb_mean'], values['l2_fcsb_min'],
            values['l2_score_mean'], values['l2_ms']) == ('0.2500', '0.5', '-0.125', '0.9',
                                                          '300.00')
    stats.record_frame({'inference': 0.1}, 0.5, 0.8, 0.01)
    values = values_of(diagnostic_array(stats.report(dict(PAIRING, paired=2), 0), 'n', '/n',
                                        stamp=_time()))
    assert 'l2_fcsb_mean' not in values and values['l2_ms'] == '0.00'


def test_fs_parameters_are_validated_with_the_node_settings(tmp_path):
    settings = NodeSettings.from_parameters(defaults(**{'fs.sigma': 0.25, 'fs.radius': 0.1,
                                                        'fs.num_samples': 500}))
    assert settings.l2.enabled and settings.l2.engine_config(settings.certify).num_samples == 500
    assert not NodeSettings.from_parameters(defaults()).l2.enabled
    for name, value in (('fs.sigma', -1.0), ('fs.radius', float('nan')),
                        ('fs.num_samples', -3), ('fs.booster', str(tmp_path / 'none.pt'))):
        with pytest.raises(ValueError, match=name):
            NodeSettings.from_parameters(defaults(**{name: value}))


def test_input_health_levels_stale_inputs_budget_faults_and_abandoned_frames():
    from mmcert_ros.ros.diagnostics import HealthLimits
    clock = FakeClock()
    limits = HealthLimits(stale_warn_s=1.0, stale_error_s=3.0, processing_warn_ms=100.0,
                          processing_error_ms=500.0)
    stats = PipelineStats(clock, limits, watch_inputs=True)
    report = stats.report(PAIRING, 0)
    assert (report.level == DiagnosticStatus.WARN
            and 'no rgb message received yet' in report.summary)
    assert values_of(diagnostic_array(report, 'n', '/n', _time()))['input_age_rgb_s'] == 'never'

    def inputs_then_report(at, frame_s=None, pairing=PAIRING):
        clock.now = at
        stats.count_input('rgb')
        stats.count_input('depth')
        if frame_s is not None:
            stats.record_frame({'inference': frame_s}, 0.1, 0.9, 0.0)
        return stats.report(pairing, 0)

    assert inputs_then_report(1.0, 0.050).level == DiagnosticStatus.OK
    report = inputs_then_report(2.0, 0.200)                       # over the WARN budget
    assert report.level == DiagnosticStatus.WARN and 'processing 200 ms > 100 ms' in report.summary
    report = inputs_then_report(3.0, 0.600)
    assert (report.level == DiagnosticStatus.ERROR
            and 'processing 600 ms > 500 ms' in report.summary)
    clock.now = 4.5                                                # 1.5 s silent
    report = stats.report(PAIRING, 0)
    assert report.level == DiagnosticStatus.WARN and report.input_age_s['rgb'] == 1.5
    assert 'rgb input stale: no message for 1.5 s' in report.summary
    clock.now = 6.0                                                # 3 s silent
    report = stats.report(PAIRING, 0)
    assert report.level == DiagnosticStatus.ERROR and 'depth input stale' in report.summary
    report = inputs_then_report(6.5, pairing=dict(PAIRING, stamp_in_future=1, time_jumps=1))
    assert report.level == DiagnosticStatus.WARN
    assert 'stamp_in_future 1' in report.summary and 'time_jumps 1' in report.summary
    assert stats.record_abandoned('time_budget') == 1
    report = inputs_then_report(7.0, pairing=dict(PAIRING, stamp_in_future=1, time_jumps=1))
    assert report.level == DiagnosticStatus.WARN and '1 frame(s) abandoned' in report.summary
    values = values_of(diagnostic_array(report, 'n', '/n', _time()))
    assert values['frames_abandoned'] == '1' and values['frames_abandoned.time_budget'] == '1'
    assert values['stamp_in_future_period'] == '0'


def test_runtime_parameters_are_validated():
    settings = NodeSettings.from_parameters(defaults(**{'certify.time_budget': 2.5}))
    assert settings.runtime.time_budget_s == 2.5 and settings.runtime.jump_back_s == 1.0
    for name, value in (('sync.jump_back', 0.0), ('sync.max_age', -1.0),
                        ('certify.time_budget', 'soon'), ('diagnostics.input_stale_warn', True)):
        with pytest.raises(ValueError, match=name):
            NodeSettings.from_parameters(defaults(**{name: value}))
    with pytest.raises(ValueError, match='input_stale_error'):
        NodeSettings.from_parameters(defaults(**{'diagnostics.input_stale_warn': 5.0,
                                                 'diagnostics.input_stale_error': 1.0}))


def test_frame_times_are_stamped_with_the_frame_header():
    from std_msgs.msg import Header

    from mmcert_ros.ros.diagnostics import frame_times_array
    header = Header(frame_id='cam')
    header.stamp.sec = 12
    array = frame_times_array({'decode': 0.001, 'inference': 0.020}, 0.5, 'n: frame', header,
                              '/robot/n')
    assert array.header.stamp.sec == 12 and array.header.frame_id == 'cam'
    assert array.status[0].hardware_id == '/robot/n'
    values = values_of(array)
    assert values['processing_time_ms'] == '21.000' and values['pipeline_latency_ms'] == '500.000'
    assert values['inference_ms'] == '20.000' and values['l2_ms'] == '0.000'


def test_rgb_only_mode_is_a_warn_that_replaces_the_depth_staleness():
    """Depth silent in the RGB-only mode: WARN 'degraded: rgb-only' (never the stale-depth
    ERROR, nor 'nothing paired' for the RGB images that then skip pairing); RGB staleness
    is still reported."""
    from mmcert_ros.ros.diagnostics import HealthLimits
    clock = FakeClock()
    stats = PipelineStats(clock, HealthLimits(stale_warn_s=1.0, stale_error_s=3.0),
                          watch_inputs=True)
    stats.count_input('rgb')
    stats.count_input('depth')
    clock.now = 10.0
    stats.count_input('rgb')                                   # depth silent for 10 s
    unpaired = dict(PAIRING, unpaired_rgb=2)
    report = stats.report(unpaired, 0)
    assert report.level == DiagnosticStatus.ERROR and 'depth input stale' in report.summary
    stats.count_input('rgb')
    report = stats.report(unpaired, 0, rgb_only_s=10.0)
    assert report.level == DiagnosticStatus.WARN
    assert report.summary.count('degraded: rgb-only (no depth for 10.0 s)') == 1
    assert 'depth input stale' not in report.summary and 'no RGB/depth pair' not in report.summary
    assert values_of(diagnostic_array(report, 'n', '/n', _time()))['mode'] == 'degraded: rgb-only'
    clock.now = 20.0                                           # the camera died as well
    report = stats.report(PAIRING, 0, rgb_only_s=20.0)
    assert report.level == DiagnosticStatus.ERROR and 'rgb input stale' in report.summary
    assert values_of(diagnostic_array(stats.report(PAIRING, 0), 'n', '/n', _time()))['mode'] \
        == 'rgb-d'


def test_depth_watch_enters_and_leaves_the_rgb_only_mode_once_each():
    from mmcert_ros.segmenter.depth_watch import RGB_ONLY, RGBD, DepthWatch
    clock = FakeClock()
    watch = DepthWatch(1.5, clock)
    clock.now = 1.0
    assert not watch.check() and not watch.lost and watch.mode == RGBD
    clock.now = 1.5                          # start-up counts as an arrival: 1.5 s of silence
    assert watch.check() and watch.lost and watch.mode == RGB_ONLY
    assert not watch.check() and watch.lost  # reported once
    clock.now = 4.0
    assert watch.silence_s() == 4.0
    assert watch.arrived() and not watch.lost and watch.mode == RGBD
    assert not watch.arrived()               # only the arrival that ended the silence says so
    clock.now = 5.0
    assert not watch.check()
    off = DepthWatch(0.0, clock)             # 0 = never: RGB always waits for depth
    clock.now = 1e6
    assert not off.check() and not off.lost
    with pytest.raises(ValueError, match='timeout_s'):
        DepthWatch(-1.0)


def test_depth_parameters_are_validated():
    settings = NodeSettings.from_parameters(defaults())
    assert (settings.depth.source, settings.depth.extrinsic, settings.depth.timeout_s) == \
        ('image', None, 0.0)
    settings = NodeSettings.from_parameters(defaults(**{
        'depth.source': 'points', 'depth.extrinsic': '1 2 3 0 0 0 1', 'depth.timeout_s': 2}))
    assert settings.depth.source == 'points' and settings.depth.timeout_s == 2.0
    np.testing.assert_array_equal(settings.depth.extrinsic.translation, [1, 2, 3])
    matrix = ' '.join(str(v) for v in np.eye(4).reshape(-1))
    assert NodeSettings.from_parameters(defaults(**{'depth.extrinsic': matrix})).depth \
        .extrinsic.rotation.tolist() == np.eye(3).tolist()
    for name, value, message in (('depth.source', 'radar', 'depth.source must be one of'),
                                 ('depth.extrinsic', '1 2', 'depth.extrinsic: extrinsic must'),
                                 ('depth.extrinsic', '0 0 0 0 0 0 x', 'depth.extrinsic: could'),
                                 ('depth.extrinsic', ' '.join(['1'] * 16), 'last row'),
                                 ('depth.timeout_s', -1.0, 'depth.timeout_s must be')):
        with pytest.raises(UserError, match=message):
            NodeSettings.from_parameters(defaults(**{name: value}))
