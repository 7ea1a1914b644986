"""The launch files under the real ``ros2 launch``, in the colcon workspace, as a user runs them.

``--show-args`` of every file describes every argument, and carla.launch.py shows only the
arguments a user can set; sim_demo.launch.py (tiny model, small frames, small N through its
arguments) certifies at least 90 % of the frames sim_drive sends and ends by itself; Ctrl-C
while frames are being certified ends every process cleanly with exit status 0;
mmcert.launch.py and carla.launch.py start the segmenter with the namespace, remappings and
parameter values their arguments and parameter files say (read back with ``ros2 node info``
and ``ros2 param get``).
"""
import re
import shutil
import time

import pytest
from sensor_msgs.msg import CameraInfo, Image

from helpers.ros2_tools import Launch
from helpers.ros_harness import SETTLE_S, RosClient, tiny_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]   # whole launches over DDS: tens of seconds

SMALL = {'width': 96, 'height': 32, 'num_samples': 20, 'device': 'cpu'}
CLEAN_EXIT = r'\[INFO\] \[{}-\d+\]: process has finished cleanly'


def assert_clean_end(launch: Launch, status: int, processes=('sim_drive', 'segmenter')) -> None:
    log = launch.log()
    assert status == 0, log
    for process in processes:
        assert re.search(CLEAN_EXIT.format(process), log), f'{process} did not end cleanly:\n{log}'
    assert 'escalating' not in log and 'process has died' not in log, log


def shown_arguments(workspace, launch_file: str) -> dict[str, str]:
    """``{argument: description}`` from ``ros2 launch mmcert_ros FILE --show-args``."""
    result = workspace.ros2(0, 'launch', 'mmcert_ros', launch_file, '--show-args')
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(re.findall(r"^    '(\w+)':\n        (.+)$", result.stdout, flags=re.MULTILINE))


@pytest.mark.parametrize('launch_file', ['mmcert.launch.py', 'sim_demo.launch.py',
                                         'carla.launch.py'])
def test_show_args_describes_every_argument(colcon_workspace, launch_file):
    shown = shown_arguments(colcon_workspace, launch_file)
    assert shown
    assert 'no description given' not in shown.values(), shown
    if launch_file == 'carla.launch.py':   # the include sets topics and parameter file itself
        assert set(shown) == {'namespace', 'device', 'use_sim_time'}


def test_sim_demo_certifies_the_drive_and_ends_by_itself(colcon_workspace, tmp_path,
                                                         fresh_domain_id):
    frames = 10
    outputs = RosClient(fresh_domain_id, inputs=False,
                        extra_subscriptions={'/demo/mmcert/certification': Image})
    launch = Launch(colcon_workspace, fresh_domain_id, 'sim_demo.launch.py', dict(
        SMALL, namespace='demo', num_frames=frames, rate_hz=1.5, linger_s=3.0,
        checkpoint=tiny_checkpoint(tmp_path / 'tiny.pt'), rviz='true',
        wait_for_subscribers=2),       # the segmenter and this test's recorder, on every input
        tmp_path / 'launch.log')
    recorder = None
    try:
        # DDS never delivers to a volatile reader what was written before it matched: the
        # recorder subscribes to the drive (which sim_drive waits for) only once the
        # segmenter's output is matched here, so no certified frame can precede the match
        outputs.spin_until(lambda: outputs.subscriptions['/demo/mmcert/certification']
                           .get_publisher_count() > 0, what='the segmenter to publish')
        outputs.spin_for(SETTLE_S)
        recorder = RosClient(fresh_domain_id, inputs=False, extra_subscriptions={
            '/demo/rgb/image': Image, '/demo/depth/image': Image,
            '/demo/rgb/camera_info': CameraInfo})
        deadline = time.monotonic() + 180.0
        while launch.alive():
            assert time.monotonic() < deadline, 'the launch did not end by itself'
            recorder.spin_for(0.1)
            outputs.spin_for(0.1)
        recorder.spin_for(0.5)
        outputs.spin_for(0.5)
        status = launch.wait()
    finally:
        launch.stop()
        outputs.close()
        if recorder is not None:
            recorder.close()
    sent = recorder.received['/demo/rgb/image']
    certified = outputs.received['/demo/mmcert/certification']
    assert f'published {frames} frames; done' in launch.log()
    assert len(sent) == frames, launch.log()
    assert set(certified) <= set(sent)
    counters = {key: value for key, value in outputs.latest_diagnostics().items()
                if key in ('frames_total', 'dropped_pairs', 'unpaired_rgb', 'unpaired_depth',
                           'errors_total')}
    assert len(certified) >= 0.9 * frames, (len(certified), counters, launch.log())
    # one line per certified frame, naming its stamp
    lines = re.findall(r'\]: frame (\d+\.\d{3}) s: [\d.]+% certified, road [\d.]+%, \d+ ms '
                       r'\(rgb-d\)', launch.log())
    assert sorted(lines) == sorted(f'{stamp / 1e9:.3f}' for stamp in certified), launch.log()
    if shutil.which('rviz2') is None:
        assert 'rviz:=true but rviz2 is not installed here' in launch.log()
    assert 'sim_drive is done; shutting down in 3 s' in launch.log()
    assert_clean_end(launch, status)


