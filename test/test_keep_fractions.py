"""A checkpoint records the keep fractions it was trained for; the engine warns when it
certifies at others (an old checkpoint without the record counts as trained at the
defaults, and the warning says so)."""
import pytest
import torch

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.certify.config import KEEP_FRACTION_DEPTH, KEEP_FRACTION_RGB
from mmcert_ros.models import NetworkConfig, build_model, load_model, save_checkpoint
from mmcert_ros.models.checkpoint import TrainedKeepFractions


def saved(path, provenance):
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(NetworkConfig(width=4, feature_dim=4)), provenance)


def engine(model, **config):
    warnings = []
    segmenter = CertifiedSegmenter(model, CertifyConfig(num_samples=4, **config),
                                   warn=warnings.append)
    return segmenter, warnings


def test_the_record_travels_from_the_checkpoint_to_the_model(tmp_path):
    path = saved(tmp_path / 'm.pt', {'keep_fraction_rgb': 0.05, 'keep_fraction_depth': 0.01})
    assert load_model(path).trained_keep_fractions == TrainedKeepFractions(0.05, 0.01)
    old = saved(tmp_path / 'old.pt', {'purpose': 'written before the record'})
    assert load_model(old).trained_keep_fractions == TrainedKeepFractions(None, None)


def test_the_shipped_models_record_the_defaults():
    assert load_model(None).trained_keep_fractions == TrainedKeepFractions(
        KEEP_FRACTION_RGB, KEEP_FRACTION_DEPTH)


def test_certifying_at_other_fractions_warns_once_per_change(tmp_path):
    model = load_model(saved(tmp_path / 'm.pt', {'keep_fraction_rgb': 0.05,
                                                 'keep_fraction_depth': 0.01}))
    segmenter, warnings = engine(model, keep_fraction_rgb=0.05, keep_fraction_depth=0.01)
    assert warnings == [] and segmenter.keep_fraction_warning is None

    segmenter.config = segmenter.config.replace(keep_fraction_rgb=0.1)
    assert len(warnings) == 1 and warnings[0] == segmenter.keep_fraction_warning
    assert '0.1 RGB / 0.01 depth' in warnings[0] and 'trained for 0.05 / 0.01' in warnings[0]
    assert 'does not record' not in warnings[0]
    segmenter.config = segmenter.config.replace(num_samples=6)   # same fractions: no repeat
    assert len(warnings) == 1
    segmenter.config = segmenter.config.replace(keep_fraction_rgb=0.05)
    assert len(warnings) == 1 and segmenter.keep_fraction_warning is None


def test_an_old_checkpoint_counts_as_trained_at_the_defaults_and_says_so(tmp_path):
    model = load_model(saved(tmp_path / 'old.pt', {}))
    assert engine(model)[1] == []                 # the defaults: nothing to say
    _, warnings = engine(model, keep_fraction_depth=0.02)
    assert len(warnings) == 1
    assert f'trained for {KEEP_FRACTION_RGB:g} / {KEEP_FRACTION_DEPTH:g}' in warnings[0]
    assert 'does not record its training keep fractions' in warnings[0]


def test_a_model_not_loaded_from_a_checkpoint_is_not_flagged():
    torch.manual_seed(0)
    segmenter, warnings = engine(build_model(NetworkConfig(width=4, feature_dim=4)),
                                 keep_fraction_rgb=0.5)
    assert warnings == [] and segmenter.keep_fraction_warning is None


def test_the_default_warning_goes_to_the_engine_logger(tmp_path, caplog):
    model = load_model(saved(tmp_path / 'old.pt', {}))
    with caplog.at_level('WARNING', logger='mmcert_ros.certify.l0.engine'):
        CertifiedSegmenter(model, CertifyConfig(num_samples=4, keep_fraction_rgb=0.5))
    assert [record.levelname for record in caplog.records] == ['WARNING']
    assert 'keep fractions 0.5 RGB' in caplog.records[0].getMessage()


@pytest.mark.ros
def test_a_standing_warning_keeps_diagnostics_at_warn():
    from diagnostic_msgs.msg import DiagnosticStatus

    from mmcert_ros.ros.diagnostics import PipelineStats
    stats = PipelineStats()
    report = stats.report({}, 0, standing_warnings=['certifying at keep fractions 0.5 ...'])
    assert report.level == DiagnosticStatus.WARN
    assert 'certifying at keep fractions 0.5' in report.summary
    assert stats.report({}, 0).level == DiagnosticStatus.OK
