"""The ``--write-bag`` output: the evaluated inputs plus the segmenter's output topics.

An MCAP bag (readable by Foxglove and ``ros2 bag``) holding per evaluated frame, all stamped
with the frame's RGB stamp: the inputs (RGB ``rgb8``, depth ``32FC1`` metres so the values are
exactly those evaluated, ground truth ``mono8`` 255 = road, and ROS ``CameraInfo``
where the input had it, rebuilt from its projection matrix P) and the node's outputs
``/mmcert/segmentation``, ``/mmcert/certification``, ``/mmcert/certified_radius`` and
``/mmcert/overlay``, encoded by the node's own :func:`~mmcert_ros.segmenter.outputs.output_images`.
"""
from __future__ import annotations

from pathlib import Path

from mmcert_ros.bags import BagWriter
from mmcert_ros.bags.frames import FrameTopics, write_frame
from mmcert_ros.data.frame import Frame
from mmcert_ros.segmenter.outputs import OUTPUT_TOPICS, output_images


class ResultBag:
    """Context manager writing evaluated frames and their certificates to a new MCAP bag."""

    def __init__(self, path: str | Path, input_topics: FrameTopics) -> None:
        self.input_topics = input_topics
        self._bag = BagWriter(path, storage='mcap')

    @property
    def path(self) -> Path:
        return self._bag.path

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic."""
        return dict(self._bag.counts)

    def __enter__(self) -> ResultBag:
        self._bag.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._bag.__exit__(*exc_info)

    def write(self, frame: Frame, certificate) -> None:
        """Append one frame's inputs and its certificate's output images."""
        write_frame(self._bag, frame, self.input_topics, depth_encoding='32FC1',
                    projection=frame.extras.get('projection'))
        for topic, image in output_images(certificate, frame.rgb, OUTPUT_TOPICS).items():
            self._bag.write_image('/' + topic, image, frame.stamp_ns, frame.frame_id)
