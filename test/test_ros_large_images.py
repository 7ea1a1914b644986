"""config/fastdds_large_images.xml on real Fast DDS: a best-effort publisher of full-size
images (sim_drive at 1242x375, another process) that loads it delivers them to a best-effort
subscriber here. With Fast DDS's default 512 KB shared-memory segment such a publisher loses
most of them (bench/ros_qos.py measures both side by side)."""
import xml.etree.ElementTree as ElementTree

import pytest

from helpers.ros_harness import REPO, NodeProcess, RosClient

PROFILE = REPO / 'config' / 'fastdds_large_images.xml'
FRAMES = 20


def test_the_profile_is_fast_dds_xml_with_a_segment_for_several_images():
    namespace = {'dds': 'http://www.eprosima.com'}
    root = ElementTree.parse(PROFILE).getroot()
    (shm,) = [descriptor for descriptor in root.iter('{http://www.eprosima.com}'
                                                     'transport_descriptor')
              if descriptor.find('dds:type', namespace).text == 'SHM']
    image_bytes = 1242 * 375 * 3
    assert int(shm.find('dds:segment_size', namespace).text) >= 8 * image_bytes
    participant = root.find('.//dds:participant', namespace)
    assert participant.get('is_default_profile') == 'true'
    used = {item.text for item in participant.iter('{http://www.eprosima.com}transport_id')}
    assert shm.find('dds:transport_id', namespace).text in used


@pytest.mark.ros
def test_a_best_effort_publisher_with_the_profile_delivers_full_size_images(
        tmp_path, fresh_domain_id):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    client = RosClient(fresh_domain_id, inputs=False)
    received = []
    client.node.create_subscription(Image, 'rgb/image', received.append,
                                    qos_profile_sensor_data)
    # sim_drive starts once each of its camera topics has a subscriber
    client.node.create_subscription(Image, 'depth/image', lambda msg: None,
                                    qos_profile_sensor_data)
    client.node.create_subscription(CameraInfo, 'rgb/camera_info', lambda msg: None,
                                    qos_profile_sensor_data)
    sim = NodeProcess('sim_drive', fresh_domain_id, tmp_path / 'sim.log',
                      {'width': 1242, 'height': 375, 'rate_hz': 10.0, 'num_frames': FRAMES,
                       'loop_frames': 5, 'qos.reliability': 'best_effort',
                       'wait_for_subscribers': 1},
                      env={'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE)})
    try:
        client.spin_until(lambda: sim.process.poll() is not None, what='the end of the drive')
        client.spin_for(1.0)
    finally:
        client.close()
        status = sim.stop()
    assert status == 0, sim.log()
    assert len(received) >= 0.95 * FRAMES, (len(received), sim.log())
    assert (received[0].height, received[0].width) == (375, 1242)
