"""Certify one RGB-D frame from PNG files and write the certified segmentation and a report.

Inputs: --rgb an 8-bit colour PNG; --depth a 16-bit PNG of millimetres (0 = invalid, as
KITTI's depth_u16 and `mmcert-ros synth` write it), its size may differ from the RGB size;
--gt (optional) a KITTI gt_image_2 PNG (road where blue > 0) or a mono mask (non-zero = road).

Writes into --out:
  segmentation.png   mono8 class id per pixel (1 = road; values are 0/1, not 0/255)
  certification.png  mono8 255 = certified at the configured radius, 0 = not
  radius.png         mono8 certified t on the configured ray (254 = saturated, 255 = none)
  overlay.png        the image tinted: green certified road, yellow uncertified road,
                     red uncertified not-road, untinted certified not-road
  report.json        N, alpha, n and k per modality, radius, delta, certified fraction,
                     timings and, with --gt, the plain and certified metrics

With --fs-sigma > 0 (or fs.sigma in the config) the l2 certificate of feature-space
smoothing runs too (docs/feature_smoothing.md) and adds:
  l2_certification.png  mono8 255 = certified against every RGB change of l2 norm
                        <= --fs-radius (RGB in [0, 1]) with the published label, 0 = not
  report.json "l2"      sigma, radius, N, certified fraction, Gaussian robustness score,
                        FCSB statistics, radius map summary (radius 0 = not
                        certified) and, with --gt, metrics
With --fs-joint (fs.joint) both certificates come from one ensemble of noisy sub-sampled
passes (report.json "joint": true; its N is the l2 N).

Settings come from --config (the node's YAML parameter file, including model.checkpoint)
with the options below taking precedence.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from mmcert_ros.errors import UserError, user_input
from mmcert_ros.tools.l2_options import add_l2_arguments, l2_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--rgb', type=Path, required=True, help='RGB image (PNG)')
    parser.add_argument('--depth', type=Path, required=True,
                        help='depth image, uint16 millimetres (PNG)')
    parser.add_argument('--gt', type=Path, help='ground truth: KITTI gt_image_2 or mono mask')
    parser.add_argument('--out', type=Path, required=True, help='output directory')
    parser.add_argument('--config', type=Path, help='YAML parameter file (config/mmcert.yaml)')
    parser.add_argument('--checkpoint', help="model checkpoint ('' or absent = shipped default)")
    parser.add_argument('--num-samples', type=int, help='N sub-samples')
    parser.add_argument('--radius-rgb', type=int, help='certified budget r_rgb (pixels)')
    parser.add_argument('--radius-depth', type=int, help='certified budget r_depth (pixels)')
    parser.add_argument('--alpha', type=float, help='family-wise error rate')
    parser.add_argument('--seed', type=int,
                        help='fixed sampling seed (reproducible; default fresh entropy)')
    parser.add_argument('--device', help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--batch-size', type=int, help='samples per forward pass')
    add_l2_arguments(parser)


#: option (argparse dest) -> the parameter it overrides
OVERRIDES = {'checkpoint': 'model.checkpoint', 'num_samples': 'certify.num_samples',
             'radius_rgb': 'certify.radius_rgb', 'radius_depth': 'certify.radius_depth',
             'alpha': 'certify.alpha', 'seed': 'certify.seed', 'device': 'model.device',
             'batch_size': 'model.batch_size'}


def run(args: argparse.Namespace) -> int:
    from mmcert_ros.evaluation.metrics import certified_confusion, plain_confusion
    from mmcert_ros.data.frame import Frame
    from mmcert_ros.data.kitti import read_depth_u16, read_rgb
    from mmcert_ros.models import DEFAULT_CHECKPOINT
    from mmcert_ros.segmenter.engines import build_engines
    from mmcert_ros.segmenter.settings import load_settings

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f'--out {args.out} is an existing file; give a folder')
    overrides = {name: getattr(args, option) for option, name in OVERRIDES.items()}
    with user_input('--config'):   # the messages name the parameter
        node_settings = load_settings(args.config, {**overrides, **l2_overrides(args)})
    config, settings = node_settings.certify, node_settings.l2
    checkpoint = node_settings.checkpoint

    with user_input():   # the messages name the file
        rgb = read_rgb(args.rgb)
        road, valid = read_ground_truth(args.gt) if args.gt else (None, None)
        if road is not None and road.shape != rgb.shape[:2]:
            raise UserError(f'{args.gt}: ground truth size {road.shape} differs from '
                            f'the RGB size {rgb.shape[:2]} of {args.rgb}')
        frame = Frame(rgb=rgb, depth=read_depth_u16(args.depth), road_mask=road,
                      road_valid=valid, name=args.rgb.stem)
    engines = build_engines(node_settings)
    run = engines.start(frame)
    certificate = run.l0()

    report: dict[str, Any] = {
        'rgb': str(args.rgb), 'depth': str(args.depth),
        'checkpoint': str(checkpoint or DEFAULT_CHECKPOINT),
        'num_samples': certificate.num_samples, 'alpha': certificate.alpha,
        'n': {'rgb': certificate.n[0], 'depth': certificate.n[1]},
        'k': {'rgb': certificate.k[0], 'depth': certificate.k[1]},
        'radius': {'rgb': certificate.radius_budget[0], 'depth': certificate.radius_budget[1]},
        'ray': list(certificate.ray), 'delta': certificate.delta,
        'seed': config.seed, 'device': config.device, 'precision': config.precision,
        'joint': engines.l2 is not None and settings.joint,
        'certified_fraction': certificate.certified_fraction,
        'radius_t': _radius_summary(certificate.radius),
        'timings_s': certificate.timings,
    }
    if frame.road_mask is not None:
        report['gt'] = str(args.gt)
        report['plain'] = plain_confusion(certificate.labels, frame.road_mask,
                                          frame.road_valid).as_dict()
        report['certified'] = certified_confusion(certificate.labels, certificate.certified,
                                                  frame.road_mask, frame.road_valid).as_dict()
    l2_mask = None
    l2_certificate = run.l2()
    if l2_certificate is not None:
        report['l2'], l2_mask = l2_report(l2_certificate, frame, certificate.labels,
                                          settings.booster)
    write_outputs(args.out, frame.rgb, certificate, report, l2_mask)
    print(f'certified {certificate.certified_fraction:.1%} of the pixels at radius '
          f'{certificate.radius_budget} with N = {certificate.num_samples} in '
          f'{certificate.timings["total"]:.2f} s; wrote {args.out}')
    if 'certified' in report:
        print(f"certified IoU {report['certified']['iou']:.4f}, "
              f"plain IoU {report['plain']['iou']:.4f}, certified but wrong "
              f"{report['certified']['wrong_fraction']:.2%} of the certified pixels")
    if 'l2' in report:
        print(f"l2: certified {report['l2']['published_certified_fraction']:.1%} of the pixels "
              f"at l2 radius {settings.radius:g} with sigma {settings.sigma:g}, "
              f"mean FCSB {report['l2']['fcsb']['mean']:.3f}")
    return 0


def l2_report(certificate, frame, published_labels: np.ndarray,
              booster: str) -> tuple[dict[str, Any], np.ndarray]:
    """The report section of ``frame``'s :class:`~mmcert_ros.certify.l2.L2Certificate` and
    the published l2 mask (certified and agreeing with ``published_labels``)."""
    from mmcert_ros.evaluation.metrics import certified_confusion, plain_confusion

    mask = certificate.agreeing(published_labels)
    section = {**certificate.summary(), 'booster': booster,
               'published_certified_fraction': float(mask.mean())}
    if frame.road_mask is not None:
        section['plain'] = plain_confusion(certificate.labels, frame.road_mask,
                                           frame.road_valid).as_dict()
        section['certified'] = certified_confusion(published_labels, mask, frame.road_mask,
                                                   frame.road_valid).as_dict()
    return section, mask


def read_ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(road, valid)``: road mask ``(H, W)`` uint8 1 = road and the labelled area (None =
    every pixel): KITTI gt_image_2 (road blue > 0, labelled red > 0) or mono (non-zero road,
    every pixel labelled)."""
    import cv2

    from mmcert_ros.data.kitti import read_road_ground_truth

    if not path.is_file():
        raise FileNotFoundError(f'{path}: ground truth not found')
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{path}: cannot decode the ground truth (corrupt or not an image)')
    if image.ndim == 3:
        return read_road_ground_truth(path)
    return (image > 0).astype(np.uint8), None


