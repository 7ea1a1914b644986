"""The feature-space (l2) certificate (docs/certification.md section 8,
docs/feature_smoothing.md): Gaussian feature smoothing and the FCSB bound
(:mod:`.feature_smoothing`), per-pixel margins through the upsampling rule
(:mod:`.pixel_margin`), confidence bounds (:mod:`.confidence`), encoder smoothing
(:mod:`.encoder_smoothing`) and the frame certifier
:class:`~mmcert_ros.certify.l2.certifier.L2Certifier` (:mod:`.certifier`)."""
