"""CertifyConfig validation and file reading; section 7 metrics against hand counts."""
import numpy as np
import pytest

from mmcert_ros.certify import CertifyConfig, Confusion, certified_confusion, plain_confusion
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.parameters import parameters_of, settings_from_parameters
from mmcert_ros.segmenter.settings import load_settings


def test_defaults_are_the_paper_setting():
    config = CertifyConfig()
    assert (config.num_samples, config.alpha) == (100, 0.001)
    assert (config.keep_fraction_rgb, config.keep_fraction_depth) == (0.0193, 0.00214)
    assert config.ray == (1, 2) and config.seed is None


@pytest.mark.parametrize('changes,message', [
    ({'num_samples': 0}, 'num_samples'),
    ({'num_samples': 2.5}, 'num_samples must be an integer'),
    ({'keep_fraction_rgb': 0.0}, 'keep_fraction_rgb'),
    ({'keep_fraction_depth': 1.5}, 'keep_fraction_depth'),
    ({'alpha': 1.0}, 'alpha'),
    ({'radius_rgb': -1}, 'radius_rgb'),
    ({'ray': (0, 0)}, 'positive step'),
    ({'ray': (1,)}, 'two integers'),
    ({'seed': -2}, 'seed'),
    ({'batch_size': 0}, 'batch_size'),
    ({'device': 'gpu'}, 'device'),
    ({'precision': 'int8'}, 'precision'),
    ({'alpha': 'small'}, 'alpha must be a number'),
])
def test_invalid_values_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        CertifyConfig().replace(**changes)


def test_ros_parameter_file_and_plain_mapping(tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text(
        'mmcert_segmenter:\n'
        '  ros__parameters:\n'
        '    certify:\n'
        '      num_samples: 32\n'
        '      seed: -1\n'
        '      ray: [1, 3]\n'
        '    model: {checkpoint: "", batch_size: 8, device: cpu}\n'
        '    sync: {slop: 0.02}\n'
        'other_node:\n'
        '  ros__parameters: {x: 1}\n')
    config = load_settings(params).certify
    assert config.num_samples == 32 and config.seed is None and config.ray == (1, 3)
    assert config.batch_size == 8 and config.device == 'cpu'
    plain = tmp_path / 'plain.yaml'
    plain.write_text('num_samples: 12\nseed: 4\nradius_rgb: 2\n')
    assert load_settings(plain).certify == CertifyConfig(num_samples=12, seed=4, radius_rgb=2)
    assert settings_from_parameters(CertifyConfig, parameters_of(config)) == config


def test_config_file_errors(tmp_path, caplog):
    with pytest.raises(UserError, match='missing.yaml'):
        load_settings(tmp_path / 'missing.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('num_samples: [1, 2\n')
    with pytest.raises(UserError, match='not valid YAML'):
        load_settings(bad)
    wrong = tmp_path / 'wrong.yaml'
    wrong.write_text('num_samples: many\n')
    with pytest.raises(UserError, match='certify.num_samples: expected an integer'):
        load_settings(wrong)
    typo = tmp_path / 'typo.yaml'
    typo.write_text('num_sample: 3\n')
    with caplog.at_level('WARNING'):     # ignored with a warning, as the node does
        assert load_settings(typo).certify == CertifyConfig()
    assert 'ignoring unknown parameter(s) num_sample' in caplog.text


def test_certified_metrics_by_hand():
    gt = np.array([[1, 1, 0, 0]])
    labels = np.array([[1, 0, 0, 1]])
    certified = np.array([[True, True, True, False]])
    # pixel 0: road, certified, correct -> TP; pixel 1: road, wrong -> FN;
    # pixel 2: non-road certified correct -> TN; pixel 3: non-road, not certified -> FP
    counts = certified_confusion(labels, certified, gt)
    assert counts == Confusion(tp=1, tn=1, fp=1, fn=1, wrong=1)   # pixel 1: certified, wrong
    assert counts.certified == 3 and counts.wrong_fraction == pytest.approx(1 / 3)
    assert counts.pixel_accuracy == 0.5 and counts.iou == pytest.approx(1 / 3)
    assert counts.f1 == 0.5 and counts.recall == 0.5
    plain = plain_confusion(labels, gt)
    assert plain == Confusion(tp=1, tn=1, fp=1, fn=1, wrong=2)    # pixels 1 and 3 wrong
    assert plain.wrong_fraction == 0.5 == 1 - plain.pixel_accuracy
    pooled = counts + Confusion(tp=3)
    assert pooled.iou == pytest.approx(4 / 6) and pooled.total == 7
    assert pooled.wrong == 1 and pooled.wrong_fraction == pytest.approx(1 / 6)
    assert Confusion().iou == 0.0 and Confusion().wrong_fraction == 0.0
    with pytest.raises(ValueError, match='same shape'):
        certified_confusion(labels, certified, np.zeros((2, 2)))


def test_backend_and_its_precisions_are_validated_by_name():
    from mmcert_ros.certify import CertifyConfig

    assert CertifyConfig(backend='openvino', precision='bf16').backend == 'openvino'
    with pytest.raises(ValueError, match='backend must be one of'):
        CertifyConfig(backend='tensorrt')
    with pytest.raises(ValueError, match="backend 'onnxruntime' runs precision fp32"):
        CertifyConfig(backend='onnxruntime', precision='bf16')
    with pytest.raises(ValueError,
                       match="backend 'openvino' runs precision fp32, bf16 or int8, got 'fp16'"):
        CertifyConfig(backend='openvino', precision='fp16')
    assert settings_from_parameters(CertifyConfig, {'model.backend': 'onnxruntime'}).backend \
        == 'onnxruntime'
