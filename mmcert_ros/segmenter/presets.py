"""Source presets: the parameter files in ``config/`` and the topic names they record.

A preset file (``carla.yaml``, ``realsense.yaml``, ``kitti.yaml``; the LiDAR presets
``velodyne.yaml`` and ``ouster.yaml``) is a ROS 2 parameter file with sections for
``mmcert_segmenter`` and (except the LiDAR presets: sim_drive publishes no clouds)
``mmcert_sim_drive`` and a section ``mmcert_topics`` naming the source's topics
(``rgb_image``, ``depth_image`` or ``depth_points``, ``camera_info``). Remappings are not
parameters, so launch files and ``mmcert-ros node --preset`` read them from there. ROS-free
(PyYAML only).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

PRESETS = ('carla', 'realsense', 'kitti', 'velodyne', 'ouster')
TOPICS_SECTION = 'mmcert_topics'
#: key in the topics section -> the segmenter's input name it remaps
TOPIC_KEYS = {'rgb_image': 'rgb/image', 'depth_image': 'depth/image',
              'depth_points': 'depth/points', 'camera_info': 'rgb/camera_info'}
#: the segmenter's RGB input with ``rgb.transport: compressed`` (image_transport's name)
COMPRESSED_RGB = 'rgb/image/compressed'


def with_compressed_rgb(remappings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``remappings`` plus ``rgb/image/compressed -> <rgb topic>/compressed`` where
    ``rgb/image`` is remapped (image_transport publishes a camera's compressed images beside
    its raw ones), unless the compressed input is remapped already."""
    mapped = dict(remappings)
    if 'rgb/image' in mapped and COMPRESSED_RGB not in mapped:
        return [*remappings, (COMPRESSED_RGB, mapped['rgb/image'].rstrip('/') + '/compressed')]
    return list(remappings)


def config_dir() -> Path:
    """The package's ``config`` folder: installed share directory or the source checkout."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory('mmcert_ros')) / 'config')
    except (ImportError, LookupError, ValueError, OSError):  # not installed with ament
        pass
    candidates += [Path(sys.prefix) / 'share' / 'mmcert_ros' / 'config',
                   Path(__file__).resolve().parents[2] / 'config']
    for candidate in candidates:
        if (candidate / 'mmcert.yaml').is_file():
            return candidate
    raise FileNotFoundError(f'mmcert_ros config folder not found; looked in '
                            f'{", ".join(map(str, candidates))}')


def preset_path(preset: str) -> Path:
    """Path of a preset by name (one of :data:`PRESETS`, or ``mmcert``) or file path."""
    path = Path(preset)
    if path.suffix in ('.yaml', '.yml'):
        if not path.is_file():
            raise FileNotFoundError(f'preset file not found: {path}')
        return path
    if preset not in PRESETS + ('mmcert',):
        raise ValueError(f'unknown preset {preset!r}; choose one of {PRESETS} or a .yaml file')
    return config_dir() / f'{preset}.yaml'


def preset_remappings(path: str | Path) -> list[tuple[str, str]]:
    """``[(segmenter input name, source topic), ...]`` from a preset's ``mmcert_topics``
    section (with :func:`with_compressed_rgb`); empty if the file has none (e.g.
    ``mmcert.yaml``).

    :raises ValueError: naming the file and key if the section is malformed.
    """
    document = yaml.safe_load(Path(path).read_text()) or {}
    section = document.get(TOPICS_SECTION)
    if section is None:
        return []
    topics = section.get('ros__parameters') if isinstance(section, dict) else None
    if not isinstance(topics, dict):
        raise ValueError(f'{path}: {TOPICS_SECTION} must hold ros__parameters with topic names')
    unknown = set(topics) - set(TOPIC_KEYS)
    if unknown:
        raise ValueError(f'{path}: unknown keys in {TOPICS_SECTION}: {sorted(unknown)}; '
                         f'expected {sorted(TOPIC_KEYS)}')
    remaps = []
    for key, topic in topics.items():
        if not isinstance(topic, str) or not topic:
            raise ValueError(f'{path}: {TOPICS_SECTION}.{key} must be a topic name, got {topic!r}')
        remaps.append((TOPIC_KEYS[key], topic))
    return with_compressed_rgb(remaps)