# A terminal's Ctrl-C reaches every node, then launch sends each a second SIGINT: the nodes
# must finish cleanly all the same (run_node ignores stop signals once shutdown has begun).
def test_ctrl_c_while_certifying_ends_every_process_cleanly(colcon_workspace, tmp_path,
                                                            fresh_domain_id):
    client = RosClient(fresh_domain_id, inputs=False,
                       extra_subscriptions={'/mmcert/certification': Image})
    # frames arrive faster than they are certified, so the engine is busy when Ctrl-C comes
    launch = Launch(colcon_workspace, fresh_domain_id, 'sim_demo.launch.py', dict(
        SMALL, width=320, height=96, num_samples=400, rate_hz=10.0,
        checkpoint=tiny_checkpoint(tmp_path / 'tiny.pt')), tmp_path / 'launch.log')
    try:
        client.spin_until(lambda: len(client.received['/mmcert/certification']) >= 2
                          or not launch.alive(), what='certified frames')
        assert launch.alive(), launch.log()
        launch.interrupt()
        status = launch.wait()
    finally:
        launch.stop()
        client.close()
    assert_clean_end(launch, status)


@pytest.fixture(scope='module')
def segmenter_launches(colcon_workspace, tmp_path_factory, domain_id):
    """mmcert.launch.py (namespace, remapped topics, a parameter file) and carla.launch.py
    (another namespace), running side by side."""
    root = tmp_path_factory.mktemp('launches')
    params = root / 'params.yaml'
    params.write_text('mmcert_segmenter:\n  ros__parameters:\n'
                      f'    model:\n      checkpoint: {tiny_checkpoint(root / "tiny.pt")}\n'
                      '    certify:\n      num_samples: 24\n    sync:\n      slop: 0.05\n')
    launches = {
        'mmcert': Launch(colcon_workspace, domain_id, 'mmcert.launch.py', {
            'namespace': 'robot', 'params_file': params, 'rgb_topic': '/cam/rgb',
            'depth_topic': '/cam/depth', 'camera_info_topic': '/cam/info', 'device': 'cpu'},
            root / 'mmcert.log'),
        'carla': Launch(colcon_workspace, domain_id, 'carla.launch.py',
                        {'namespace': 'ego', 'device': 'cpu'}, root / 'carla.log'),
    }
    yield from running_segmenters(launches, {name: 'mmcert_segmenter' for name in launches})


def running_segmenters(launches: dict, node_names: dict):
    """Yield ``launches`` once each segmenter logged 'ready'; then stop them, each cleanly."""
    try:
        for name, launch in launches.items():
            launch.wait_for_log(rf'{node_names[name]}\]: ready on')
        yield launches
    finally:
        statuses = {name: launch.stop() for name, launch in launches.items()}
    for name, launch in launches.items():
        assert_clean_end(launch, statuses[name], processes=('segmenter',))


def node_info(workspace, domain_id: int, node: str, topics=frozenset()) -> dict[str, set[str]]:
    """``ros2 node info`` as ``{'Subscribers': {'/topic: type', ...}, 'Publishers': ...}``,
    once it lists subscribers and publishers, ``topics`` among them (discovery of a starting
    node's endpoints takes a while and comes in pieces)."""
    def complete(result):
        sections = info_sections(result.stdout)
        listed = {line.split(':')[0] for section in ('Subscribers', 'Publishers')
                  for line in sections.get(section, ())}
        return all(sections.get(section) for section in ('Subscribers', 'Publishers')) \
            and set(topics) <= listed
    result = workspace.ros2_until(domain_id, 'node', 'info', node, ok=complete,
                                  what=f'the info of {node} listing {sorted(topics)}')
    return info_sections(result.stdout)


