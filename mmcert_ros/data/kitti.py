"""KITTI Road in its published layout: reader, seeded split, and a writer for synthetic drives.

Layout (``data_road/``; ``testing/`` is the same without ``gt_image_2``)::

    training/image_2/<cat>_<id>.png            RGB, <cat> in um, umm, uu (any lower-case word)
    training/gt_image_2/<cat>_road_<id>.png    road where blue > 0, labelled where red > 0
    training/calib/<cat>_<id>.txt              P2, R0_rect, Tr_velo_to_cam (KITTI text format)
    training/velodyne/<cat>_<id>.bin           float32 (x, y, z, reflectance) LiDAR points
    training/depth_u16/<cat>_<id>.png          uint16 millimetres, 0 = invalid (SNE-RoadSeg)

Depth comes from ``depth_u16`` when that file exists, otherwise from projecting the
velodyne scan through the calibration (nearest return per pixel). Every missing or
unreadable file raises an error that names the file.

Conventions: pixel ``(u, v)`` integer coordinates are pixel centres and a projected point
lands on pixel ``(round(u), round(v))``; depth is the z coordinate in the image_2 camera
frame, i.e. the third homogeneous coordinate of ``P2 @ R0_rect @ Tr_velo_to_cam @ x``.
Frames get ``stamp_ns = position * 100 ms`` in name order (the files carry no time).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mmcert_ros.data.depth import metres_to_millimetres, millimetres_to_metres
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.projection import Extrinsic

NAME_PATTERN = re.compile(r'^([a-z]+)_(\d+)$')
FRAME_PERIOD_NS = 100_000_000
DEPTH_SOURCES = ('auto', 'depth_u16', 'velodyne')
SPLITS = ('train', 'test', 'all')
ROAD_RGB = (255, 0, 255)       # ground-truth colours as KITTI publishes them
NOT_ROAD_RGB = (255, 0, 0)


@dataclass(frozen=True)
class KittiCalibration:
    """The three matrices of a KITTI calibration file that image_2 needs (float64)."""

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray

    @property
    def camera_matrix(self) -> np.ndarray:
        """The 3x3 intrinsic part of ``P2``."""
        return self.P2[:, :3].copy()

    def velodyne_to_image(self) -> np.ndarray:
        """The 3x4 matrix ``P2 @ R0_rect @ Tr_velo_to_cam`` (homogeneous velodyne -> pixel)."""
        rect = np.eye(4)
        rect[:3, :3] = self.R0_rect
        velo = np.eye(4)
        velo[:3, :] = self.Tr_velo_to_cam
        return self.P2 @ rect @ velo

    def camera_extrinsic(self) -> Extrinsic:
        """The velodyne-to-image_2 extrinsic: ``[I | K^-1 P2[:, 3]] @ R0_rect @ Tr_velo_to_cam``.

        With ``K = P2[:, :3]``, ``K @ (extrinsic applied to x)`` equals
        ``velodyne_to_image() @ [x; 1]``: projecting with the extrinsic and K lands on the
        pixels of :func:`project_velodyne`, the stereo rig's baseline folded into the
        translation. Validated like any extrinsic (rotation orthonormal, finite).
        """
        offset = np.eye(4)
        offset[:3, 3] = np.linalg.solve(self.camera_matrix, self.P2[:, 3])
        rect = np.eye(4)
        rect[:3, :3] = self.R0_rect
        velo = np.eye(4)
        velo[:3, :] = self.Tr_velo_to_cam
        return Extrinsic.from_matrix(offset @ rect @ velo)

    @classmethod
    def read(cls, path: Path | str) -> KittiCalibration:
        """Parse a KITTI calibration text file (``key: numbers`` per line).

        :raises FileNotFoundError: the file does not exist.
        :raises ValueError: a needed key is missing or has the wrong number of values.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'{path}: calibration file not found')
        values: dict[str, np.ndarray] = {}
        for number, line in enumerate(path.read_text(errors='replace').splitlines(), 1):
            if not line.strip():
                continue
            key, sep, rest = line.partition(':')
            if not sep:
                raise ValueError(f'{path}:{number}: expected "key: values", got {line[:40]!r}')
            try:
                values[key.strip()] = np.array([float(x) for x in rest.split()])
            except ValueError as error:
                raise ValueError(f'{path}:{number}: {key.strip()} has a non-numeric value '
                                 f'({error})') from None
        shapes = {'P2': (3, 4), 'R0_rect': (3, 3), 'Tr_velo_to_cam': (3, 4)}
        matrices = {}
        for key, shape in shapes.items():
            if key not in values:
                raise ValueError(f'{path}: calibration key {key} is missing')
            if values[key].size != shape[0] * shape[1]:
                raise ValueError(f'{path}: {key} needs {shape[0] * shape[1]} values, '
                                 f'got {values[key].size}')
            matrices[key] = values[key].reshape(shape)
        return cls(**matrices)

    def write(self, path: Path | str) -> None:
        """Write the file KITTI-style (P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo).

        P0, P1 and P3 repeat P2 (with P3 shifted by a 0.54 m stereo baseline); only P2,
        R0_rect and Tr_velo_to_cam carry meaning for this package.
        """
        p3 = self.P2.copy()
        p3[0, 3] -= self.P2[0, 0] * 0.54
        rows = [('P0', self.P2), ('P1', self.P2), ('P2', self.P2), ('P3', p3),
                ('R0_rect', self.R0_rect), ('Tr_velo_to_cam', self.Tr_velo_to_cam),
                ('Tr_imu_to_velo', np.eye(3, 4))]
        text = ''.join(f'{key}: ' + ' '.join(f'{v:.12e}' for v in matrix.ravel()) + '\n'
                       for key, matrix in rows)
        Path(path).write_text(text)


