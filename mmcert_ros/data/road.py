"""The road labelling convention every part shares (model, metrics, outputs, ground truth).

* Class ids of the two-class road task, as the model outputs them and ``mmcert/segmentation``
  publishes them: 0 = not road, :data:`ROAD_CLASS` = 1 = road (:data:`CLASS_NAMES`).
* Ground-truth images (``mono8``, a bag's ``/road_gt/image``, the simulator's
  ``gt/road_mask``) are written with :data:`GT_ROAD_VALUE` = 255 for road and 0 elsewhere;
  readers take any non-zero value as road.
"""
from __future__ import annotations

import numpy as np

#: class names of the two-class road task, indexed by class id
CLASS_NAMES = ('not_road', 'road')
#: the class id of road
ROAD_CLASS = CLASS_NAMES.index('road')
#: ground-truth pixel value for road in written ``mono8`` images
GT_ROAD_VALUE = 255


def ground_truth_image(road_mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 ground-truth image of a road mask (non-zero = road): 255 road, 0 not."""
    return np.where(np.asarray(road_mask) != 0, GT_ROAD_VALUE, 0).astype(np.uint8)
