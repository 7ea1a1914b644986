"""Feature-space smoothing figures: confidence bounds, certified l2 radii and certification time.

    python bench/feature_smoothing.py bounds      # no model needed

``bounds`` prints, for N Monte-Carlo samples and m pixels (Bonferroni at alpha / m, as the
radius map uses), the lower confidence bound on the Gaussian robustness score from an
observed mean score, for the three bounds discussed in docs/feature_smoothing.md, the l2
radius that the default ``'hoeffding'`` bound then certifies for a cosine-head pixel with
angular margin pi/2 (orthogonal prototypes) and pi (antipodal prototypes, reference on one),
and the time of the per-frame certification step (bound, Holm, radius map) on a KITTI-sized
frame.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmcert_ros.speed.machine import machine_line  # noqa: E402
from mmcert_ros.certify.l2 import confidence  # noqa: E402
from mmcert_ros.certify.l2 import feature_smoothing as fs  # noqa: E402

OBSERVED_SCORES = (0.9, 0.97, 0.99, 0.999)
SIGMAS = (0.12, 0.25, 0.5)


def bounds_table(num_samples: int, num_pixels: int, alpha: float) -> list[str]:
    """One block of the table: each observed score's lower bounds and certified radii."""
    delta = alpha / num_pixels
    means = np.array(OBSERVED_SCORES)
    additive = np.maximum(means - math.sqrt(math.log(1 / delta) / (2 * num_samples)), 0)
    kl = confidence.hoeffding_lower_bound(means, num_samples, delta)
    bernstein_best = confidence.bernstein_lower_bound(means, np.zeros_like(means), num_samples,
                                                      delta)
    bernstein_worst = confidence.bernstein_lower_bound(means, means * (1 - means), num_samples,
                                                       delta)
    lines = [f'N = {num_samples}, m = {num_pixels} pixels, alpha = {alpha} '
             '(each bound at alpha/m)',
             '  mean S | additive Hoeffding | KL Hoeffding | Bernstein V=0 | Bernstein V=S(1-S) | '
             + ' | '.join(f'R(s={s}) m=pi/2, pi' for s in SIGMAS)]
    for i, mean in enumerate(means):
        radii = [f'{_radius(kl[i], s, math.pi / 2):7.4f}, {_radius(kl[i], s, math.pi):6.4f}'
                 for s in SIGMAS]
        lines.append(f'  {mean:6.3f} | {additive[i]:18.4f} | {kl[i]:12.4f} | '
                     f'{bernstein_best[i]:13.4f} | {bernstein_worst[i]:18.4f} | '
                     + ' | '.join(f'{r:>20}' for r in radii))
    return lines


def _radius(score_lower: float, sigma: float, margin: float) -> float:
    """Certified l2 radius of a cosine-head pixel with this angular margin (0 = none)."""
    radius = fs.certified_l2_radius(np.array([score_lower]), sigma, fs.margin_cosine(margin))
    return float(radius[0])


def certification_time(num_samples: int, height: int, width: int, alpha: float,
                       repeats: int = 3) -> float:
    """Median seconds of bound + Holm + radius map for one frame of random statistics."""
    rng = np.random.default_rng(0)
    smoothed = fs.SmoothedFeatures(
        reference=np.tile(np.eye(8)[:, :1, None], (1, height, width)),
        mean_feature=np.zeros((8, height, width)),
        score_mean=rng.uniform(0.8, 1.0, (height, width)),
        score_variance=rng.uniform(0.0, 0.02, (height, width)),
        num_samples=num_samples, sigma=0.25)
    prototypes = np.eye(8)[:2]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fs.certify_cosine_head(smoothed, prototypes, radius=0.05, alpha=alpha)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', choices=['bounds'], help='which figures to print')
    parser.add_argument('--alpha', type=float, default=0.001)
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    for num_pixels in (96 * 320, 375 * 1242):
        for num_samples in (100, 1000, 10000):
            print('\n'.join(bounds_table(num_samples, num_pixels, args.alpha)))
    seconds = certification_time(100, 375, 1242, args.alpha)
    print(f'certification step (KL bound, Holm, radius map, FCSB) on 1242x375: {seconds:.3f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
