"""Offline evaluation: replay bags or KITTI Road through the engine and write reports.

Library API (the ``mmcert-ros evaluate`` tool is a thin shell over it)::

    from mmcert_ros.evaluation import BagFrames, evaluate
    source = BagFrames('drive_bag', '/cam/rgb', '/cam/depth', gt_topic='/cam/gt', slop_s=0.02)
    metrics = evaluate(source, CertifiedSegmenter(model, config), 'out/eval')

Inputs of many-input (fleet) evaluations are :class:`~mmcert_ros.evaluation.inputs.InputSpec`
(bags, KITTI folders, manifests); :func:`~mmcert_ros.evaluation.runner.replay` certifies a
source without writing anything, and its results merge exactly (:mod:`mmcert_ros.fleet`).

Nothing here imports a ROS package; the settings come from the node's own loader
(:func:`mmcert_ros.segmenter.settings.load_settings`), so an evaluation runs exactly the
configuration the vehicle runs.
"""

from mmcert_ros.evaluation.accumulate import MetricsAccumulator
from mmcert_ros.evaluation.bag_source import BagFrames
from mmcert_ros.evaluation.kitti_source import KittiFrames
from mmcert_ros.evaluation.runner import EvaluationIncomplete, evaluate

__all__ = ['BagFrames', 'EvaluationIncomplete', 'KittiFrames',
           'MetricsAccumulator', 'evaluate']