def lidar_calibration(camera_matrix: np.ndarray) -> KittiCalibration:
    """A KITTI-like calibration for a camera ``camera_matrix`` and a roof LiDAR.

    The velodyne frame is KITTI's (x forward, y left, z up) with its origin 0.08 m above
    and 0.27 m behind the camera; ``R0_rect`` is the identity and ``P2 = [K | 0]``.
    """
    rotation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    origin_in_camera = np.array([0.0, -0.08, -0.27])
    tr = np.hstack([rotation, origin_in_camera[:, None]])
    p2 = np.hstack([np.asarray(camera_matrix, dtype=np.float64), np.zeros((3, 1))])
    return KittiCalibration(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=tr)


def project_velodyne(points: np.ndarray, calibration: KittiCalibration, width: int,
                     height: int) -> np.ndarray:
    """Sparse depth image (float32 metres, NaN = no point) from velodyne points.

    :param points: ``(N, 3)`` or ``(N, 4)`` velodyne-frame points (extra columns ignored).
    Points behind the camera or outside the image are dropped; where several points land
    on one pixel the nearest is kept.
    """
    points = np.asarray(points, dtype=np.float64)
    homogeneous = np.hstack([points[:, :3], np.ones((len(points), 1))])
    uvw = homogeneous @ calibration.velodyne_to_image().T
    depth = uvw[:, 2]
    front = depth > 1e-6
    cols = np.rint(uvw[front, 0] / depth[front]).astype(np.int64)
    rows = np.rint(uvw[front, 1] / depth[front]).astype(np.int64)
    depth = depth[front]
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = np.full(height * width, np.inf)
    np.minimum.at(flat, rows[inside] * width + cols[inside], depth[inside])
    flat[np.isinf(flat)] = np.nan
    return flat.reshape(height, width).astype(np.float32)


def depth_to_velodyne(depth_m: np.ndarray, calibration: KittiCalibration,
                      reflectance: np.ndarray | None = None) -> np.ndarray:
    """Velodyne points ``(N, 4)`` float32 for every valid pixel of a depth image.

    The inverse of :func:`project_velodyne` for pixel-centred points: projecting the
    result with the same calibration gives back the same pixels and depths (up to float32
    rounding). Requires ``P2`` with zero skew.
    """
    rows, cols = np.nonzero(np.isfinite(depth_m) & (depth_m > 0))
    w = depth_m[rows, cols].astype(np.float64)
    to_image = calibration.velodyne_to_image()            # 3x4: M @ [x; 1]
    # solve M[:, :3] x = w * (u, v, 1) - M[:, 3] for every pixel
    target = np.stack([cols * w, rows * w, w]) - to_image[:, 3:4]
    xyz = np.linalg.solve(to_image[:, :3], target).T
    refl = np.zeros(len(w)) if reflectance is None else reflectance[rows, cols]
    return np.hstack([xyz, refl[:, None]]).astype(np.float32)


