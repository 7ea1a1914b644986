"""Write rosbag2 bags (MCAP or sqlite3) of ROS sensor messages.

Bags carry their message definitions (readable without a typestore by ``ros2 bag``, Foxglove
and ``rosbags``) and ``metadata.yaml`` version 8, whose QoS encoding Humble's reader parses.
Every topic records the QoS profile it is offered with, in the YAML form rosbag2 writes (in
metadata.yaml and, for MCAP, in the channel's ``offered_qos_profiles`` metadata), which
``ros2 bag play`` offers again: :data:`OFFERED_QOS` (reliable, volatile, keep-last 10, no
deadline/lifespan/lease), which reliable and best-effort subscribers accept, and for
``/tf_static`` :data:`LATCHED_QOS` (reliable, transient local, keep-last 1), as tf2's static
broadcaster offers it: tf2 listeners and the segmenter subscribe transient local, and a
volatile publisher never reaches a transient-local subscriber.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from mmcert_ros.bags.errors import BagError
from mmcert_ros.bags.messages import TF_STATIC_TOPIC, TYPESTORE, image_message
from mmcert_ros.segmenter.codec import ImageFields
from mmcert_ros.segmenter.message_fields import stamp_to_ns

#: storage name (as ``ros2 bag record -s``) -> rosbags storage plugin
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
_METADATA_VERSION = 8
_UNSPECIFIED = QosTime(sec=0, nsec=0)    # rmw: the default, i.e. no deadline / infinite
#: the QoS profile recorded as offered for every topic
OFFERED_QOS = Qos(history=QosHistory.KEEP_LAST, depth=10, reliability=QosReliability.RELIABLE,
                  durability=QosDurability.VOLATILE, deadline=_UNSPECIFIED,
                  lifespan=_UNSPECIFIED, liveliness=QosLiveliness.AUTOMATIC,
                  liveliness_lease_duration=_UNSPECIFIED, avoid_ros_namespace_conventions=False)
#: the profile of latched topics (``/tf_static``): late subscribers get the last message
LATCHED_QOS = Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                  durability=QosDurability.TRANSIENT_LOCAL, deadline=_UNSPECIFIED,
                  lifespan=_UNSPECIFIED, liveliness=QosLiveliness.AUTOMATIC,
                  liveliness_lease_duration=_UNSPECIFIED, avoid_ros_namespace_conventions=False)


def offered_qos(topic: str) -> Qos:
    """The QoS profile a bag records as offered on ``topic``."""
    return LATCHED_QOS if topic == TF_STATIC_TOPIC else OFFERED_QOS


class BagWriter:
    """A new rosbag2 bag; use as a context manager.

    The bag directory must not exist yet. If the ``with`` block raises, the partly written
    bag directory is removed, so a bag that exists is always complete.
    """

    def __init__(self, path: str | Path, storage: str = 'mcap') -> None:
        if storage not in STORAGES:
            raise ValueError(f'unknown bag storage {storage!r}; choose one of {sorted(STORAGES)}')
        self.path = Path(path)
        self.storage = storage
        self._writer: Writer | None = None
        self._connections = {}
        #: messages written so far, per topic
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        if self.path.exists():
            raise BagError(f'bag {self.path} exists already, not overwriting')
        writer = Writer(self.path, version=_METADATA_VERSION,
                        storage_plugin=STORAGES[self.storage])
        try:
            writer.open()
        except (WriterError, OSError) as error:
            raise BagError(f'cannot create bag {self.path}: {error}') from None
        self._writer = writer
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if exc_type is None:
            writer.close()
        else:
            writer.abort()
            shutil.rmtree(self.path, ignore_errors=True)

    def write(self, topic: str, message, log_time_ns: int | None = None) -> None:
        """Append one typestore message; ``log_time_ns`` defaults to its header stamp."""
        if self._writer is None:
            raise BagError(f'bag {self.path} is not open (use BagWriter as a context manager)')
        msgtype = message.__msgtype__
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE,
                                                     offered_qos_profiles=[offered_qos(topic)])
            self._connections[topic] = connection
            self.counts[topic] = 0
        elif connection.msgtype != msgtype:
            raise BagError(f'bag {self.path}: topic {topic} holds {connection.msgtype}, '
                           f'cannot add a {msgtype}')
        if log_time_ns is None:
            log_time_ns = stamp_to_ns(message.header.stamp)
        self._writer.write(connection, log_time_ns, TYPESTORE.serialize_cdr(message, msgtype))
        self.counts[topic] += 1

    def write_image(self, topic: str, image: ImageFields, stamp_ns: int, frame_id: str) -> None:
        """Append a ROS ``Image`` from encoded fields, logged at its stamp."""
        self.write(topic, image_message(image, stamp_ns, frame_id))
