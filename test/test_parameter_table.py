"""The parameter table (mmcert_ros.segmenter.parameters.PARAMETERS) and what is derived from it:
the engine's defaults and ranges, config/mmcert.yaml and the other presets, the docs/ros.md
table, and the engine's configuration imported without torch, ROS or the simulator. (The
ROS descriptors are held to the table in test_ros_units.py.)
"""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmcert_ros.certify.config import CertifyConfig, L2Settings, field_bounds
from mmcert_ros.segmenter.parameters import (ENGINE_SETTINGS, PARAMETERS, DepthSettings,
                                             NodeSettings, RuntimeSettings, main,
                                             markdown_table, parameters_of,
                                             settings_from_parameters)
from mmcert_ros.segmenter.settings import load_settings, read_parameters

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {spec.name: spec.default for spec in PARAMETERS}
#: NodeSettings fields that hold a settings object of their own, not a parameter
NESTED = {'certify', 'l2', 'runtime', 'depth'}


def test_importing_the_engine_config_loads_no_torch_ros_or_simulator():
    script = ('import sys\n'
              'import mmcert_ros.certify.config\n'
              'loaded = [name for name in sys.modules if name.split(".")[0] in '
              '("torch", "rclpy") or name.startswith("mmcert_ros.sim")]\n'
              'assert not loaded, loaded\n')
    subprocess.run([sys.executable, '-c', script], check=True, cwd=ROOT)


def test_every_settings_field_is_fed_by_exactly_one_parameter():
    for target in ENGINE_SETTINGS + (RuntimeSettings, DepthSettings, NodeSettings):
        fed = sorted(spec.feeds[1] for spec in PARAMETERS if spec.feeds[0] is target)
        fields = sorted(field.name for field in dataclasses.fields(target)
                        if target is not NodeSettings or field.name not in NESTED)
        assert fed == fields, target.__name__


def test_engine_parameters_take_the_engine_defaults_and_ranges():
    for target in ENGINE_SETTINGS:
        assert settings_from_parameters(target, {}) == target()
        assert settings_from_parameters(target, DEFAULTS) == target()
        defaults = parameters_of(target())
        for spec in (spec for spec in PARAMETERS if spec.feeds[0] is target):
            assert spec.default == defaults[spec.name], spec.name
            assert type(spec.default) is type(defaults[spec.name]), spec.name
            bounds = field_bounds(*spec.feeds)
            assert (spec.low is None) == (bounds is None), spec.name
            if bounds is not None:
                low = bounds.low if spec.none_as is None else min(bounds.low, spec.none_as)
                assert spec.low == low, spec.name
                assert spec.high == (2 ** 63 - 1 if bounds.high is None else bounds.high)


def test_the_settings_of_the_defaults_are_those_of_no_file():
    settings = NodeSettings.from_parameters(DEFAULTS)
    assert load_settings() == settings
    assert settings.certify == CertifyConfig() and settings.l2 == L2Settings()


def test_mmcert_yaml_holds_every_parameter_at_its_default():
    flat = read_parameters(ROOT / 'config' / 'mmcert.yaml')     # its mmcert_segmenter section
    assert sorted(flat) == sorted(DEFAULTS)
    for name, value in flat.items():
        assert value == DEFAULTS[name] and type(value) is type(DEFAULTS[name]), name


@pytest.mark.parametrize('path', [path for path in sorted((ROOT / 'config').glob('*.yaml'))
                                  if 'mmcert_segmenter' in yaml.safe_load(path.read_text())],
                         ids=lambda path: path.name)
def test_presets_use_table_names_with_valid_values(path):
    specs = {spec.name: spec for spec in PARAMETERS}
    flat = read_parameters(path)
    assert set(flat) <= set(specs), sorted(set(flat) - set(specs))
    for name, value in flat.items():
        specs[name].conform(value)                      # type and range
    load_settings(path)                                 # the whole set, as the node takes it


def test_docs_table_is_the_rendered_table():
    lines = (ROOT / 'docs' / 'ros.md').read_text().splitlines()
    first = lines.index(markdown_table().splitlines()[0])
    documented = lines[first:first + len(PARAMETERS) + 2]
    assert '\n'.join(documented) + '\n' == markdown_table()
    assert not lines[first + len(PARAMETERS) + 2].startswith('|')


def test_markdown_command_prints_the_table(capsys):
    main(['--markdown'])
    assert capsys.readouterr().out == markdown_table()


def test_parameters_of_and_settings_from_parameters_round_trip():
    config = CertifyConfig(num_samples=7, seed=3, ray=(2, 1), keep_points=9)
    assert parameters_of(config)['certify.ray'] == [2, 1]
    assert parameters_of(CertifyConfig())['certify.seed'] == -1
    assert settings_from_parameters(CertifyConfig, parameters_of(config)) == config
    l2 = L2Settings(sigma=0.5, num_samples=3, joint=True)
    assert settings_from_parameters(L2Settings, parameters_of(l2)) == l2