def info_sections(text: str) -> dict[str, set[str]]:
    sections, current = {}, None
    for line in text.splitlines():
        if line.strip().endswith(':') and line.startswith('  ') and ' ' not in line.strip():
            current = sections.setdefault(line.strip()[:-1], set())
        elif current is not None and line.startswith('    '):
            current.add(line.strip())
    return sections


def param_get(workspace, domain_id: int, node: str, name: str) -> str:
    result = workspace.ros2_until(domain_id, 'param', 'get', node, name,
                                  ok=lambda result: 'value is:' in result.stdout,
                                  what=f'{node} {name}')
    return result.stdout.strip()


@pytest.mark.parametrize('node, topics, parameters', [
    ('/robot/mmcert_segmenter',
     {'/cam/rgb', '/cam/depth', '/cam/info', '/robot/mmcert/certification'},
     {'certify.num_samples': 'Integer value is: 24', 'sync.slop': 'Double value is: 0.05',
      'model.device': 'String value is: cpu', 'use_sim_time': 'Boolean value is: False'}),
    ('/ego/mmcert_segmenter',
     {'/carla/ego_vehicle/rgb_front/image', '/carla/ego_vehicle/depth_front/image',
      '/carla/ego_vehicle/rgb_front/camera_info', '/ego/mmcert/certification'},
     {'sync.slop': 'Double value is: 0.005', 'qos.reliability': 'String value is: reliable',
      'model.device': 'String value is: cpu', 'use_sim_time': 'Boolean value is: True'}),
], ids=['mmcert.launch.py', 'carla.launch.py'])
def test_launched_segmenter_has_the_topics_and_parameters_the_arguments_say(
        segmenter_launches, colcon_workspace, domain_id, node, topics, parameters):
    info = node_info(colcon_workspace, domain_id, node, topics)
    found = {line.split(':')[0] for line in info['Subscribers'] | info['Publishers']}
    assert topics <= found, info
    assert 'sensor_msgs/msg/Image' in ' '.join(info['Subscribers']), info
    for name, expected in parameters.items():
        assert param_get(colcon_workspace, domain_id, node, name) == expected


def preset_launch_arguments(preset: str) -> dict:
    """Every preset through ``preset:=``; ouster through the relative ``params_file`` its
    comment shows (looked up in the share folder) with one topic argument over the preset's."""
    common = {'namespace': f'p_{preset}', 'node_name': f'seg_{preset}', 'num_samples': 7,
              'device': 'cpu'}
    if preset == 'ouster':
        return dict(common, params_file='config/ouster.yaml', points_topic='/lidar/front')
    return dict(common, preset=preset)


@pytest.fixture(scope='module')
def preset_launches(colcon_workspace, tmp_path_factory, domain_id):
    from mmcert_ros.segmenter.presets import PRESETS
    root = tmp_path_factory.mktemp('presets')
    launches = {preset: Launch(colcon_workspace, domain_id, 'mmcert.launch.py',
                               preset_launch_arguments(preset), root / f'{preset}.log')
                for preset in PRESETS + ('mmcert',)}
    yield from running_segmenters(launches, {preset: f'seg_{preset}' for preset in launches})


@pytest.mark.parametrize('preset', ['carla', 'realsense', 'kitti', 'velodyne', 'ouster',
                                    'mmcert'])
def test_every_preset_launches_with_its_topics_and_the_arguments(
        preset_launches, colcon_workspace, domain_id, preset):
    from mmcert_ros.segmenter.presets import preset_path, preset_remappings
    from mmcert_ros.ros.launch_support import node_parameters
    path = preset_path(preset)
    points = node_parameters(path, 'mmcert_segmenter').get('depth.source') == 'points'
    inputs = ['rgb/image', 'depth/points' if points else 'depth/image', 'rgb/camera_info']
    topics = {name: f'/p_{preset}/{name}' for name in inputs}
    topics.update(preset_remappings(path))
    if preset == 'ouster':
        topics['depth/points'] = '/lidar/front'         # the argument wins over the preset
    node = f'/p_{preset}/seg_{preset}'
    expected = {topics[name] for name in inputs}
    info = node_info(colcon_workspace, domain_id, node, expected)
    subscribed = {line.split(':')[0] for line in info['Subscribers']}
    assert expected <= subscribed, info
    assert f'/p_{preset}/mmcert/certification' in {line.split(':')[0]
                                                   for line in info['Publishers']}
    assert param_get(colcon_workspace, domain_id, node, 'certify.num_samples') == \
        'Integer value is: 7'
    assert param_get(colcon_workspace, domain_id, node, 'depth.source') == \
        f'String value is: {"points" if points else "image"}'
