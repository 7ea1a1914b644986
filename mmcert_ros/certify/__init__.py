"""The ROS-free certification engine of mmcert_ros (docs/certification.md sections 2 to 8).

Three parts, each its own folder or module:

- :mod:`mmcert_ros.certify.l0`: the l0 (MMCert) certificate: bounds and Holm
  (``l0.bounds``), exact-k sampling (``l0.sampling``), grid vote counting (``l0.votes``),
  LiDAR points (``l0.points``) and the frame engine (``l0.engine``).
- :mod:`mmcert_ros.certify.l2`: the feature-space (l2) certificate: feature smoothing,
  pixel margins, confidence bounds, encoder smoothing and the frame certifier
  (``l2.certifier``).
- :mod:`mmcert_ros.certify.classifier`: certified classifiers over any number of
  modalities (docs/classification.md).

Shared by them: :mod:`~mmcert_ros.certify.config` (the engine's settings),
:mod:`~mmcert_ros.certify.upsampling` (the grid-to-pixel rule both certificates rely on),
:mod:`~mmcert_ros.certify.cancel` and :mod:`~mmcert_ros.certify.tensors`.

Public API (each name resolved on first use, so importing one part does not load the
others)::

    from mmcert_ros.certify import delta, holm_certify, CertifiedSegmenter, CertifyConfig

    segmenter = CertifiedSegmenter(model, CertifyConfig(num_samples=100, radius_rgb=5))
    certificate = segmenter.certify(rgb, depth)   # (H,W,3) uint8, (Hd,Wd) float32 metres
    certificate.labels, certificate.certified, certificate.radius

    # classifiers over any number of modalities (docs/classification.md)
    classifier = CertifiedClassifier(model, [Modality((0,), 0.2), Modality((0, 1), 0.05)])
    classifier.certify(audio, image).radius(ray=(2, 1))

Nothing here imports the ROS client library.
"""
import importlib

#: public name -> the module that defines it
_PUBLIC = {
    **dict.fromkeys(('ClassBounds', 'class_probability_bounds', 'delta', 'holm_certify',
                     'largest_ray_budget', 'radius_table', 'top_count_pvalues'),
                    'mmcert_ros.certify.l0.bounds'),
    **dict.fromkeys(('Certificate', 'CertifiedSegmenter'), 'mmcert_ros.certify.l0.engine'),
    **dict.fromkeys(('CertifiedClassifier', 'ClassCertificate', 'Modality', 'ablate'),
                    'mmcert_ros.certify.classifier'),
    **dict.fromkeys(('CancelToken', 'FrameCancelled'), 'mmcert_ros.certify.cancel'),
    'CertifyConfig': 'mmcert_ros.certify.config',
    **dict.fromkeys(('EncoderCertificate', 'certify_encoder'),
                    'mmcert_ros.certify.l2.encoder_smoothing'),
    # evaluation metrics live in mmcert_ros.evaluation.metrics; re-exported here once
    **dict.fromkeys(('Confusion', 'certified_confusion', 'plain_confusion'),
                    'mmcert_ros.evaluation.metrics'),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """Resolve a public name from its module on first use (PEP 562)."""
    try:
        module = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}') from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
