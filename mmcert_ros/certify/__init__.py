"""The ROS-free certification engine of mmcert_ros (docs/certification.md sections 2 to 7).

Public API::

    from mmcert_ros.certify import delta, holm_certify, CertifiedSegmenter, CertifyConfig

    segmenter = CertifiedSegmenter(model, CertifyConfig(num_samples=100, radius_rgb=5))
    certificate = segmenter.certify(rgb, depth)   # (H,W,3) uint8, (Hd,Wd) float32 metres
    certificate.labels, certificate.certified, certificate.radius

    # classifiers over any number of modalities (docs/classification.md)
    classifier = CertifiedClassifier(model, [Modality((0,), 0.2), Modality((0, 1), 0.05)])
    classifier.certify(audio, image).radius(ray=(2, 1))

Nothing here imports the ROS client library.
"""

from mmcert_ros.certify.bounds import (ClassBounds, class_probability_bounds, delta,
                                       holm_certify, largest_ray_budget, radius_table,
                                       top_count_pvalues)
from mmcert_ros.certify.classifier import (CertifiedClassifier, ClassCertificate, Modality,
                                           ablate)
from mmcert_ros.certify.cancel import CancelToken, FrameCancelled
from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.encoder_smoothing import EncoderCertificate, certify_encoder
from mmcert_ros.certify.engine import Certificate, CertifiedSegmenter
from mmcert_ros.certify.metrics import Confusion, certified_confusion, plain_confusion

__all__ = [
    'CancelToken', 'Certificate', 'CertifiedClassifier', 'CertifiedSegmenter', 'ClassBounds',
    'ClassCertificate', 'EncoderCertificate', 'FrameCancelled', 'CertifyConfig', 'Confusion',
    'Modality', 'ablate',
    'certified_confusion', 'certify_encoder', 'class_probability_bounds', 'delta', 'holm_certify',
    'largest_ray_budget', 'plain_confusion', 'radius_table', 'top_count_pvalues',
]