def write_outputs(out: Path, rgb: np.ndarray, certificate, report: dict[str, Any],
                  l2_mask: np.ndarray | None = None) -> None:
    """The four PNGs (five with ``l2_mask``) and report.json (see the module docstring)."""
    import cv2

    from mmcert_ros.segmenter.outputs import CERTIFIED, radius_image
    from mmcert_ros.segmenter.overlay import render_overlay

    with user_input('--out'):
        out.mkdir(parents=True, exist_ok=True)
    images = {
        'segmentation.png': certificate.labels.astype(np.uint8),
        'certification.png': certificate.certified.astype(np.uint8) * np.uint8(CERTIFIED),
        'radius.png': radius_image(certificate.radius),
        'overlay.png': cv2.cvtColor(render_overlay(rgb, certificate.labels, certificate.certified),
                                    cv2.COLOR_RGB2BGR),
    }
    if l2_mask is not None:
        images['l2_certification.png'] = l2_mask.astype(np.uint8) * np.uint8(CERTIFIED)
    for name, image in images.items():
        if not cv2.imwrite(str(out / name), image):
            raise UserError(f'--out: could not write {out / name}')
    (out / 'report.json').write_text(json.dumps(report, indent=2) + '\n')


def _radius_summary(radius: np.ndarray) -> dict[str, float]:
    """Share of pixels with no certificate, and the median / max certified t of the others."""
    certified = radius[radius >= 0]
    return {'uncertified_fraction': float(np.mean(radius < 0)),
            'median': float(np.median(certified)) if certified.size else -1.0,
            'max': int(certified.max()) if certified.size else -1}
