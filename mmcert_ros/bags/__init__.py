"""ROS-free rosbag IO on the pure-Python ``rosbags`` library.

Reads rosbag2 recordings (MCAP and sqlite3, a bag directory or a bare ``.mcap``/``.db3``
file) and ROS 1 ``.bag`` files; writes rosbag2 MCAP or sqlite3 bags holding
ROS ``Image`` and ``CameraInfo`` messages. Nothing here imports the ROS client library.
"""

from mmcert_ros.bags.errors import BagError, MissingTopicError
from mmcert_ros.bags.messages import camera_info_from_projection
from mmcert_ros.bags.reader import BagMessage, BagReader, TopicSummary
from mmcert_ros.bags.writer import STORAGES, BagWriter

__all__ = [
    'STORAGES',
    'BagError',
    'BagMessage',
    'BagReader',
    'BagWriter',
    'MissingTopicError',
    'TopicSummary',
    'camera_info_from_projection',
]
