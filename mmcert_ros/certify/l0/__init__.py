"""The l0 (MMCert) certificate (docs/certification.md sections 2 to 7): exact binomial bounds
and Holm over pixels (:mod:`.bounds`), exact-k sub-sampling (:mod:`.sampling`), vote counting
on the network's grid (:mod:`.votes`), LiDAR points as a modality (:mod:`.points`) and the
frame engine :class:`~mmcert_ros.certify.l0.engine.CertifiedSegmenter` (:mod:`.engine`)."""
