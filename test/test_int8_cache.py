"""The int8 model cache (mmcert_ros.models.int8_cache): a start that finds the quantized
model of the same network on disk uses it instead of quantizing again, and never uses an
entry of another network, other code or libraries, or one that was damaged."""
import logging

import pytest
import torch

from mmcert_ros.cache import cache_folder
from mmcert_ros.models import int8_cache
from mmcert_ros.models.network import build_model

pytest.importorskip('openvino')
pytest.importorskip('nncf')


@pytest.fixture(scope='module')
def network():
    torch.manual_seed(0)
    return build_model({'width': 8}).eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('MMCERT_ROS_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


@pytest.fixture(scope='module')
def levels(network):
    from mmcert_ros.models.calibration import calibration_levels

    return calibration_levels(network)[1]


@pytest.fixture
def cache_warnings():
    """The warnings of the cache's logger, caught by a handler of its own (NNCF sets the
    level of the handlers it meets, pytest's capture handlers included, while quantizing)."""
    caught = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: caught.append(record.getMessage())
    logger = logging.getLogger('mmcert_ros.models.int8_cache')
    logger.addHandler(handler)
    yield caught
    logger.removeHandler(handler)


def _build(network):
    from mmcert_ros.models.backends import OpenVinoNet

    return OpenVinoNet(network, 'int8')


def _no_quantizing(monkeypatch):
    def refuse(*_):
        raise AssertionError('quantized although the cache holds the model')

    monkeypatch.setattr('mmcert_ros.models.quantization.quantize_int8', refuse)


def test_a_second_build_reads_the_cached_model_and_gives_the_same_logits(
        network, cache, levels, monkeypatch):
    first = _build(network)
    assert not first.int8_cache_hit
    entries = list((cache / 'int8').iterdir())
    assert [entry.name for entry in entries] == [int8_cache.int8_cache_key(network)]
    assert sorted(path.name for path in entries[0].iterdir()) == [
        'entry.json', 'model.bin', 'model.xml']
    _no_quantizing(monkeypatch)
    second = _build(network)
    assert second.int8_cache_hit
    assert torch.equal(second.run_levels(levels), first.run_levels(levels))


def test_the_key_follows_weights_network_settings_code_and_library_versions(
        network, monkeypatch):
    key = int8_cache.int8_cache_key(network)
    copy = build_model(network.config.as_dict()).eval()
    copy.load_state_dict(network.state_dict())
    assert int8_cache.int8_cache_key(copy) == key  # the same network, another object
    with torch.no_grad():  # one weight one float32 step away
        weight = copy.stage1[0][0].weight
        weight.view(-1)[0] = torch.nextafter(weight.view(-1)[0], torch.tensor(1e9))
    assert int8_cache.int8_cache_key(copy) != key
    wider = build_model({'width': 8, 'feature_dim': 4})
    assert int8_cache.int8_cache_key(wider) != int8_cache.int8_cache_key(
        build_model({'width': 8}))
    real_version = int8_cache._version
    monkeypatch.setattr(int8_cache, '_version', lambda package: 'other'
                        if package == 'openvino' else real_version(package))
    assert int8_cache.int8_cache_key(network) != key
    monkeypatch.undo()
    monkeypatch.setattr('mmcert_ros.sim.fingerprint.simulator_fingerprint', lambda: 'other')
    assert int8_cache.int8_cache_key(network) != key


def test_the_key_follows_the_source_of_the_models_package(network, tmp_path, monkeypatch):
    """An edit of any file under mmcert_ros/models changes every key (read from a copy of
    the package's files, so the checkout stays untouched)."""
    import shutil

    import mmcert_ros.models

    key = int8_cache.int8_cache_key(network)
    copy = tmp_path / 'models'
    shutil.copytree(mmcert_ros.models.__path__[0], copy)
    monkeypatch.setattr(mmcert_ros.models, '__file__', str(copy / '__init__.py'))
    assert int8_cache.int8_cache_key(network) == key
    with open(copy / 'network.py', 'a') as source:
        source.write('\n# an edit\n')
    assert int8_cache.int8_cache_key(network) != key


@pytest.mark.parametrize('damage', ['truncated', 'altered', 'record missing'])
def test_a_damaged_entry_is_ignored_rebuilt_and_replaced(network, cache, levels, damage,
                                                         cache_warnings):
    expected = _build(network).run_levels(levels)
    entry = cache / 'int8' / int8_cache.int8_cache_key(network)
    if damage == 'truncated':
        data = (entry / 'model.bin').read_bytes()
        (entry / 'model.bin').write_bytes(data[:len(data) // 2])
    elif damage == 'altered':
        data = bytearray((entry / 'model.bin').read_bytes())
        data[-1] ^= 1
        (entry / 'model.bin').write_bytes(bytes(data))
    else:
        (entry / 'entry.json').unlink()
    rebuilt = _build(network)
    assert not rebuilt.int8_cache_hit
    assert len(cache_warnings) == 1
    assert 'unusable' in cache_warnings[0] and str(entry) in cache_warnings[0]
    assert torch.equal(rebuilt.run_levels(levels), expected)
    assert _build(network).int8_cache_hit  # the entry was written again


def test_off_writes_nothing_and_an_unwritable_folder_costs_only_time(
        network, tmp_path, levels, monkeypatch, cache_warnings):
    monkeypatch.setenv('MMCERT_ROS_CACHE', 'off')
    assert cache_folder() is None
    expected = _build(network).run_levels(levels)
    assert not _build(network).int8_cache_hit
    blocked = tmp_path / 'a file'
    blocked.write_text('not a folder')
    monkeypatch.setenv('MMCERT_ROS_CACHE', str(blocked))
    assert cache_warnings == []
    built = _build(network)
    assert len(cache_warnings) == 1 and 'cannot be written' in cache_warnings[0]
    assert torch.equal(built.run_levels(levels), expected)
    assert blocked.read_text() == 'not a folder'


def test_the_default_folder_is_the_xdg_cache(monkeypatch, tmp_path):
    monkeypatch.delenv('MMCERT_ROS_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert cache_folder() == tmp_path / 'mmcert_ros'
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert cache_folder() == tmp_path / 'home' / '.cache' / 'mmcert_ros'


def test_a_cached_model_needs_no_nncf(network, cache, levels, monkeypatch):
    """A start that finds its int8 model on disk neither quantizes nor imports NNCF."""
    import sys

    expected = _build(network).run_levels(levels)
    monkeypatch.setitem(sys.modules, 'nncf', None)  # import nncf now raises ImportError
    cached = _build(network)
    assert cached.int8_cache_hit
    assert torch.equal(cached.run_levels(levels), expected)
