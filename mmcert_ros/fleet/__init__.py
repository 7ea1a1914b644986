"""Fleet-scale evaluation: many bags and KITTI folders, one report, any number of machines.

``mmcert-ros evaluate`` with several inputs, ``--workers N`` or ``--ray-address`` runs
:func:`~mmcert_ros.fleet.driver.run_fleet`: each input (and each time chunk of a long one)
is a work item evaluated by :func:`~mmcert_ros.fleet.work.evaluate_chunk`, in this process
(:class:`~mmcert_ros.fleet.local.LocalExecutor`) or as Ray tasks
(:class:`~mmcert_ros.fleet.ray_cluster.RayExecutor`, the only module importing Ray, lazily).
Results equal those of one process for the same seed: per-frame seeds derive from (seed,
input id, frame stamp) (:mod:`mmcert_ros.evaluation.seeds`) and the pooled counts are
integers. See docs/evaluation.md, "Evaluating a fleet".
"""

#: pairs (bags) or frames (KITTI folders) per work item of a long input
DEFAULT_CHUNK_FRAMES = 200
