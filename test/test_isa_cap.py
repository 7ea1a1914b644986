"""``mmcert-ros bench --isa-cap``: the argument, the rerun under the libraries' caps, the
check that they took effect and the record in the figures (no timing); and OpenVINO's
float32 fallback where the plugin cannot compile bf16."""
import json

import pytest

from mmcert_ros.speed.machine import (ISA_CAPS, active_cap, cap_problems,
                                      capped_environment, effective_isa, machine_line,
                                      machine_record)
from mmcert_ros.tools import bench
from mmcert_ros.tools.cli import main

CAP_VARIABLES = ISA_CAPS['avx2'][0]
SMALL = ['bench', '--width', '48', '--height', '20', '--num-samples', '8', '--skip-engine']
HONOURED = {'aten_cpu_capability': 'AVX2', 'torch_onednn_isa': 'Intel AVX2',
            'openvino_convolution': ['brgconv_avx2_f32'], 'environment': dict(CAP_VARIABLES)}


@pytest.fixture
def uncapped(monkeypatch):
    for key in CAP_VARIABLES:
        monkeypatch.delenv(key, raising=False)


def test_an_unknown_cap_is_refused_in_one_line(capsys):
    assert main([*SMALL, '--isa-cap', 'sse4']) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "invalid choice: 'sse4'" in error


def test_the_cap_is_the_whole_environment_of_its_libraries():
    assert active_cap({}) is None
    assert active_cap({'ONEDNN_MAX_CPU_ISA': 'AVX2'}) is None   # ATen not capped
    environment = capped_environment('avx2', {'PATH': '/bin'})
    assert environment == {'PATH': '/bin', 'ONEDNN_MAX_CPU_ISA': 'AVX2',
                           'ATEN_CPU_CAPABILITY': 'avx2'}
    assert active_cap(environment) == 'avx2'


def test_a_capped_figure_names_the_cap_and_the_machine_under_it():
    features = ['avx2', 'avx512_bf16', 'avx512_vnni', 'avx512f']
    assert effective_isa(features, None) == 'AVX-512 VNNI'
    assert effective_isa(features, 'avx2') == 'AVX2 (capped on AVX-512 VNNI)'
    record = machine_record('avx2')
    assert record['isa'].startswith('AVX2 (capped on ') and record['isa_cap'] == 'avx2'
    line = machine_line(record)
    assert record['cpu'] in line and record['isa'] in line and 'load' in line


def test_evidence_above_the_cap_is_named():
    assert cap_problems('avx2', HONOURED) == []
    problems = cap_problems('avx2', dict(
        HONOURED, aten_cpu_capability='AVX512', torch_onednn_isa='Intel AVX-512',
        openvino_convolution=['brgconv_avx512_f32']))
    assert len(problems) == 3 and 'brgconv_avx512_f32' in problems[2]


def test_the_bench_reruns_itself_with_the_caps_and_returns_its_status(monkeypatch, uncapped):
    calls = []

    class Done:
        returncode = 3

    def fake_run(command, env):
        calls.append((command, env))
        return Done()

    monkeypatch.setattr('subprocess.run', fake_run)
    assert main([*SMALL, '--isa-cap', 'avx2']) == 3
    (command, env), = calls
    assert command[1:4] == ['-m', 'mmcert_ros.tools.cli', 'bench']
    assert command[4:] == [*SMALL[1:], '--isa-cap', 'avx2']
    assert active_cap(env) == 'avx2'


def test_a_cap_the_libraries_do_not_honour_ends_in_one_line(monkeypatch, capsys):
    for key, value in CAP_VARIABLES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(bench, 'cap_evidence',
                        lambda: dict(HONOURED, openvino_convolution=['brgconv_avx512_f32']))
    assert main([*SMALL, '--isa-cap', 'avx2']) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'the ISA cap avx2 did not take effect' in error
    assert 'brgconv_avx512_f32' in error


def test_a_capped_run_records_the_cap_and_its_evidence(monkeypatch, tmp_path, capsys):
    for key, value in CAP_VARIABLES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(bench, 'cap_evidence', lambda: dict(HONOURED))
    out = tmp_path / 'bench.json'
    assert main([*SMALL, '--isa-cap', 'avx2', '--json', str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures['isa'].startswith('AVX2 (capped on ')
    assert figures['isa_cap'] == {'cap': 'avx2', **HONOURED}
    report = capsys.readouterr().out
    assert figures['isa'] in report and "oneDNN in torch 'Intel AVX2'" in report


def test_openvino_compiles_float32_where_the_plugin_refuses_bf16():
    pytest.importorskip('openvino')
    import torch

    from mmcert_ros.models import NetworkConfig, build_model
    from mmcert_ros.models.backends import OpenVinoNet

    torch.manual_seed(0)
    network = build_model(NetworkConfig(width=4, feature_dim=4)).eval()
    net = OpenVinoNet(network, 'bf16', threads=1)
    real = net._core

    class RefusesBf16:
        def compile_model(self, model, device, settings):
            if settings['INFERENCE_PRECISION_HINT'] == 'bf16':
                raise RuntimeError('Supported primitive descriptors list is empty')
            return real.compile_model(model, device, settings)

    net._core = RefusesBf16()
    levels = [torch.rand(2, 7 if level == 0 else 6, 24 >> level, 40 >> level)
              .contiguous(memory_format=torch.channels_last) for level in range(4)]
    with torch.inference_mode():
        logits = net.run_levels(levels)
        exact = network.for_inference(torch.float32).grid_logits_from_levels(levels)
    assert net.compiled_precisions == ['f32']
    torch.testing.assert_close(logits, exact, rtol=1e-4, atol=1e-4)
