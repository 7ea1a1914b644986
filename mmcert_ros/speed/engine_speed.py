"""The engine against its previous hot path (:mod:`mmcert_ros.speed.reference`), per stage
and end to end, on one frame, with the same draws; and what the speed buys in radius.

Every figure is the median of ``repeats`` runs, the runs of all modes interleaved so that a
change in the machine's load hits them alike; ratios compare figures of the same run.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from functools import partial

import numpy as np
import torch

from mmcert_ros.speed.reference import (ReferenceVotes, reference_kept_indices,
                                        reference_pyramid_inputs)
from mmcert_ros.certify.l0.bounds import radius_table
from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.l0.engine import (CertifiedSegmenter, certify_votes, draw_sample_indices,
                                          frame_tensors)
from mmcert_ros.certify.l0.sampling import kept_count, make_generator
from mmcert_ros.certify.l0.votes import GridVotes
from mmcert_ros.data.frame import Frame
from mmcert_ros.models.backends import prepare_model
from mmcert_ros.certify.upsampling import upsample_bilinear
from mmcert_ros.certify.kept_pixels import KeptPixels

#: mode name -> (precision, backend); 'fp32' is the exact mode
MODES = {'fp32': ('fp32', 'torch'), 'bf16': ('bf16', 'torch'),
         'onnxruntime': ('fp32', 'onnxruntime'), 'openvino': ('fp32', 'openvino'),
         'openvino_bf16': ('bf16', 'openvino'), 'openvino_int8': ('int8', 'openvino')}
STAGES = ('sampling', 'densification', 'trunk_head', 'votes', 'certification')


def timed_votes(model, new_counter: Callable[[], object], rgb: torch.Tensor,
                depth: torch.Tensor, draws: Iterable[tuple[torch.Tensor, torch.Tensor]],
                batch_size: int, stages: dict[str, float], densify=None) -> torch.Tensor:
    """Run the engine's micro-batches stage by stage: densification (``densify``, default
    ``model.pyramid_inputs``), trunk and head (``model.grid_logits_from_levels``) and vote
    counting (the counter ``new_counter()`` makes, its ``add`` per micro-batch and its final
    ``counts()``, all timed as votes); seconds are added to ``stages``. Returns the counts."""
    clock = time.perf_counter
    densify = densify or model.pyramid_inputs
    tic = clock()
    counter = new_counter()
    seconds = {'densification': 0.0, 'trunk_head': 0.0, 'votes': clock() - tic}
    for rgb_chunk, depth_chunk in draws:
        for first in range(0, rgb_chunk.shape[0], batch_size):
            rows = slice(first, first + batch_size)
            with torch.inference_mode():
                tic = clock()
                levels = densify(KeptPixels.from_indices(rgb, rgb_chunk[rows]),
                                 KeptPixels.from_indices(depth, depth_chunk[rows]))
                t1 = clock()
                grid = model.grid_logits_from_levels(levels)
                t2 = clock()
                counter.add(grid)
                t3 = clock()
            seconds['densification'] += t1 - tic
            seconds['trunk_head'] += t2 - t1
            seconds['votes'] += t3 - t2
    tic = clock()
    counts = counter.counts()
    seconds['votes'] += clock() - tic
    for stage, value in seconds.items():
        stages[stage] = stages.get(stage, 0.0) + value
    return counts


def _reference_draws(num_samples: int, n: tuple[int, int], k: tuple[int, int],
                     batch_size: int, generator: torch.Generator) -> list:
    return [(reference_kept_indices(min(batch_size, num_samples - first), n[0], k[0], generator),
             reference_kept_indices(min(batch_size, num_samples - first), n[1], k[1], generator))
            for first in range(0, num_samples, batch_size)]


def collapse_radius(num_samples: int, n: tuple[int, int], k: tuple[int, int],
                    config: CertifyConfig) -> int:
    """The first t on the ray at which no pixel can be certified (2 classes, Bonferroni over
    the frame's pixels): one more than the radius of a unanimous pixel."""
    table = radius_table(num_samples, 2, n, k, config.ray, config.alpha, n[0])
    return int(table[num_samples]) + 1


def bench_speed(model: torch.nn.Module, frame: Frame, num_samples: int = 100,
                batch_size: int = 16, modes: Iterable[str] = tuple(MODES), repeats: int = 3,
                budget_s: float = 1.0, seed: int = 0) -> dict:
    """Per stage and end to end: the reference and every mode, on ``frame``, same draws.

    :returns: ``{'reference': {...}, mode: {...}}`` with per-stage seconds (``*_s``),
        ``total_s`` (sum of the stages), for the modes also ``engine_total_s`` (one
        ``CertifiedSegmenter.certify`` end to end), ``speedup`` (reference total / total),
        ``changed_labels`` and ``changed_top_counts`` (fractions of pixels against the
        reference's votes under the model's own upsampling rule, ``upsample_bilinear``, the
        same base model: 0 for the exact modes; and ``*_vs_fp32`` against fp32),
        ``changed_top_counts_vs_interpolate`` (against the reference as timed, whose
        ``F.interpolate`` rounds the source positions in float32), and for all
        ``max_samples_in_budget`` (the largest N whose frame fits ``budget_s`` at the measured
        cost per sample) and its ``collapse_radius``.
    """
    model = model.eval()
    modes = list(modes)
    config = CertifyConfig(num_samples=num_samples, batch_size=batch_size, seed=seed)
    rgb, depth = frame_tensors(frame.rgb, frame.depth, torch.device('cpu'))
    size = tuple(rgb.shape[-2:])
    n = (size[0] * size[1], depth.shape[-2] * depth.shape[-1])
    k = (kept_count(config.keep_fraction_rgb, n[0]), kept_count(config.keep_fraction_depth, n[1]))
    draws = list(draw_sample_indices(num_samples, n, k, make_generator(seed, 'cpu')))
    prepared = {mode: prepare_model(model, *MODES[mode], torch.device('cpu')) for mode in modes}
    segmenters = {mode: CertifiedSegmenter(model, config.replace(
        precision=MODES[mode][0], backend=MODES[mode][1])) for mode in modes}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ['reference', *modes]}
    certificates = {}
    for repeat in range(repeats + 1):  # the first round warms up and is not counted
        for name in runs:
            stages: dict[str, float] = {}
            tic = time.perf_counter()
            if name == 'reference':
                _reference_draws(num_samples, n, k, batch_size, make_generator(seed, 'cpu'))
            else:
                list(draw_sample_indices(num_samples, n, k, make_generator(seed, 'cpu')))
            stages['sampling'] = time.perf_counter() - tic
            new_counter = (partial(ReferenceVotes, size) if name == 'reference' else
                           partial(GridVotes, model.num_classes, size,
                                   (-(-size[0] // 8), -(-size[1] // 8)), torch.device('cpu')))
            network = model if name == 'reference' else prepared[name]
            counts = timed_votes(network, new_counter, rgb, depth, draws, batch_size, stages,
                                 reference_pyramid_inputs if name == 'reference' else None)
            tic = time.perf_counter()
            certificates[name] = certify_votes(counts, n, k, config)
            stages['certification'] = time.perf_counter() - tic
            if name != 'reference':
                stages['engine_total'] = segmenters[name].certify_frame(frame).timings['total']
            if repeat:
                runs[name].append(stages)
    figures = {}
    for name, name_runs in runs.items():
        entry = {f'{stage}_s': statistics.median(run[stage] for run in name_runs)
                 for stage in name_runs[0]}
        entry['total_s'] = sum(entry[f'{stage}_s'] for stage in STAGES)
        per_sample = (entry['total_s'] - entry['certification_s']) / num_samples
        max_samples = max(1, int((budget_s - entry['certification_s']) / per_sample))
        entry['max_samples_in_budget'] = max_samples
        entry['collapse_radius'] = collapse_radius(max_samples, n, k, config)
        figures[name] = entry
    # the reference's votes once more (untimed) with the model's own upsampling rule: the
    # same base model as the engine's, so the exact modes must match it everywhere
    reference = certify_votes(timed_votes(model, partial(ReferenceVotes, size, upsample_bilinear),
                                          rgb, depth, draws, batch_size, {},
                                          reference_pyramid_inputs), n, k, config)
    interpolated = certificates['reference']
    for mode in modes:
        entry, certificate = figures[mode], certificates[mode]
        entry['speedup'] = figures['reference']['total_s'] / entry['total_s']
        entry['engine_speedup'] = figures['reference']['total_s'] / entry['engine_total_s']
        entry['changed_labels'] = float(np.mean(certificate.labels != reference.labels))
        entry['changed_top_counts'] = float(np.mean(certificate.top_counts
                                                    != reference.top_counts))
        entry['changed_top_counts_vs_interpolate'] = float(
            np.mean(certificate.top_counts != interpolated.top_counts))
        if 'fp32' in certificates:
            exact = certificates['fp32']
            entry['changed_labels_vs_fp32'] = float(np.mean(certificate.labels != exact.labels))
            entry['changed_top_counts_vs_fp32'] = float(
                np.mean(certificate.top_counts != exact.top_counts))
    figures['settings'] = {'num_samples': num_samples, 'batch_size': batch_size,
                           'repeats': repeats, 'budget_s': budget_s,
                           'reference_collapse_at_n': collapse_radius(num_samples, n, k, config)}
    return figures


def bench_batch_sizes(model: torch.nn.Module, frame: Frame, num_samples: int,
                      batch_sizes: Iterable[int], mode: str = 'fp32', repeats: int = 2
                      ) -> dict[str, float]:
    """Engine end-to-end seconds per frame for each batch size (median, interleaved)."""
    precision, backend = MODES[mode]
    segmenters = {size: CertifiedSegmenter(model, CertifyConfig(
        num_samples=num_samples, batch_size=size, seed=0, precision=precision, backend=backend))
        for size in batch_sizes}
    times: dict[int, list[float]] = {size: [] for size in segmenters}
    for repeat in range(repeats + 1):
        for size, segmenter in segmenters.items():
            total = segmenter.certify_frame(frame).timings['total']
            if repeat:
                times[size].append(total)
    return {str(size): statistics.median(values) for size, values in times.items()}


def bench_l2(model: torch.nn.Module, frame: Frame, config: CertifyConfig,
             sigma: float = 0.25, repeats: int = 2) -> dict[str, float]:
    """The :class:`~mmcert_ros.certify.l2.L2Certifier` at its defaults (no booster, 16
    selection samples; N, batch size, keep fractions and seed of ``config``, on the CPU)
    against the previous recipe (noise on every RGB pixel, dense masks, features from the
    masks), interleaved."""
    from mmcert_ros.speed.reference import reference_l2_smoother
    from mmcert_ros.certify.l2.certifier import DEFAULT_NUM_SELECTION, L2Certifier, L2Settings
    from mmcert_ros.certify.l2.pixel_margin import pixel_margins

    config = config.replace(device='cpu')
    num_samples, batch_size = config.num_samples, config.batch_size
    rgb, depth = frame_tensors(frame.rgb, frame.depth, torch.device('cpu'))
    size = tuple(rgb.shape[-2:])
    k = (kept_count(config.keep_fraction_rgb, size[0] * size[1]),
         kept_count(config.keep_fraction_depth, depth[0, 0].numel()))
    smoother = reference_l2_smoother(model, depth, k, sigma, batch_size)
    certifier = L2Certifier(model, L2Settings(sigma=sigma), config)
    seed = 0 if config.seed is None else config.seed

    def previous():
        cells = smoother.certify(rgb, model.prototypes, 0.0, config.alpha,
                                 DEFAULT_NUM_SELECTION, num_samples, make_generator(seed, 'cpu'))
        pixels = pixel_margins(cells.smoothed, model.prototypes, size)
        return pixels.certified_at(0.0, config.alpha), pixels.radius(config.alpha)

    def current():
        return certifier.certify_frame(frame)

    times: dict[str, list[float]] = {'reference': [], 'fast': []}
    for repeat in range(repeats + 1):
        for name, function in (('reference', previous), ('fast', current)):
            tic = time.perf_counter()
            function()
            if repeat:
                times[name].append(time.perf_counter() - tic)
    figures = {f'{name}_s': statistics.median(values) for name, values in times.items()}
    figures['speedup'] = figures['reference_s'] / figures['fast_s']
    figures['sigma'] = sigma
    return figures


def ops_per_frame(model: torch.nn.Module, frame: Frame, num_samples: int = 100,
                  batch_size: int = 16, precision: str = 'fp32') -> dict[str, int]:
    """Operator counts of one engine frame from the torch profiler on the CPU: ``leaf_ops``
    (operators that call no other operator, the proxy for kernel launches on a GPU) and
    ``host_reads`` (``aten::item`` / ``aten::_local_scalar_dense`` calls, each a device
    synchronisation on a GPU)."""
    from torch.profiler import profile

    segmenter = CertifiedSegmenter(model, CertifyConfig(
        num_samples=num_samples, batch_size=batch_size, seed=0, precision=precision))
    segmenter.certify_frame(frame)  # builds the inference copy
    with profile() as profiler:
        segmenter.certify_frame(frame)
    events = [event for event in profiler.events() if event.name.startswith('aten::')]
    return {'leaf_ops': sum(1 for event in events if not event.cpu_children),
            'host_reads': sum(1 for event in events if event.name == 'aten::_local_scalar_dense'),
            'num_samples': num_samples, 'batch_size': batch_size}
