"""LiDAR points into the RGB camera: a validated extrinsic, camera intrinsics, a z-buffer.

Conventions: the extrinsic ``T_cam_lidar`` maps a point of the LiDAR frame into the
camera's *optical* frame (x right, y down, z forward, metres; the frame of
ROS ``CameraInfo``): ``p_cam = R p_lidar + t``. A point is *in view* when its depth
``z = p_cam[2]`` exceeds :data:`MIN_DEPTH_M` and its (distorted) projection rounds to a pixel
of the image; its depth is z (not the range), like every depth in this package.

Distortion follows OpenCV / ROS ``image_geometry`` (:data:`DISTORTION_MODELS`):
``plumb_bob`` (k1, k2, p1, p2, k3) and ``rational_polynomial`` (k1, k2, p1, p2, k3, k4, k5,
k6) are applied to the normalized coordinates ``(x / z, y / z)`` before K (tested against
``cv2.projectPoints``); ``equidistant`` is the Kannala-Brandt fisheye model of
``cv2.fisheye`` (k1, k2, k3, k4): the field angle ``theta = atan(r)`` of
``r = |(x / z, y / z)|`` becomes the radius ``theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6
+ k4 theta^8)`` (tested against ``cv2.fisheye.projectPoints``). An empty model name,
``none``, or all-zero coefficients of any model is a pinhole, as in ``image_geometry``, which
applies no distortion when every coefficient is zero. Other models are refused.

Distortion folds back far outside the field of view, so only points where the model is one
to one are distorted and tested; the rest are out of view. For the polynomial models those
are the points whose *undistorted* projection lies within the image enlarged by
:data:`FOLD_MARGIN` of its size on each side; for ``equidistant`` (whose lens sees far
beyond the pinhole image) those whose field angle is below the first angle where the
distorted radius stops increasing (at most 90 degrees).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmcert_ros.data.point_cloud import CloudDecodeError

#: points nearer than this along the optical axis (metres) are behind the camera
MIN_DEPTH_M = 0.1
#: share of the image size added on each side before distortion is applied (fold-back guard)
FOLD_MARGIN = 0.25
#: orthonormality tolerance of a rotation matrix, max |R^T R - I| entry
ROTATION_TOLERANCE = 1e-5
#: tolerance of a quaternion's norm (it is then normalized)
QUATERNION_TOLERANCE = 1e-3
#: distortion models handled (lower case) -> number of coefficients in ``CameraInfo.d``
DISTORTION_MODELS = {'': 0, 'none': 0, 'plumb_bob': 5, 'rational_polynomial': 8,
                     'equidistant': 4}


@dataclass(frozen=True)
class Extrinsic:
    """A rigid transform ``p_cam = rotation @ p_lidar + translation`` (validated).

    :ivar rotation: ``(3, 3)`` float64, orthonormal with determinant +1.
    :ivar translation: ``(3,)`` float64 metres.
    """

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        rotation = np.array(self.rotation, dtype=np.float64)
        translation = np.array(self.translation, dtype=np.float64).reshape(-1)
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ValueError(f'extrinsic needs a 3x3 rotation and 3 translations, got '
                             f'{rotation.shape} and {translation.shape}')
        if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise ValueError('extrinsic must be finite')
        error = np.abs(rotation.T @ rotation - np.eye(3)).max()
        if error > ROTATION_TOLERANCE or np.linalg.det(rotation) < 0:
            raise ValueError(f'extrinsic rotation is not a rotation (max |R^T R - I| = '
                             f'{error:.2g}, det = {np.linalg.det(rotation):.3g})')
        for name, value in (('rotation', rotation), ('translation', translation)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @classmethod
    def from_quaternion(cls, translation: Sequence[float],
                        quaternion: Sequence[float]) -> 'Extrinsic':
        """From metres ``(tx, ty, tz)`` and a unit quaternion ``(qx, qy, qz, qw)`` (ROS order)."""
        q = np.asarray(quaternion, dtype=np.float64).reshape(-1)
        if q.shape != (4,) or not np.isfinite(q).all():
            raise ValueError(f'quaternion needs 4 finite values (qx, qy, qz, qw), '
                             f'got {q.tolist()}')
        norm = float(np.linalg.norm(q))
        if abs(norm - 1.0) > QUATERNION_TOLERANCE:
            raise ValueError(f'quaternion must have unit norm, got norm {norm:.6g}')
        x, y, z, w = q / norm
        rotation = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        return cls(rotation, translation)

    @classmethod
    def from_matrix(cls, matrix: Sequence[float] | np.ndarray) -> 'Extrinsic':
        """From a 4x4 homogeneous matrix (or its 16 values, row-major); last row 0 0 0 1."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.size != 16:
            raise ValueError(f'extrinsic matrix needs 16 values (4x4), got {matrix.size}')
        matrix = matrix.reshape(4, 4)
        if not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-9, rtol=0):
            raise ValueError(f'extrinsic matrix last row must be 0 0 0 1, '
                             f'got {matrix[3].tolist()}')
        return cls(matrix[:3, :3], matrix[:3, 3])

    @classmethod
    def from_transform(cls, stamped) -> 'Extrinsic':
        """From a ``geometry_msgs/TransformStamped`` (live or deserialized from a bag): the pose
        of its ``child_frame_id`` (the LiDAR) in its parent (the camera's optical frame)."""
        t, q = stamped.transform.translation, stamped.transform.rotation
        return cls.from_quaternion([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])

    @classmethod
    def from_values(cls, values: Sequence[float]) -> 'Extrinsic':
        """From the parameter form: 7 values ``tx ty tz qx qy qz qw`` or 16 (a 4x4 matrix)."""
        values = [float(v) for v in values]
        if len(values) == 7:
            return cls.from_quaternion(values[:3], values[3:])
        if len(values) == 16:
            return cls.from_matrix(values)
        raise ValueError('extrinsic must be 7 values (tx ty tz qx qy qz qw) or 16 (a 4x4 '
                         f'matrix, row-major), got {len(values)}')

    def to_values(self) -> list[float]:
        """The parameter form ``tx ty tz qx qy qz qw`` (:meth:`from_values` reads it back)."""
        from scipy.spatial.transform import Rotation
        quaternion = Rotation.from_matrix(self.rotation).as_quat()
        return [*self.translation.tolist(), *quaternion.tolist()]

    @property
    def matrix(self) -> np.ndarray:
        """The 4x4 homogeneous matrix."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def then(self, outer: 'Extrinsic') -> 'Extrinsic':
        """The composition ``outer after self``: if ``self`` maps frame a to b and ``outer``
        maps b to c, the result maps a to c (``p_c = R_o (R_s p_a + t_s) + t_o``)."""
        return Extrinsic(outer.rotation @ self.rotation,
                         outer.rotation @ self.translation + outer.translation)

    def inverse(self) -> 'Extrinsic':
        """The transform back: ``p_lidar = R^T (p_cam - t)``."""
        return Extrinsic(self.rotation.T, -(self.rotation.T @ self.translation))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """``(M, 3)`` LiDAR-frame points -> ``(M, 3)`` float64 camera-frame points.

        Written as nine multiply-adds per point rather than a matrix product: BLAS threads
        for a 3x3 product of a long array cost far more than they save on a busy CPU.
        """
        points = np.asarray(points, dtype=np.float64)
        rotation, translation = self.rotation, self.translation
        return np.stack([points[:, 0] * rotation[row, 0] + points[:, 1] * rotation[row, 1]
                         + points[:, 2] * rotation[row, 2] + translation[row]
                         for row in range(3)], axis=1)


@dataclass(frozen=True)
class CameraIntrinsics:
    """What projection needs of ROS ``CameraInfo``: size, K and distortion.

    :ivar width: image width, pixels. :ivar height: image height, pixels.
    :ivar k: ``(3, 3)`` intrinsic matrix (fx, fy > 0, last row 0 0 1; a skew term is applied).
    :ivar distortion_model: a key of :data:`DISTORTION_MODELS` ('' / 'none', 'plumb_bob',
        'rational_polynomial', 'equidistant').
    :ivar d: the model's coefficients (5, 8 or 4), padded with zeros to 8.
    """

    width: int
    height: int
    k: np.ndarray
    distortion_model: str = ''
    d: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        k = np.array(self.k, dtype=np.float64).reshape(-1)
        if k.size != 9 or not np.isfinite(k).all():
            raise ValueError(f'camera K needs 9 finite values, got {k.tolist()}')
        k = k.reshape(3, 3)
        if not (k[0, 0] > 0 and k[1, 1] > 0) or not np.allclose(k[2], [0, 0, 1]):
            raise ValueError(f'camera K must have fx, fy > 0 and last row 0 0 1, got {k.tolist()}')
        if int(self.width) < 1 or int(self.height) < 1:
            raise ValueError(f'camera image size must be positive, got {self.width}x{self.height}')
        model = str(self.distortion_model).lower()
        if model not in DISTORTION_MODELS:
            raise ValueError(f'distortion model {self.distortion_model!r} is not handled '
                             f'(use one of {", ".join(sorted(filter(None, DISTORTION_MODELS)))})')
        d = [float(v) for v in self.d]
        if len(d) > max(DISTORTION_MODELS[model], 0) and any(d[DISTORTION_MODELS[model]:]):
            raise ValueError(f'{model or "no distortion"} takes {DISTORTION_MODELS[model]} '
                             f'coefficients, got {len(d)}')
        if not np.isfinite(d).all():
            raise ValueError('distortion coefficients must be finite')
        d = (d + [0.0] * 8)[:8]
        k.setflags(write=False)
        object.__setattr__(self, 'k', k)
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))
        object.__setattr__(self, 'distortion_model', model)
        object.__setattr__(self, 'd', tuple(d))

    @classmethod
    def from_camera_info(cls, info) -> 'CameraIntrinsics':
        """From a ROS ``CameraInfo`` (ROS client library or rosbags: fields ``width, height, k,
        distortion_model, d``)."""
        return cls(int(info.width), int(info.height), np.asarray(info.k, dtype=np.float64),
                   str(info.distortion_model), tuple(float(v) for v in info.d))

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """``(M, 3)`` camera-frame points (z > 0) -> ``(M, 2)`` float64 pixel (u, v)."""
        z = points_cam[:, 2]
        x, y = self._distorted(points_cam[:, 0] / z, points_cam[:, 1] / z)
        k = self.k
        return np.stack([k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]], axis=1)

    def unfolded(self, points_cam: np.ndarray) -> np.ndarray:
        """``(M,)`` bool: the points of ``(M, 3)`` camera-frame points (z > 0) where the
        distortion is one to one, so that their projection may be trusted (module docstring:
        the fold-back guard). Each point's answer depends on that point alone."""
        if self._fisheye:
            z = points_cam[:, 2]
            theta = np.arctan(np.hypot(points_cam[:, 0] / z, points_cam[:, 1] / z))
            return theta < _equidistant_limit(self.d[:4])
        with np.errstate(divide='ignore', invalid='ignore'):
            pinhole = CameraIntrinsics(self.width, self.height, self.k).project(points_cam)
        margin_u, margin_v = FOLD_MARGIN * self.width, FOLD_MARGIN * self.height
        return ((pinhole[:, 0] >= -margin_u) & (pinhole[:, 0] <= self.width - 1 + margin_u)
                & (pinhole[:, 1] >= -margin_v) & (pinhole[:, 1] <= self.height - 1 + margin_v))

    @property
    def _fisheye(self) -> bool:
        return self.distortion_model == 'equidistant' and any(self.d)

    def _distorted(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized coordinates ``(x / z, y / z)`` -> distorted ones, before K."""
        if not any(self.d):
            return x, y
        if self._fisheye:
            return _equidistant(x, y, self.d[:4])
        k1, k2, p1, p2, k3, k4, k5, k6 = self.d
        r2 = x * x + y * y
        radial = ((1 + r2 * (k1 + r2 * (k2 + r2 * k3)))
                  / (1 + r2 * (k4 + r2 * (k5 + r2 * k6))))
        return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def _equidistant(x: np.ndarray, y: np.ndarray,
                 coefficients: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Kannala-Brandt: scale ``(x, y)`` (at radius r) to the radius ``theta_d(atan r)``."""
    k1, k2, k3, k4 = coefficients
    r = np.hypot(x, y)
    theta = np.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    scale = np.divide(theta_d, r, out=np.ones_like(r), where=r > 0)
    return x * scale, y * scale


def _equidistant_limit(coefficients: Sequence[float]) -> float:
    """The field angle (radians, at most pi / 2) below which the Kannala-Brandt radius
    ``theta_d(theta)`` increases: the first zero of its derivative
    ``1 + 3 k1 s + 5 k2 s^2 + 7 k3 s^3 + 9 k4 s^4`` (``s = theta^2``), if any."""
    k1, k2, k3, k4 = coefficients
    roots = np.roots([9 * k4, 7 * k3, 5 * k2, 3 * k1, 1.0])
    squares = roots.real[np.isclose(roots.imag, 0, atol=1e-9) & (roots.real > 0)]
    return float(np.min(np.sqrt(squares), initial=np.pi / 2))


@dataclass(frozen=True)
class ProjectedPoints:
    """The in-view points of one cloud: the depth modality's basic elements.

    :ivar pixels: ``(n,)`` int64 flat pixel index ``row * width + col`` of each point.
    :ivar depth: ``(n,)`` float32 depth z of each point, metres (> ``MIN_DEPTH_M``).
    :ivar height: :ivar width: the image the points project into.
    :ivar total: points in the decoded cloud, in view or not.
    :ivar xyz: ``(n, 3)`` float32 metres, each point as the cloud gave it (the cloud's own
        frame, before the extrinsic), row i the point of ``pixels[i]``; filled by
        :func:`project_points`, None for points that came without a cloud
        (:func:`points_from_depth_image`).
    """

    pixels: np.ndarray
    depth: np.ndarray
    height: int
    width: int
    total: int
    xyz: np.ndarray | None = None

    @property
    def count(self) -> int:
        """n_points: the number of in-view points."""
        return int(self.pixels.size)


def project_points(points: np.ndarray, camera: CameraIntrinsics, extrinsic: Extrinsic,
                   source: str = 'cloud') -> ProjectedPoints:
    """The points of ``(M, 3)`` LiDAR-frame metres that fall in the camera's view, in order.

    Whether a point is in view and where it lands depends on that point alone (never on the
    rest of the cloud), which the point certificate needs (``docs/certification.md``).

    :raises CloudDecodeError: kind ``'none_in_view'`` when no point is in view (all behind
        the camera or outside the image).
    """
    cam = extrinsic.apply(points)
    ahead = cam[:, 2] > MIN_DEPTH_M
    cam = cam[ahead]
    unfolded = camera.unfolded(cam)
    cam = cam[unfolded]
    uv = np.rint(camera.project(cam))
    inside = ((uv[:, 0] >= 0) & (uv[:, 0] < camera.width)
              & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height))
    if not inside.any():
        behind = int((~ahead).sum())
        raise CloudDecodeError('none_in_view', f'{source}: none of its {len(points)} points is '
                                               f'in the camera view ({behind} behind the camera)')
    uv = uv[inside].astype(np.int64)
    in_view = np.flatnonzero(ahead)[unfolded][inside]
    return ProjectedPoints(pixels=uv[:, 1] * camera.width + uv[:, 0],
                           depth=cam[inside, 2].astype(np.float32),
                           height=camera.height, width=camera.width, total=len(points),
                           xyz=np.asarray(points, dtype=np.float32)[in_view])


