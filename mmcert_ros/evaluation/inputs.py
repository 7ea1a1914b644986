"""The inputs of an evaluation: bags and KITTI Road folders, named, with their topics.

An :class:`InputSpec` says everything needed to open one input anywhere (on a cluster worker
too): kind, path, topics or KITTI subset and split, and its *name* (``id``), which names its
results and enters the per-frame seeds (:mod:`mmcert_ros.evaluation.seeds`). Inputs come
from ``--bag`` paths and globs, ``--bag-dir`` folders of bags, ``--kitti`` folders and
manifest files (:func:`read_manifest`).

Manifest format: one input per line, ``PATH [key=value ...]``; blank lines and ``#``
comments are ignored; a relative PATH is relative to the manifest's folder. Keys: ``id``
(default: the last component of PATH), ``kind`` (``bag`` or ``kitti``; default: ``kitti``
for a folder holding ``training/``, ``testing/`` or ``image_2/``, else ``bag``),
``rgb``, ``depth``, ``gt`` (topics; default: the command line's), ``subset``, ``split``
(KITTI). For example::

    # drives of 2026-11-30
    drives/highway.mcap  id=highway  gt=/road_gt/image
    drives/city_bag      depth=/points
    /data/data_road      kind=kitti  split=test
"""
from __future__ import annotations

import dataclasses
import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.errors import UserError
from mmcert_ros.evaluation.runner import input_name

_DEFAULT_TOPICS = FrameTopics()
#: files a folder of bags may hold as bags (besides rosbag2 folders)
BAG_SUFFIXES = ('.mcap', '.db3', '.bag')
_KITTI_MARKERS = ('training', 'testing', 'image_2')
_MANIFEST_KEYS = ('id', 'kind', 'rgb', 'depth', 'gt', 'subset', 'split')


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One input to evaluate (picklable: it travels to cluster workers).

    :ivar id: the input's name (unique within an evaluation).
    :ivar kind: ``'bag'`` or ``'kitti'``.
    :ivar path: the bag or KITTI folder, absolute.
    :ivar extrinsic: a point-cloud bag's fixed LiDAR-to-camera extrinsic values (as given on
        the command line), or None for the bag's ``/tf_static``.
    """

    id: str
    kind: str
    path: Path
    rgb_topic: str = _DEFAULT_TOPICS.rgb
    depth_topic: str = _DEFAULT_TOPICS.depth
    gt_topic: str | None = None
    extrinsic: tuple[float, ...] | None = None
    kitti_subset: str = 'training'
    kitti_split: str = 'all'

    def open(self, slop_s: float, first: int = 0, stop: int | None = None):
        """The frame source of the window ``[first, stop)`` of this input
        (:class:`~mmcert_ros.evaluation.BagFrames` or
        :class:`~mmcert_ros.evaluation.KittiFrames`).

        :raises UserError, BagError, FileNotFoundError: the input cannot be opened.
        """
        from mmcert_ros.data.projection import Extrinsic
        from mmcert_ros.evaluation.bag_source import BagFrames
        from mmcert_ros.evaluation.kitti_source import KittiFrames

        if self.kind == 'kitti':
            return KittiFrames(self.path, self.kitti_subset, self.kitti_split, first, stop)
        extrinsic = None
        if self.extrinsic:
            extrinsic = Extrinsic.from_values(list(self.extrinsic))
        return BagFrames(self.path, self.rgb_topic, self.depth_topic, self.gt_topic,
                         slop_s=slop_s, extrinsic=extrinsic, first=first, stop=stop)

    def identity(self) -> dict:
        """What the results of this input depend on, for content keys (JSON-ready)."""
        fields = dataclasses.asdict(self)
        fields['path'] = str(self.path)
        fields['extrinsic'] = list(self.extrinsic) if self.extrinsic else None
        return fields


def kind_of(path: Path) -> str:
    """``'kitti'`` for a folder holding ``training/``, ``testing/`` or ``image_2/``, else
    ``'bag'``."""
    if path.is_dir() and any((path / marker).is_dir() for marker in _KITTI_MARKERS):
        return 'kitti'
    return 'bag'


def expand_bag_paths(patterns: Iterable[str | Path]) -> list[Path]:
    """``--bag`` values: existing paths as they are, others expanded as globs (sorted).

    :raises UserError: a value that neither exists nor matches anything.
    """
    paths = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.exists():
            paths.append(path)
            continue
        matches = sorted(glob.glob(str(path)))
        if not matches:
            raise UserError(f'--bag {pattern}: no such file or folder')
        paths.extend(Path(match) for match in matches)
    return paths


def bags_in(folder: str | Path) -> list[Path]:
    """The bags directly inside ``folder``: rosbag2 folders (holding ``metadata.yaml``) and
    ``.mcap``/``.db3``/``.bag`` files, sorted by name.

    :raises UserError: not a folder, or no bag in it.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f'--bag-dir {folder}: not a folder')
    bags = sorted(entry for entry in folder.iterdir()
                  if (entry.is_dir() and (entry / 'metadata.yaml').is_file())
                  or (entry.is_file() and entry.suffix in BAG_SUFFIXES))
    if not bags:
        raise UserError(f'--bag-dir {folder}: no bag in it (rosbag2 folders, '
                        f'{"/".join(BAG_SUFFIXES)} files)')
    return bags


def read_manifest(path: str | Path, defaults: InputSpec) -> list[InputSpec]:
    """The inputs listed in a manifest file (format in the module docstring); unset fields
    come from ``defaults`` (its topics, extrinsic and KITTI subset/split).

    :raises UserError: the file cannot be read, or a line is malformed (naming the line).
    """
    path = Path(path).expanduser()
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f'--manifest {path}: {error}') from None
    specs = []
    for number, line in enumerate(lines, start=1):
        words = line.split('#', 1)[0].split()
        if not words:
            continue
        where = f'{path}:{number}'
        options = {}
        for word in words[1:]:
            key, equals, value = word.partition('=')
            if not equals or key not in _MANIFEST_KEYS or not value:
                raise UserError(f'{where}: {word!r} is not key=value with a key of '
                                f'{", ".join(_MANIFEST_KEYS)}')
            options[key] = value
        target = Path(words[0]).expanduser()
        if not target.is_absolute():
            target = path.parent / target
        kind = options.get('kind', kind_of(target))
        if kind not in ('bag', 'kitti'):
            raise UserError(f'{where}: kind must be bag or kitti, got {kind!r}')
        specs.append(make_spec(target, kind, defaults, id=options.get('id'),
                               rgb_topic=options.get('rgb'), depth_topic=options.get('depth'),
                               gt_topic=options.get('gt'), kitti_subset=options.get('subset'),
                               kitti_split=options.get('split')))
    if not specs:
        raise UserError(f'--manifest {path}: lists no input')
    return specs


def make_spec(path: Path, kind: str, defaults: InputSpec, **fields) -> InputSpec:
    """An input at ``path`` with ``defaults`` for every field not given (None = not given);
    the id defaults to :func:`~mmcert_ros.evaluation.runner.input_name` of the path."""
    given = {name: value for name, value in fields.items() if value is not None}
    given.setdefault('id', input_name(path))
    return dataclasses.replace(defaults, path=path.resolve(), kind=kind, **given)


def check_unique(specs: Sequence[InputSpec]) -> None:
    """:raises UserError: two inputs have the same id (name them in a manifest)."""
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.id in seen:
            raise UserError(f'two inputs are named {spec.id!r} ({seen[spec.id]} and '
                            f'{spec.path}); give them distinct ids in a --manifest')
        seen[spec.id] = spec.path
