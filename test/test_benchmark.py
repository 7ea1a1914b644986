"""The benchmark compares like with like: baselines give the fast paths' results."""
import json

import numpy as np

from mmcert_ros.speed.baselines import choice_keep_masks, sorted_holm_certify
from mmcert_ros.speed.core import realistic_votes
from mmcert_ros.certify import CertifyConfig, holm_certify
from mmcert_ros.certify.l0.engine import certify_votes
from mmcert_ros.tools.bench import isa_class
from mmcert_ros.tools.cli import main


def test_sorted_holm_baseline_equals_histogram_holm():
    votes = realistic_votes(40, 70, 100, seed=4).numpy()
    top = votes.max(axis=0)
    for d in (0.0, 0.12, 0.3):
        np.testing.assert_array_equal(sorted_holm_certify(top, 100, 2, d, 0.001),
                                      holm_certify(top, 100, 2, d, 0.001))


def test_choice_baseline_keeps_exactly_k():
    masks = choice_keep_masks(5, 300, 7)
    assert masks.shape == (5, 300) and np.all(masks.sum(axis=1) == 7)


def test_certify_votes_labels_are_argmax_with_ties_to_the_smallest_class():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(4, 30, 30)).astype(np.int32)  # many ties
    cert = certify_votes(counts, (900, 900), (9, 9), CertifyConfig(num_samples=12))
    np.testing.assert_array_equal(cert.labels, counts.argmax(axis=0))
    np.testing.assert_array_equal(cert.top_counts, counts.max(axis=0))


def test_bench_command_writes_its_figures(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert main(['bench', '--width', '48', '--height', '20', '--num-samples', '8',
                 '--skip-engine', '--json', str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures['frame'] == '48x20' and figures['num_samples'] == 8
    for key in ('certification_s', 'sorted_holm_s', 'certification_speedup'):
        assert figures['certification'][key] > 0
    assert figures['sampling']['sampling_speedup'] > 0
    assert figures['isa'] == isa_class(figures['cpu_features']) and figures['cpu']
    report = capsys.readouterr().out
    assert 'speed-up' in report and figures['isa'] in report and figures['cpu'] in report


def test_isa_class_names_the_widest_level_a_figure_ran_on():
    assert isa_class(['avx2', 'avx512f', 'avx512_vnni', 'amx_int8', 'amx_tile']) == 'AMX'
    assert isa_class(['avx2', 'avx512_bf16', 'avx512_vnni', 'avx512f']) == 'AVX-512 VNNI'
    assert isa_class(['avx2', 'avx512f']) == 'AVX-512'
    assert isa_class(['avx2', 'avx_vnni']) == 'AVX2 VNNI'
    assert isa_class(['avx2']) == 'AVX2'
    assert isa_class([]) == 'pre-AVX2'


def test_bench_compares_the_engine_modes_with_the_reference_on_one_frame(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert main(['bench', '--width', '96', '--height', '32', '--num-samples', '6',
                 '--modes', 'fp32,bf16', '--repeats', '1', '--json', str(out)]) == 0
    figures = json.loads(out.read_text())
    engine = figures['engine']
    for name in ('reference', 'fp32', 'bf16'):
        assert engine[name]['total_s'] > 0 and engine[name]['max_samples_in_budget'] >= 1
    for mode in ('fp32', 'bf16'):
        assert engine[mode]['speedup'] > 0
        assert 0 <= engine[mode]['changed_labels'] <= 1
    # the exact mode computes the reference's base model: the same votes for the same draws
    assert engine['fp32']['changed_top_counts'] == 0.0
    assert figures['ops_per_frame']['host_reads'] <= 4
    assert figures['l2']['speedup'] > 0
    assert 'speed-up' in capsys.readouterr().out


def test_bench_refuses_an_unknown_mode_before_measuring(capsys):
    try:  # a bad option value is argparse's: usage and one error line, status 2
        status = main(['bench', '--width', '48', '--height', '20', '--num-samples', '4',
                       '--modes', 'fp32,tpu'])
    except SystemExit as stop:
        status = stop.code
    assert status == 2
    captured = capsys.readouterr()
    assert "unknown mode(s) ['tpu']" in captured.err.strip().splitlines()[-1]
    assert 'certification' not in captured.out  # nothing was measured