def zbuffer(projected: ProjectedPoints) -> np.ndarray:
    """Depth image ``(height, width)`` float32 metres: the nearest point per pixel, NaN where
    no point lands (the package's depth encoding)."""
    image = np.full(projected.height * projected.width, np.inf, dtype=np.float32)
    np.minimum.at(image, projected.pixels, projected.depth)
    image[np.isinf(image)] = np.nan
    return image.reshape(projected.height, projected.width)


def points_from_depth_image(depth: np.ndarray, source: str = 'depth') -> ProjectedPoints:
    """The points of a sparse depth image, one per valid pixel (a LiDAR scan already
    projected, e.g. the simulator's ``depth='lidar'`` frames): what ``project_points`` gives
    for the cloud that produced it when no two returns share a pixel.

    :raises CloudDecodeError: kind ``'none_in_view'`` when no pixel is valid.
    """
    flat = np.asarray(depth, dtype=np.float32).reshape(-1)
    with np.errstate(invalid='ignore'):
        pixels = np.flatnonzero(np.isfinite(flat) & (flat > MIN_DEPTH_M))
    if not pixels.size:
        raise CloudDecodeError('none_in_view', f'{source}: no valid depth pixel')
    return ProjectedPoints(pixels=pixels, depth=flat[pixels], height=depth.shape[0],
                           width=depth.shape[1], total=int(pixels.size))
