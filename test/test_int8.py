"""precision int8 on backend openvino: a deterministic base model close to the fp32 one.

The int8 model is quantized from the shipped network by NNCF on synthetic calibration frames
(mmcert_ros.models.quantization); these tests build it as the engine does.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.segmenter.parameters import settings_from_parameters

pytest.importorskip('openvino')
pytest.importorskip('nncf')

#: documented floor (README, Performance): on this frame, N = 32, the int8 ensemble's labels
#: agree with the fp32 ensemble's on at least 99.5 % of the pixels (measured: 99.94 %), and
#: its top counts lie within 2 votes of fp32's on at least 99.5 % (measured: 99.99 %)
LABEL_AGREEMENT_FLOOR = 0.995
TOP_COUNT_WITHIN_2_FLOOR = 0.995


@pytest.fixture(scope='module')
def model():
    from mmcert_ros.models import load_model

    return load_model(None, 'cpu')


@pytest.fixture(scope='module')
def frame():
    from mmcert_ros.sim.synthetic import SceneConfig, drive

    return next(drive(seed=0, num_frames=1, config=SceneConfig().with_image_size(620, 188)))


CONFIG = CertifyConfig(num_samples=32, seed=1, batch_size=16, device='cpu', backend='openvino')


def test_int8_votes_are_deterministic_across_builds_runs_and_batch_sizes(
        model, frame, monkeypatch):
    """Same draws, same votes: whether the int8 model is quantized again (a new segmenter,
    the int8 model cache off), run again, or fed the samples in other micro-batches (5 or 32
    at a time, so that each sample's vote cannot depend on which other samples share its
    batch)."""
    monkeypatch.setenv('MMCERT_ROS_CACHE', 'off')
    int8 = CONFIG.replace(precision='int8')
    first = CertifiedSegmenter(model, int8)
    expected = first.certify_frame(frame)
    assert 0.05 < expected.labels.mean() < 0.95  # both classes are voted for
    again = first.certify_frame(frame)
    rebuilt = CertifiedSegmenter(model, int8).certify_frame(frame)
    first.config = int8.replace(batch_size=5)
    small = first.certify_frame(frame)
    first.config = int8.replace(batch_size=32)
    whole = first.certify_frame(frame)
    for other in (again, rebuilt, small, whole):
        np.testing.assert_array_equal(other.top_counts, expected.top_counts)
        np.testing.assert_array_equal(other.labels, expected.labels)
        np.testing.assert_array_equal(other.certified, expected.certified)


def test_int8_agrees_with_fp32_above_the_documented_floor(model, frame):
    exact = CertifiedSegmenter(model, CONFIG).certify_frame(frame)
    int8 = CertifiedSegmenter(model, CONFIG.replace(precision='int8')).certify_frame(frame)
    assert np.mean(int8.labels == exact.labels) >= LABEL_AGREEMENT_FLOOR
    difference = np.abs(int8.top_counts.astype(int) - exact.top_counts.astype(int))
    assert np.mean(difference <= 2) >= TOP_COUNT_WITHIN_2_FLOOR
    assert not np.array_equal(int8.top_counts, exact.top_counts)  # it is another model


def test_int8_quantizes_every_convolution_but_the_first(model):
    """The calibrated model: int8 weights at every convolution of the trunk but the first,
    which reads the raw level-0 input and keeps its float weights. (The cosine head's
    weights are computed in the graph from the prototypes, not stored.)"""
    import openvino

    from mmcert_ros.models.backends import export_onnx
    from mmcert_ros.models.calibration import calibration_levels
    from mmcert_ros.models.quantization import first_convolution, quantize_int8

    dense = openvino.Core().read_model(export_onnx(model), b'')
    quantized = quantize_int8(dense, calibration_levels(model))

    def stored_weight_type(op) -> str | None:
        """Element type of the constant behind the weight input (through dequantization),
        None when the weight is computed."""
        source = op.input_value(1).get_node()
        while source.get_type_name() in ('Multiply', 'Subtract', 'Convert'):
            source = source.input_value(0).get_node()
        return source.get_element_type().get_type_name() \
            if source.get_type_name() == 'Constant' else None

    weights = [stored_weight_type(op) for op in quantized.get_ordered_ops()
               if op.get_type_name() == 'Convolution']
    first = next(op for op in quantized.get_ordered_ops() if op.get_type_name() == 'Convolution')
    assert first.get_friendly_name() == first_convolution(dense)
    stored = [kind for kind in weights if kind is not None]
    assert len(stored) == 16 and stored[0] == 'f32' and set(stored[1:]) == {'i8'}, weights


@pytest.mark.parametrize('changes,message', [
    ({'precision': 'int8'},
     r"backend 'torch' runs precision fp32, bf16 or fp16, got 'int8' \(run by backend openvino\)"),
    ({'precision': 'int8', 'backend': 'onnxruntime'},
     r"backend 'onnxruntime' runs precision fp32, got 'int8' \(run by backend openvino\)"),
    ({'precision': 'int4', 'backend': 'openvino'}, 'precision must be one of'),
])
def test_unsupported_int8_combinations_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        CertifyConfig(**changes)
    assert settings_from_parameters(CertifyConfig, {'model.backend': 'openvino',
                                                    'model.precision': 'int8'}).precision \
        == 'int8'


def test_nncf_is_imported_with_its_telemetry_off():
    """In a fresh interpreter (NNCF also turns telemetry off under pytest, so not here): no
    usage events leave a node that runs int8, and the environment is left as it was."""
    script = ('import os\n'
              'from mmcert_ros.models.quantization import import_nncf\n'
              'import_nncf()\n'
              'from nncf.telemetry import wrapper\n'
              'print(isinstance(wrapper.telemetry, wrapper.NNCFTelemetry), '
              'os.environ.get("NNCF_CI"))\n')
    environment = {key: value for key, value in os.environ.items() if key != 'NNCF_CI'}
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False', 'None']  # the stub, not the sender


def test_int8_without_nncf_says_what_to_install(model, monkeypatch, tmp_path):
    monkeypatch.setenv('MMCERT_ROS_CACHE', str(tmp_path))  # empty: it must quantize
    monkeypatch.setitem(sys.modules, 'nncf', None)  # import nncf now raises ImportError
    with pytest.raises(ValueError, match='precision int8 needs the nncf package'):
        CertifiedSegmenter(model, CONFIG.replace(precision='int8'))


def test_bench_reports_the_int8_mode_beside_fp32(model):
    """``mmcert-ros bench`` times int8 in the same run as the reference and fp32 and reports
    its changed labels against both."""
    from mmcert_ros.speed.engine_speed import bench_speed
    from mmcert_ros.sim.synthetic import SceneConfig, drive

    frame = next(drive(seed=3, num_frames=1, config=SceneConfig().with_image_size(160, 48)))
    engine = bench_speed(model, frame, num_samples=8, batch_size=4,
                         modes=('fp32', 'openvino_int8'), repeats=1)
    int8 = engine['openvino_int8']
    assert int8['total_s'] > 0 and int8['engine_total_s'] > 0 and int8['speedup'] > 0
    assert 0 <= int8['changed_labels_vs_fp32'] <= 0.05
    assert int8['changed_labels'] == pytest.approx(int8['changed_labels_vs_fp32'])
    assert engine['fp32']['changed_top_counts'] == 0.0