def read_velodyne(path: Path | str) -> np.ndarray:
    """``(N, 4)`` float32 points of a KITTI ``.bin`` scan.

    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the size is not a whole number of 16-byte points.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: velodyne scan not found')
    raw = path.read_bytes()
    if len(raw) % 16:
        raise ValueError(f'{path}: {len(raw)} bytes is not a whole number of float32 '
                         '(x, y, z, reflectance) points')
    return np.frombuffer(raw, dtype='<f4').reshape(-1, 4).copy()


def _read_png(path: Path, flags: int, what: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f'{path}: {what} not found')
    image = cv2.imread(str(path), flags)
    if image is None:
        raise ValueError(f'{path}: cannot decode {what} (corrupt or not an image)')
    return image


def read_rgb(path: Path | str) -> np.ndarray:
    """An 8-bit colour image as ``(H, W, 3)`` uint8 RGB."""
    image = _read_png(Path(path), cv2.IMREAD_UNCHANGED, 'RGB image')
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f'{path}: expected an 8-bit colour image, got {image.dtype} '
                         f'with shape {image.shape}')
    return np.ascontiguousarray(image[:, :, 2::-1])


def read_road_ground_truth(path: Path | str) -> tuple[np.ndarray, np.ndarray | None]:
    """KITTI ground truth decoded as the devkit does: ``(road, valid)``.

    ``road`` is ``(H, W)`` uint8, 1 where the blue channel is > 0; ``valid`` is ``(H, W)``
    bool, True where the red channel is > 0 (the devkit's evaluated area; black pixels are
    unlabelled), or None when every pixel is labelled.
    """
    image = _read_png(Path(path), cv2.IMREAD_UNCHANGED, 'ground-truth image')
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f'{path}: ground truth must be a colour image, got shape {image.shape}')
    road = (image[:, :, 0] > 0).astype(np.uint8)        # OpenCV order: channel 0 is blue
    valid = image[:, :, 2] > 0                           # ... and channel 2 red
    return road, None if valid.all() else valid


def read_depth_u16(path: Path | str) -> np.ndarray:
    """A ``depth_u16`` PNG as float32 metres (0 -> NaN)."""
    image = _read_png(Path(path), cv2.IMREAD_UNCHANGED, 'depth image')
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f'{path}: depth_u16 must be a single-channel 16-bit PNG of '
                         f'millimetres, got {image.dtype} with shape {image.shape}')
    return millimetres_to_metres(image, source=str(path))


class KittiRoad:
    """KITTI Road (or anything written in its layout, such as ``mmcert-ros synth``).

    :param root: the ``data_road`` folder (holding ``training/``), or a subset folder
        itself (holding ``image_2/``).
    :param subset: ``'training'`` or ``'testing'`` when ``root`` holds both.
    :raises FileNotFoundError: no ``image_2`` folder or no ``<cat>_<id>.png`` in it.
    """

    def __init__(self, root: Path | str, subset: str = 'training') -> None:
        root = Path(root)
        if (root / subset / 'image_2').is_dir():
            self.base = root / subset
        elif (root / 'image_2').is_dir():
            self.base = root
        else:
            raise FileNotFoundError(
                f'{root}: no KITTI Road layout here (expected {root / subset / "image_2"} '
                f'or {root / "image_2"})')
        images = sorted(self.base.glob('image_2/*.png'))
        self.names = [p.stem for p in images if NAME_PATTERN.match(p.stem)]
        if not self.names:
            raise FileNotFoundError(f'{self.base / "image_2"}: no <category>_<id>.png images')

    def __len__(self) -> int:
        return len(self.names)

    def paths(self, name: str) -> dict[str, Path]:
        """The files of frame ``name`` (they may or may not exist)."""
        match = NAME_PATTERN.match(name)
        if match is None:
            raise ValueError(f'{name!r} is not a KITTI Road frame name (<category>_<id>)')
        category, number = match.groups()
        return {'image': self.base / 'image_2' / f'{name}.png',
                'gt': self.base / 'gt_image_2' / f'{category}_road_{number}.png',
                'calib': self.base / 'calib' / f'{name}.txt',
                'velodyne': self.base / 'velodyne' / f'{name}.bin',
                'depth_u16': self.base / 'depth_u16' / f'{name}.png'}

    def split(self, seed: int = 0, test_fraction: float = 0.25) -> tuple[list[str], list[str]]:
        """A seeded random ``(train, test)`` partition of the frame names (each sorted).

        The test set holds ``round(test_fraction * len(self))`` frames; the same seed and
        fraction always give the same partition of the same folder.
        """
        if not 0.0 <= test_fraction <= 1.0:
            raise ValueError(f'test_fraction must be in [0, 1], got {test_fraction}')
        order = np.random.default_rng(seed).permutation(len(self.names))
        n_test = int(round(test_fraction * len(self.names)))
        test = sorted(self.names[i] for i in order[:n_test])
        train = sorted(self.names[i] for i in order[n_test:])
        return train, test

    def frames(self, split: str = 'all', seed: int = 0, test_fraction: float = 0.25,
               depth: str = 'auto') -> Iterator[Frame]:
        """Frames of ``split`` (``'train'``, ``'test'`` of :meth:`split`, or ``'all'``),
        in name order. ``depth``: ``'auto'``, ``'depth_u16'`` or ``'velodyne'``."""
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if split == 'all':
            names = self.names
        else:
            train, test = self.split(seed, test_fraction)
            names = train if split == 'train' else test
        for name in names:
            yield self.frame(name, depth)

    def frame(self, name: str, depth: str = 'auto') -> Frame:
        """Read one frame. ``road_mask`` is None when the ground truth file is absent
        (the ``testing`` subset), ``road_valid`` None when the ground truth labels every
        pixel; ``extras['depth_source']`` says where depth came from."""
        if depth not in DEPTH_SOURCES:
            raise ValueError(f'depth must be one of {DEPTH_SOURCES}, got {depth!r}')
        if name not in self.names:
            raise FileNotFoundError(f'{self.base / "image_2" / (name + ".png")}: no such frame')
        paths = self.paths(name)
        rgb = read_rgb(paths['image'])
        calibration = KittiCalibration.read(paths['calib'])
        source = depth
        if depth == 'auto':
            source = 'depth_u16' if paths['depth_u16'].is_file() else 'velodyne'
        if source == 'depth_u16':
            depth_m = read_depth_u16(paths['depth_u16'])
        else:
            depth_m = project_velodyne(read_velodyne(paths['velodyne']), calibration,
                                       rgb.shape[1], rgb.shape[0])
        road = valid = None
        if paths['gt'].is_file():
            road, valid = read_road_ground_truth(paths['gt'])
            if road.shape != rgb.shape[:2]:
                raise ValueError(f'{paths["gt"]}: ground truth is {road.shape[::-1]} pixels '
                                 f'but {paths["image"].name} is {rgb.shape[1::-1]}')
        category = NAME_PATTERN.match(name).group(1)
        return Frame(rgb=rgb, depth=depth_m, road_mask=road, road_valid=valid,
                     stamp_ns=self.names.index(name) * FRAME_PERIOD_NS, frame_id='camera',
                     camera_matrix=calibration.camera_matrix, name=name,
                     extras={'category': category, 'depth_source': source})


def write_kitti_frame(base: Path | str, name: str, frame: Frame, calibration: KittiCalibration,
                      velodyne_points: np.ndarray | None = None) -> dict[str, Path]:
    """Write one frame into a KITTI Road subset folder (``base`` = ``.../training``).

    Writes ``image_2``, ``gt_image_2`` (if the frame has a road mask; black where
    ``road_valid`` is False), ``calib``, ``depth_u16`` (the frame's depth in millimetres;
    depths beyond 65.535 m become 0) and ``velodyne`` (if points are given).
    :class:`KittiRoad` reads back the same RGB bit for bit, the same labelled area and the
    same mask on it, and depth as ``millimetres_to_metres(metres_to_millimetres(depth))``.
    """
    match = NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(f'{name!r} is not a KITTI Road frame name (<category>_<id>)')
    category, number = match.groups()
    base = Path(base)
    written = {'image': base / 'image_2' / f'{name}.png',
               'calib': base / 'calib' / f'{name}.txt',
               'depth_u16': base / 'depth_u16' / f'{name}.png'}
    if frame.road_mask is not None:
        written['gt'] = base / 'gt_image_2' / f'{category}_road_{number}.png'
    if velodyne_points is not None:
        written['velodyne'] = base / 'velodyne' / f'{name}.bin'
    for path in written.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_png(written['image'], frame.rgb[:, :, ::-1])
    _write_png(written['depth_u16'], metres_to_millimetres(frame.depth, source=name))
    calibration.write(written['calib'])
    if frame.road_mask is not None:
        colours = np.array([NOT_ROAD_RGB[::-1], ROAD_RGB[::-1]], np.uint8)   # BGR
        gt = colours[(frame.road_mask > 0).astype(np.int64)]
        if frame.road_valid is not None:
            gt[~frame.road_valid] = 0                    # KITTI's unlabelled void is black
        _write_png(written['gt'], gt)
    if velodyne_points is not None:
        np.asarray(velodyne_points, dtype='<f4').reshape(-1, 4).tofile(written['velodyne'])
    return written


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(image)):
        raise OSError(f'{path}: could not write PNG')
