"""Fleet evaluation throughput with 1 and 2 Ray workers, side by side in one run.

Writes ``--bags`` synthetic drives of ``--frames`` frames each (``mmcert-ros synth`` scenes at
``--size``, through ``kitti2bag``), then evaluates them with the shipped model at N =
``--samples``: in this process (the plain path, with torch's threads and with one), and on a
fresh local Ray runtime of 1 and of 2 workers. Prints frames/s of each, cold (worker start-up
and model loading included; the
runtime's own start excluded) and warm (the same run again on the same runtime), the warm
2-worker speed-up, and the load average.

    python bench/fleet_scaling.py --json docs/figures/fleet_scaling.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmcert_ros.bags.kitti_to_bag import kitti_to_bag  # noqa: E402
from mmcert_ros.evaluation.inputs import InputSpec, make_spec  # noqa: E402
from mmcert_ros.fleet.driver import run_fleet  # noqa: E402
from mmcert_ros.fleet.local import LocalExecutor  # noqa: E402
from mmcert_ros.fleet.ray_cluster import RayExecutor  # noqa: E402
from mmcert_ros.segmenter.settings import load_settings  # noqa: E402
from mmcert_ros.sim.synthetic import SceneConfig, export_kitti  # noqa: E402
from mmcert_ros.speed.machine import machine_line  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bags', type=int, default=4)
    parser.add_argument('--frames', type=int, default=10)
    parser.add_argument('--size', type=int, nargs=2, default=(620, 188), metavar=('W', 'H'))
    parser.add_argument('--samples', type=int, default=100)
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    import ray
    import torch

    root = Path(tempfile.mkdtemp(prefix='fleet_scaling_'))
    try:
        defaults = InputSpec(id='', kind='bag', path=Path(), gt_topic='/road_gt/image')
        specs = []
        for number in range(args.bags):
            kitti = root / f'kitti{number}'
            export_kitti(kitti, seed=1 + number, num_frames=args.frames,
                         config=SceneConfig().with_image_size(*args.size))
            kitti_to_bag(kitti, root / f'drive{number}')
            specs.append(make_spec(root / f'drive{number}', 'bag', defaults))
        settings = load_settings(None, {'certify.num_samples': args.samples,
                                        'certify.seed': 0, 'model.device': 'cpu'})
        frames = args.bags * args.frames
        rates = {}
        for name, workers in (('in-process', None), ('in-process, 1 thread', 0),
                              ('ray, 1 worker', 1), ('ray, 2 workers', 2)):
            if workers == 0:
                torch.set_num_threads(1)   # as in a Ray worker (OMP_NUM_THREADS=1)
            if workers:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         object_store_memory=200 * 1024 * 1024)
            executor = RayExecutor() if workers else LocalExecutor()
            # cold: workers start and load the model; warm: the same run again (--force)
            # on the same runtime, whose workers keep their engines
            for state in ('cold', 'warm'):
                start = time.perf_counter()
                report = run_fleet(specs, settings, root / f'out{workers}', executor,
                                   chunk_frames=args.frames, force=True, progress=False)
                seconds = time.perf_counter() - start
                assert report['complete'] and report['pooled']['frames'] == frames
                rates[f'{name}, {state}'] = frames / seconds
                print(f'{name}, {state}: {frames} frames in {seconds:.1f} s = '
                      f'{frames / seconds:.2f} frames/s', flush=True)
            if workers:
                ray.shutdown()
        speedup = rates['ray, 2 workers, warm'] / rates['ray, 1 worker, warm']
        load = os.getloadavg()
        print(f'2 workers / 1 worker, warm: {speedup:.2f}x; load average {load[0]:.1f} '
              f'{load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores')
        if args.json:
            args.json.write_text(json.dumps({
                'bags': args.bags, 'frames_per_bag': args.frames, 'size': list(args.size),
                'num_samples': args.samples, 'frames_per_s': rates, 'speedup_2_vs_1': speedup,
                'load_average': list(load), 'cores': os.cpu_count()}, indent=2) + '\n')
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
