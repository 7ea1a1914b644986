"""Benchmark the certification core on one 1242x375 frame pair (figures and ratios).

Reports the certification step (p-values + Holm + radius map) against Holm by sorting
per-pixel p-values, drawing the N exact-k masks against numpy.random.choice per sample (the
MMCert reference code's way), and the engine with the shipped model against its previous hot
path (mmcert_ros.speed.reference), per stage and end to end, in every mode (fp32 exact,
bf16, ONNX Runtime, OpenVINO fp32 / bf16 / int8), with the labels that change and the radius
a 1 s frame buys.
Targets: certification < 20 ms and >= 10x; sampling < 300 ms and >= 4x; engine fp32 >= 2.5x
with unchanged votes, fastest mode >= 5x.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcert_ros.speed.machine import (ISA_CAPS, active_cap, cap_evidence, cap_problems,
                                      capped_environment, cpu_features, cpu_model,
                                      effective_isa, isa_class)
from mmcert_ros.errors import UserError, user_input
from mmcert_ros.tools.arguments import positive_int

__all__ = ['add_arguments', 'run', 'format_report', 'cpu_features', 'cpu_model', 'isa_class']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--width', type=positive_int, default=1242,
                        help='frame width (default 1242)')
    parser.add_argument('--height', type=positive_int, default=375,
                        help='frame height (default 375)')
    parser.add_argument('--config', type=Path, metavar='YAML',
                        help="the node's parameter file (config/mmcert.yaml), read as the node "
                             'and the other tools read it: engine settings, model.checkpoint '
                             '(default: built-in defaults)')
    parser.add_argument('--num-samples', type=positive_int,
                        help='N (default: certify.num_samples of --config, else 100)')
    parser.add_argument('--checkpoint',
                        help="model checkpoint (default: the config's model.checkpoint, "
                             "else the shipped model)")
    parser.add_argument('--seed', type=int, default=0,
                        help='sub-sampling seed of every timed run (default 0)')
    parser.add_argument('--skip-engine', action='store_true',
                        help='skip the end-to-end engine run (no model needed)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='interleaved runs per engine mode, median reported (default 3)')
    parser.add_argument('--modes', type=mode_list,
                        default='fp32,bf16,onnxruntime,openvino,openvino_bf16,openvino_int8',
                        help='engine modes to compare with the reference (default all)')
    parser.add_argument('--batch-sizes', default='',
                        help='also time the fp32 engine at these batch sizes, e.g. 8,16,32,64')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (default: torch\'s choice)')
    parser.add_argument('--isa-cap', choices=sorted(ISA_CAPS),
                        help='emulate a narrower CPU: rerun with the libraries capped '
                             '(ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2), the cap '
                             'checked and recorded (isa "AVX2 (capped on ...)")')
    parser.add_argument('--json', type=Path, metavar='FILE', help='also write the figures as JSON')


def capped_command(args: argparse.Namespace) -> list[str]:
    """The command line that reruns this bench in a fresh interpreter (the caps are read
    when torch and OpenVINO load, which parsing the arguments has already done)."""
    import sys

    typed = getattr(args, 'command_line', None) or ['mmcert-ros', 'bench', *sys.argv[2:]]
    return [sys.executable, '-m', 'mmcert_ros.tools.cli', *typed[1:]]


def rerun_capped(args: argparse.Namespace) -> int:
    """Run the bench again under ``args.isa_cap`` (:func:`capped_command`); its exit status."""
    import subprocess

    print(f'mmcert-ros bench: rerunning with the ISA capped to {args.isa_cap}: '
          + ' '.join(f'{key}={value}' for key, value in ISA_CAPS[args.isa_cap][0].items()),
          flush=True)
    return subprocess.run(capped_command(args), env=capped_environment(args.isa_cap)).returncode


def checked_cap() -> tuple[str | None, dict | None]:
    """The cap this process runs under (its environment's, :func:`active_cap`) and the
    libraries' evidence for it; a cap the libraries do not honour is refused."""
    cap = active_cap()
    if cap is None:
        return None, None
    evidence = cap_evidence()
    problems = cap_problems(cap, evidence)
    if problems:
        raise UserError(f'the ISA cap {cap} did not take effect: {"; ".join(problems)}')
    return cap, evidence


def mode_list(text: str) -> list[str]:
    """``--modes``: comma-separated engine modes, each a key of ``engine_speed.MODES``."""
    from mmcert_ros.speed.engine_speed import MODES

    modes = [mode for mode in text.split(',') if mode]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise argparse.ArgumentTypeError(
            f'unknown mode(s) {unknown or text!r}; choose from {", ".join(MODES)}')
    return modes


def run(args: argparse.Namespace) -> int:
    import os

    if args.isa_cap and active_cap() != args.isa_cap:
        return rerun_capped(args)
    import torch

    from mmcert_ros.speed.core import bench_certification, bench_sampling
    from mmcert_ros.segmenter.settings import load_settings

    if args.threads:
        torch.set_num_threads(args.threads)
    cap, evidence = checked_cap()
    overrides = {'certify.num_samples': args.num_samples, 'model.checkpoint': args.checkpoint,
                 'certify.seed': args.seed, 'model.device': 'cpu'}   # the CPU benchmark
    with user_input('--config'):
        settings = load_settings(args.config, overrides)
    config = settings.certify
    features = cpu_features()
    figures: dict[str, object] = {
        'frame': f'{args.width}x{args.height}', 'num_samples': config.num_samples,
        'batch_size': config.batch_size, 'torch_threads': torch.get_num_threads(),
        'cpu': cpu_model(), 'isa': effective_isa(features, cap), 'cpu_features': features,
        'cores': os.cpu_count(), 'torch': torch.__version__,
        'load_average_start': list(os.getloadavg())}
    if cap is not None:
        figures['isa_cap'] = {'cap': cap, **evidence}
    figures['certification'] = bench_certification(config, args.height, args.width)
    figures['sampling'] = bench_sampling(config, args.height, args.width)
    if not args.skip_engine:
        from mmcert_ros.sim.synthetic import SceneConfig, drive

        scene = SceneConfig().with_image_size(args.width, args.height)
        frame = next(drive(seed=0, num_frames=1, config=scene))
        from mmcert_ros.speed.engine_speed import (bench_batch_sizes, bench_l2, bench_speed,
                                                   ops_per_frame)
        from mmcert_ros.segmenter.engines import build_engines

        model = build_engines(settings).model
        figures['engine'] = bench_speed(model, frame, config.num_samples, config.batch_size,
                                        args.modes, args.repeats)
        figures['ops_per_frame'] = ops_per_frame(model, frame, config.num_samples,
                                                 config.batch_size)
        figures['l2'] = bench_l2(model, frame, config, settings.l2.sigma or 0.25,
                                 repeats=max(1, args.repeats - 1))
        if args.batch_sizes:
            sizes = [int(size) for size in args.batch_sizes.split(',')]
            figures['batch_sizes'] = bench_batch_sizes(model, frame, config.num_samples, sizes)
    figures['load_average_end'] = list(os.getloadavg())
    print(format_report(figures))
    if args.json:
        with user_input('--json'):
            args.json.write_text(json.dumps(figures, indent=2) + '\n')
        print(f'figures written to {args.json}')
    return 0


def format_report(figures: dict) -> str:
    """Human-readable table of the figures, with the targets next to them."""
    cert, sampling = figures['certification'], figures['sampling']
    lines = [
        f"mmcert-ros bench: {figures['frame']}, N = {figures['num_samples']}, "
        f"batch {figures['batch_size']}, {figures['torch_threads']} torch threads, "
        f"load {figures['load_average_start'][0]:.1f}",
        f"CPU {figures['cpu']} ({figures['isa']}; {' '.join(figures['cpu_features'])}), "
        f"{figures['cores']} cores",
        *cap_lines(figures.get('isa_cap')),
        '',
        f"certification (p-values + Holm + radius map, {cert['pixels']} px)",
        f"  histogram Holm        {cert['certification_s'] * 1e3:9.2f} ms   (target < 20 ms)",
        f"  sorted p-value Holm   {cert['sorted_holm_s'] * 1e3:9.2f} ms",
        f"  speed-up              {cert['certification_speedup']:9.1f} x    (target >= 10 x)",
        'exact-k masks, both modalities, N samples',
        f"  rejection sampler     {sampling['sampling_s'] * 1e3:9.2f} ms   (target < 300 ms)",
        f"  numpy.random.choice   {sampling['numpy_choice_s'] * 1e3:9.2f} ms",
        f"  speed-up              {sampling['sampling_speedup']:9.1f} x    (target >= 4 x)",
    ]
    if 'engine' in figures:
        engine = figures['engine']
        names = [name for name in engine if name != 'settings']
        lines.append('engine, one frame, same draws (shipped model, CPU): ms per stage')
        lines.append(f"  {'stage':<16}" + ''.join(f'{name:>14}' for name in names))
        for stage in ('sampling', 'densification', 'trunk_head', 'votes', 'certification',
                      'total', 'engine_total'):
            cells = [f"{engine[name][f'{stage}_s'] * 1e3:14.1f}" if f'{stage}_s' in engine[name]
                     else f"{'-':>14}" for name in names]
            lines.append(f'  {stage:<16}' + ''.join(cells))
        for key, label, form in (('speedup', 'speed-up', '{:14.2f}'),
                                 ('engine_speedup', 'speed-up, engine', '{:14.2f}'),
                                 ('changed_labels', 'labels changed', '{:14.2e}'),
                                 ('changed_top_counts', 'top counts chg.', '{:14.2e}'),
                                 ('changed_top_counts_vs_interpolate', 'vs F.interpolate',
                                  '{:14.2e}'),
                                 ('max_samples_in_budget', 'N in 1 s', '{:14d}'),
                                 ('collapse_radius', 'collapse r_rgb', '{:14d}')):
            cells = [form.format(engine[name][key]) if key in engine[name] else f"{'-':>14}"
                     for name in names]
            lines.append(f'  {label:<16}' + ''.join(cells))
        lines.append('  (labels / top counts changed: fraction of pixels against the reference '
                     "under the model's upsampling rule;")
        lines.append("   'vs F.interpolate': top counts against the reference's own "
                     'upsampling, as timed)')
        lines.append('  targets: fp32 speed-up >= 2.5 with 0 labels changed; fastest >= 5')
    if 'ops_per_frame' in figures:
        ops = figures['ops_per_frame']
        lines.append(f"engine fp32, one frame: {ops['leaf_ops']} leaf operators (kernel-launch "
                     f"proxy), {ops['host_reads']} host reads of tensor values")
    if 'l2' in figures:
        l2 = figures['l2']
        lines += [f"l2 certificate (L2Certifier defaults, sigma {l2['sigma']}, one frame)",
                  f"  noise at kept pixels  {l2['fast_s'] * 1e3:9.1f} ms",
                  f"  noise on every pixel  {l2['reference_s'] * 1e3:9.1f} ms",
                  f"  speed-up              {l2['speedup']:9.2f} x    (target >= 3 x)"]
    if 'batch_sizes' in figures:
        lines.append('engine fp32 end to end by batch size: ' + ', '.join(
            f'{size}: {seconds * 1e3:.0f} ms' for size, seconds in figures['batch_sizes'].items()))
    return '\n'.join(lines)


def cap_lines(cap: dict | None) -> list[str]:
    """The report's lines on an ISA cap (:func:`checked_cap`'s evidence); none uncapped."""
    if not cap:
        return []
    variables = ' '.join(f'{key}={value}' for key, value in cap['environment'].items())
    return [f"ISA capped to {cap['cap']} ({variables}): ATen {cap['aten_cpu_capability']}, "
            f"oneDNN in torch '{cap['torch_onednn_isa']}', OpenVINO convolution "
            f"{', '.join(cap['openvino_convolution']) or '-'}"]
