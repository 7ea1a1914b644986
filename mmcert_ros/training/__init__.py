"""Ablation-aware training of the base network: frame sources and cache
(:mod:`~mmcert_ros.training.data`), the training loop (:mod:`~mmcert_ros.training.trainer`),
validation by majority votes (:mod:`~mmcert_ros.training.validation`) and checkpoint
provenance (:mod:`~mmcert_ros.training.provenance`)."""
