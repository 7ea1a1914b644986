"""Frames of a KITTI Road folder (or one written in its layout by ``mmcert-ros synth``).

Frames come in name order from :class:`~mmcert_ros.data.kitti.KittiRoad` with the stamps it
gives them (100 ms apart). A frame whose files are missing or unreadable is skipped and
counted under a reason naming the frame and the file, so one broken file does not end a
long evaluation and nothing is lost silently.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.kitti import SPLITS, KittiRoad


class KittiFrames:
    """Iterable of :class:`Frame` of one KITTI Road subset.

    :param root: the ``data_road`` folder (or a subset folder holding ``image_2/``).
    :param subset: ``'training'`` (has ground truth) or ``'testing'``.
    :param split: ``'all'`` frames, or the ``'train'`` / ``'test'`` part of KittiRoad's
        default seeded split (the one ``mmcert-ros train --data kitti`` uses; evaluate a
        model trained that way on ``'test'``).
    :param first: the window ``[first, stop)`` of the split's frames (in name order) to
        yield, a chunk of a long folder; ``stop`` None = to the end.
    :raises FileNotFoundError: no KITTI Road layout at ``root``.
    """

    kind = 'kitti'

    def __init__(self, root: str | Path, subset: str = 'training', split: str = 'all',
                 first: int = 0, stop: int | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f'KITTI split must be one of {SPLITS}, got {split!r}')
        self.root = Path(root)
        self.subset = subset
        self.split = split
        self.dataset = KittiRoad(self.root, subset)
        if split == 'all':
            self.names = list(self.dataset.names)
        else:
            train, test = self.dataset.split()
            self.names = train if split == 'train' else test
        self.names = self.names[first:stop]
        #: frames to expect (for a progress bar)
        self.expected = len(self.names)
        #: where a result bag publishes these inputs: the ``kitti2bag`` topics
        self.frame_topics = FrameTopics()
        self._problems: Counter[str] = Counter()

    def describe(self) -> dict:
        """Where the frames come from, for reports."""
        return {'kind': self.kind, 'path': str(self.root), 'subset': self.subset,
                'split': self.split}

    def skipped(self) -> dict[str, int]:
        """Frames not evaluated so far, by reason (naming the frame and its bad file)."""
        return dict(sorted(self._problems.items()))

    def __iter__(self) -> Iterator[Frame]:
        self._problems = Counter()
        for name in self.names:
            try:
                frame = self.dataset.frame(name)
            except (FileNotFoundError, ValueError) as error:
                self._problems[f'unreadable frame {name}: {error}'] += 1
                continue
            yield frame
