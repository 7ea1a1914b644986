"""The docs' pictures of the view topics, rendered headless by the package's own code.

The frame and certificate of ``docs/images/overlay.png`` (``bench/readme_figures.py``: drive
900000, frame 0, 1242x375, shipped default model, N = 100, alpha 0.001, sampling seed 0)
encoded by :func:`mmcert_ros.segmenter.views.view_images` exactly as the node publishes them,
decoded back and written as PNG:

* ``docs/images/view_segmentation.png``: ``mmcert/view/segmentation``;
* ``docs/images/view_certified_radius.png``: ``mmcert/view/certified_radius`` at the default
  ``max_radius`` (:data:`mmcert_ros.segmenter.views.DEFAULT_MAX_RADIUS`).

    python bench/render_views.py [--out docs/images]

About 1 s of certification on a 2-core CPU; prints the radius range of the frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from readme_figures import IMAGES, certified_frame

FILES = {'mmcert/view/segmentation': 'view_segmentation.png',
         'mmcert/view/certified_radius': 'view_certified_radius.png'}


def write_views(out: Path) -> list[Path]:
    """Render both views of the README frame into ``out``; return the files written."""
    import cv2

    from mmcert_ros.segmenter.codec import decode_rgb
    from mmcert_ros.segmenter.views import VIEW_TOPICS, view_images

    _, certificate = certified_frame()
    certified = certificate.radius[certificate.radius >= 0]
    print(f'radius t: {certified.size} of {certificate.radius.size} pixels certified at t >= 0'
          f', max t {int(certified.max()) if certified.size else "-"}')
    written = []
    for topic, image in view_images(certificate, set(VIEW_TOPICS)).items():
        path = out / FILES[topic]
        cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(decode_rgb(image)),
                                            cv2.COLOR_RGB2BGR))
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=IMAGES, help='folder (docs/images)')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in write_views(args.out):
        print(path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
