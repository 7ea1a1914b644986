"""Measurements of the certification core at full KITTI size.

Every figure is the median wall time of several repetitions in seconds; every ratio compares
two implementations of the same result measured side by side in the same run.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from mmcert_ros.speed.baselines import choice_keep_masks, sorted_holm_certify
from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.l0.engine import certify_votes
from mmcert_ros.certify.l0.sampling import draw_keep_masks, kept_count, make_generator


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def realistic_votes(height: int, width: int, num_samples: int, seed: int = 0) -> torch.Tensor:
    """Two-class vote counts ``(2, H, W)`` shaped like a good model's: mostly near-unanimous."""
    rng = np.random.default_rng(seed)
    disagreement = np.minimum(rng.geometric(0.35, size=(height, width)) - 1, num_samples // 2)
    road = rng.random((height, width)) < 0.3
    majority = num_samples - disagreement
    counts = np.stack([np.where(road, num_samples - majority, majority),
                       np.where(road, majority, num_samples - majority)])
    return torch.from_numpy(counts.astype(np.int32))


def bench_certification(config: CertifyConfig, height: int, width: int,
                        repeats: int = 7) -> dict[str, float]:
    """p-values + Holm + radius map from votes, against Holm by sorting per-pixel p-values."""
    votes = realistic_votes(height, width, config.num_samples)
    n = (height * width, height * width)
    k = (kept_count(config.keep_fraction_rgb, n[0]), kept_count(config.keep_fraction_depth, n[1]))
    ours = median_seconds(lambda: certify_votes(votes, n, k, config), repeats)
    certificate = certify_votes(votes, n, k, config)
    sorted_seconds = median_seconds(lambda: sorted_holm_certify(
        certificate.top_counts, config.num_samples, 2, certificate.delta, config.alpha), repeats)
    return {'certification_s': ours, 'sorted_holm_s': sorted_seconds,
            'certification_speedup': sorted_seconds / ours, 'pixels': height * width}


def bench_sampling(config: CertifyConfig, height: int, width: int,
                   repeats: int = 3) -> dict[str, float]:
    """Drawing N exact-k masks for both modalities, in the engine's micro-batches, against one
    ``numpy.random.choice`` per sample and modality."""
    n = height * width
    k_rgb = kept_count(config.keep_fraction_rgb, n)
    k_depth = kept_count(config.keep_fraction_depth, n)
    generator = make_generator(0, 'cpu')

    def ours() -> None:
        for first in range(0, config.num_samples, config.batch_size):
            batch = min(config.batch_size, config.num_samples - first)
            draw_keep_masks(batch, n, k_rgb, generator)
            draw_keep_masks(batch, n, k_depth, generator)

    def reference() -> None:
        choice_keep_masks(config.num_samples, n, k_rgb)
        choice_keep_masks(config.num_samples, n, k_depth)

    ours_seconds = median_seconds(ours, repeats)
    reference_seconds = median_seconds(reference, max(1, repeats - 1))
    return {'sampling_s': ours_seconds, 'numpy_choice_s': reference_seconds,
            'sampling_speedup': reference_seconds / ours_seconds}
