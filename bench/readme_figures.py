"""The README's two pictures, regenerated from what the repository ships.

* ``docs/images/overlay.png``: one held-out synthetic frame (drive 900000, the first drive of
  ``bench/certified_accuracy.py``, frame 0, 1242x375) certified by the shipped default model
  at N = 100, alpha 0.001, r = 0, sampling seed 0, tinted with the overlay legend of
  ``mmcert/overlay`` (green certified road, yellow uncertified road, red uncertified not
  road, untinted certified not road), above the simulator's ground truth.
* ``docs/images/certified_iou_vs_radius.png``: road certified IoU against r_rgb
  (r_depth = 2 r_rgb) from the measured figures ``docs/figures/model_certified_n100.json``
  and ``docs/figures/model_certified_n1000.json`` (``bench/certified_accuracy.py``), with the
  fraction of pixels certified.

    python bench/readme_figures.py            # both, into docs/images/
    python bench/readme_figures.py --only curve

The overlay takes about 1 s of certification on a 2-core CPU; the curve reads JSON only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / 'docs' / 'figures'
IMAGES = ROOT / 'docs' / 'images'
CURVES = {'N = 100 (20 frames)': FIGURES / 'model_certified_n100.json',
          'N = 1000 (3 frames)': FIGURES / 'model_certified_n1000.json'}
OVERLAY_DRIVE = 900_000


def certified_curve(path: Path) -> tuple[list[int], list[float], list[float]]:
    """``(r_rgb, certified IoU, certified fraction)`` of one certified-accuracy JSON, by r."""
    certified = json.loads(path.read_text())['certified']
    radii = sorted(int(r) for r in certified)
    return (radii, [certified[str(r)]['iou'] for r in radii],
            [certified[str(r)]['certified_fraction'] for r in radii])


def draw_curve(out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    for (label, path), colour in zip(CURVES.items(), ('tab:blue', 'tab:orange')):
        radii, iou, fraction = certified_curve(path)
        axis.step(radii, iou, where='post', color=colour, label=f'certified IoU, {label}')
        axis.step(radii, fraction, where='post', color=colour, linestyle=':',
                  label=f'pixels certified, {label}')
    axis.set_xlabel('r_rgb (RGB pixels changed; r_depth = 2 r_rgb)')
    axis.set_ylabel('road, held-out synthetic')
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc='lower left')
    axis.set_title('Shipped model: certified road IoU against the attack budget', fontsize=9)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)


def certified_frame():
    """``(frame, certificate)`` of the overlay picture: the held-out frame and its certificate
    by the shipped default model (N, alpha, r and seed in the module docstring)."""
    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
    from mmcert_ros.models import load_model
    from mmcert_ros.training.data import synthetic_frames

    frames, _ = synthetic_frames(OVERLAY_DRIVE, 1, 1242, 375)
    frame = frames[0]
    segmenter = CertifiedSegmenter(load_model(None, 'cpu'),
                                   CertifyConfig(num_samples=100, seed=0, device='cpu'))
    return frame, segmenter.certify(frame.rgb, frame.depth)


def draw_overlay(out: Path) -> None:
    import cv2

    from mmcert_ros.segmenter.overlay import render_overlay

    frame, certificate = certified_frame()
    tinted = render_overlay(frame.rgb, certificate.labels, certificate.certified)
    truth = render_overlay(frame.rgb, frame.road_mask,
                           np.ones(frame.road_mask.shape, bool))
    picture = np.concatenate([tinted, np.full((6, tinted.shape[1], 3), 255, np.uint8), truth])
    cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', choices=('overlay', 'curve'),
                        help='draw one picture only (default both)')
    parser.add_argument('--out', type=Path, default=IMAGES, help='folder (docs/images)')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, 'curve'):
        draw_curve(args.out / 'certified_iou_vs_radius.png')
        print(args.out / 'certified_iou_vs_radius.png')
    if args.only in (None, 'overlay'):
        draw_overlay(args.out / 'overlay.png')
        print(args.out / 'overlay.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
