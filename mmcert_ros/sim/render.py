"""Rasterise one instant of a synthetic drive: RGB, exact metric depth and the road mask.

The camera is level, so every image row meets the (flat) road at one analytic depth
``fy * h / (v - cy)``; the road, kerbs, walks and verges are shaded from per-row tables.
Building fronts, tree lines and hills are vertical surfaces along the road, found per image
column by a ray/curve intersection; vehicles, trunks, poles and crowns are boxes and
ellipsoids intersected per pixel inside their projected bounding boxes. A z-buffer keeps
the nearest surface, so depth and the road mask are exact for what the RGB shows.

Approximations (all off the road surface): kerb faces and raised walks use the centreline
of the road row they share; wall depths are found by bisection to about 1e-4 of the depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mmcert_ros.sim import scene as sc
from mmcert_ros.sim.materials import (ASPHALT_WALK, BUILDING0, CURB, FOLIAGE, GLASS,
                                      GROUND_MATERIALS, HEADLIGHT, HILL, PAVING, POLE, ROAD0,
                                      SHOULDER, SIDEWALK, SKY0, TAILLIGHT, TIRE, TREELINE,
                                      TRUNK, VEHICLE0, VERGE_MATERIAL, base_palette,
                                      frame_palette)
from mmcert_ros.sim.motion import EgoState, Motion
from mmcert_ros.sim.primitives import MAX_OBJECT_Z_M, NEAR_Z_M, CameraRays
from mmcert_ros.sim.roadview import RoadView
from mmcert_ros.sim.shadows import ShadowMap
from mmcert_ros.sim.textures import (COARSE_TEXEL_M, FINE_TEXEL_M, FOLIAGE_TEXEL_M,
                                     RIDGE_TEXEL_M, WORLD_PERIOD_M, sample, sample_1d,
                                     textures)

_FACADE_TEXEL_M = 0.05   # fine tile on facades: 25.6 m, divides WORLD_PERIOD_M
_SKY_STEP = 4            # clouds are sampled on a grid this much coarser, then resized
_CURB_WIDTH_M = 0.15
_NOISE_BANK_EXTRA = 1 << 16


@dataclass
class Rendering:
    """One rendered instant of a drive.

    :ivar rgb: ``(H, W, 3)`` uint8 RGB.
    :ivar depth: ``(H, W)`` float32 z-depth in metres; NaN for sky and beyond the range.
    :ivar road_mask: ``(H, W)`` uint8, 1 where the visible surface is the road.
    :ivar ego: the camera pose.
    :ivar index: frame index within the drive; ``time_s = index / frame_rate_hz``.
    """

    rgb: np.ndarray
    depth: np.ndarray
    road_mask: np.ndarray
    ego: EgoState
    index: int


class _FrameBuffer:
    """Deferred shading: material, shade, depth and road flag of the nearest surface so far.

    The colour of a pixel is ``palette[material] * shade``, computed once at the end;
    anti-aliased lane paint is blended in afterwards.
    """

    def __init__(self, height: int, width: int) -> None:
        self.material = np.zeros((height, width), np.uint8)
        self.shade = np.ones((height, width), np.float32)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.road = np.zeros((height, width), bool)
        self.paint: tuple | None = None             # (rows, cols, rgb, coverage) of lane paint


class Renderer:
    """Renders frames of drives for one :class:`~mmcert_ros.sim.scene.SceneConfig`.

    Per-configuration tables (ray slopes, ground depth per row, vignetting, a bank of
    sensor noise) are computed once here; :meth:`render` only does per-frame work.
    """

    def __init__(self, config: sc.SceneConfig) -> None:
        self.config = config
        cam = config.camera
        self.camera = cam
        self.rays = CameraRays(cam)
        self.col_slope = self.rays.col_slope
        self.col_slope32 = self.col_slope.astype(np.float32)
        self.row_slope = self.rays.row_slope
        self.first_ground_row = int(np.floor(cam.cy)) + 1
        self.ground_rows = np.arange(self.first_ground_row, cam.height)
        self.ground_z = cam.ground_depth(self.ground_rows)
        self.wall_z = np.geomspace(1.5, 400.0, 100)
        u = (np.arange(cam.width) - cam.cx) / cam.width
        v = (np.arange(cam.height) - cam.cy) / cam.width
        self.vignette = (1 - 0.35 * (u[None, :] ** 2 + v[:, None] ** 2)).astype(np.float32)
        self.textures = textures()
        self.palette = base_palette()
        size = cam.height * cam.width * 3
        self.noise_bank = np.random.default_rng(0).standard_normal(
            size + _NOISE_BANK_EXTRA, dtype=np.float32)
        columns, rows = np.meshgrid(np.arange(cam.width) * 0.37, np.arange(cam.height) * 0.37)
        self.sky_dither = sample(self.textures.fine, columns, rows, 1.0) * 0.3 + 0.5
        self.fine_amp = np.zeros(256, np.float32)
        self.coarse_amp = np.zeros(256, np.float32)
        self.fine_amp[GROUND_MATERIALS] = (0.05, 0.05, 0.06, 0.22, 0.14, 0.2, 0.15, 0.07)
        self.coarse_amp[GROUND_MATERIALS] = (0.04, 0.06, 0.07, 0.22, 0.18, 0.1, 0.12, 0.08)
        self.fine_amp[ROAD0:] = 0.07
        self.coarse_amp[ROAD0:] = 0.06

    # ------------------------------------------------------------------ frame
    def render(self, world: sc.World, motion: Motion, lighting: sc.Lighting, index: int,
               rng: np.random.Generator) -> Rendering:
        """Render frame ``index`` of the drive (``time = index / frame_rate_hz``).

        ``rng`` drives only the sensor noise; the scene is a function of the world,
        the motion and the index.
        """
        t = index / self.config.frame_rate_hz
        ego = motion.ego(t)
        view = RoadView(world, ego)
        cam = self.camera
        fb = _FrameBuffer(cam.height, cam.width)
        sun = self._sun_vector(world, ego, lighting)
        first = int(np.floor((ego.s - 40.0) / sc.CHUNK_M))
        last = int(np.floor((ego.s + 420.0) / sc.CHUNK_M))
        chunks = [world.chunk(i) for i in range(first, last + 1)]
        vehicles = self._vehicles(world, motion, ego, chunks, t)
        shadow = ShadowMap(world, ego, lighting, chunks, vehicles)
        s_base = np.floor(ego.s / WORLD_PERIOD_M) * WORLD_PERIOD_M

        self._draw_sky(fb, world, ego)
        self._draw_ground(fb, world, view, chunks, lighting, shadow, s_base)
        self._draw_backdrop(fb, world, view, chunks, sun, lighting, s_base)
        self._draw_trees_and_poles(fb, world, view, chunks, sun, lighting)
        for row in vehicles:
            self._draw_vehicle(fb, view, row, sun, lighting)
        palette = frame_palette(self.palette, [ch.district.asphalt_rgb for ch in chunks],
                                lighting)
        return self._finish(fb, ego, index, lighting, palette, rng)

    def _sun_vector(self, world, ego, lighting) -> np.ndarray:
        heading = world.heading(np.array([ego.s]))[0] + ego.yaw
        az = lighting.sun_azimuth - heading
        el = lighting.sun_elevation
        return np.array([np.cos(el) * np.sin(az), -np.sin(el), np.cos(el) * np.cos(az)])

    def _face_light(self, normal_dot_sun: np.ndarray, lighting: sc.Lighting) -> np.ndarray:
        """Light on a surface relative to lit ground, from ``n . sun`` (any shape)."""
        strength = lighting.shadow_strength
        direct = np.clip(normal_dot_sun, 0, None) / np.sin(lighting.sun_elevation)
        return ((1 - strength) + strength * np.minimum(direct, 1.6)).astype(np.float32)

    def _finish(self, fb: _FrameBuffer, ego: EgoState, index: int, lighting: sc.Lighting,
                palette: np.ndarray, rng: np.random.Generator) -> Rendering:
        c = self.config
        gain = self.vignette * np.float32(
            255.0 * lighting.exposure * rng.uniform(0.96, 1.04))       # (H, W)
        image = np.take(palette, fb.material, axis=0)
        image *= (fb.shade * gain)[..., None]
        if fb.paint is not None:
            rows, cols, rgb, cover = fb.paint
            visible = fb.road[rows, cols]
            rows, cols, rgb, cover = rows[visible], cols[visible], rgb[visible], cover[visible]
            image[rows, cols] = (image[rows, cols] * (1 - cover)
                                 + rgb * (cover * gain[rows, cols, None]))
        if c.blur_sigma_px > 0:
            image = cv2.GaussianBlur(image, (0, 0), c.blur_sigma_px)
        if c.rgb_noise_std > 0:
            start = int(rng.integers(0, _NOISE_BANK_EXTRA))
            image += self.noise_bank[start:start + image.size].reshape(image.shape) * np.float32(
                c.rgb_noise_std)
        rgb = np.clip(image, 0, 255).astype(np.uint8)
        depth = fb.depth
        depth[~(depth <= c.max_depth_m)] = np.nan
        return Rendering(rgb=rgb, depth=depth, road_mask=fb.road.astype(np.uint8), ego=ego,
                         index=index)

    # ------------------------------------------------------------------ sky
    def _draw_sky(self, fb, world, ego) -> None:
        """Sky materials: ``SKY0 + 4 * gradient level + cloud level``, dithered.

        The gradient runs over 16 levels from the horizon to 0.35 rad above it and clouds
        (a texture over azimuth and 1 / elevation) over 4 cover levels; the palette of
        :func:`~mmcert_ros.sim.materials.frame_palette` gives each combination its colour.
        """
        cam = self.camera
        rows = int(min(cam.height, self.first_ground_row + 2))
        elevation = np.arctan(-self.row_slope[:rows])       # radians above the horizon
        heading = world.heading(np.array([ego.s]))[0] + ego.yaw
        azimuth = np.mod(heading + np.arctan(self.col_slope), 2 * np.pi)
        coarse_az = azimuth[::_SKY_STEP]
        coarse_height = 3.0 / np.maximum(elevation[::_SKY_STEP], 0.02)
        clouds = sample(self.textures.coarse,
                        np.broadcast_to(coarse_az * 40.0, (coarse_height.size, coarse_az.size)),
                        np.broadcast_to(coarse_height[:, None], (coarse_height.size,
                                                                 coarse_az.size)), 1.0)
        clouds = cv2.resize(clouds, (cam.width, rows), interpolation=cv2.INTER_LINEAR)
        dither = self.sky_dither[:rows]
        level = np.clip(elevation / 0.35, 0, 1)[:, None] * 15.0 + dither
        cover = np.clip(clouds - 0.3, 0, 1) * 6.0 + dither
        material = SKY0 + 4 * np.clip(level, 0, 15).astype(np.uint8) + np.clip(
            cover, 0, 3).astype(np.uint8)
        fb.material[:rows] = material

    # ------------------------------------------------------------------ ground
    def _layout_rows(self, world, chunks, s: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row roadside layout and road style at arc lengths ``s``, ``(rows, 1)`` each."""
        first = chunks[0].index
        idx = np.clip(np.floor(s / sc.CHUNK_M).astype(np.int64) - first, 0, len(chunks) - 1)
        table = {'chunk': idx}
        for side, name in ((0, 'right'), (1, 'left')):
            table[f'curb_{name}'] = np.array([ch.sides[side].curb_height_m for ch in chunks],
                                             np.float32)[idx]
            table[f'walk_{name}'] = np.array([ch.sides[side].sidewalk_width_m for ch in chunks],
                                             np.float32)[idx]
            table[f'paving_{name}'] = np.array(
                [ASPHALT_WALK if ch.sides[side].asphalt_walk else SIDEWALK for ch in chunks],
                np.uint8)[idx]
            table[f'verge_{name}'] = VERGE_MATERIAL[np.array([ch.sides[side].verge
                                                              for ch in chunks])][idx]
        districts = [ch.district for ch in chunks]
        style = {'none': 0, 'dashed': 1, 'solid': 2}
        table['center'] = np.array([style[d.center_line] for d in districts])[idx]
        table['edge'] = np.array([d.edge_lines for d in districts])[idx]
        table['dash'] = np.array([d.dash_length_m for d in districts], np.float32)[idx]
        table['period'] = np.array([d.dash_period_m for d in districts], np.float32)[idx]
        return {key: value[:, None] for key, value in table.items()}

    def _draw_ground(self, fb, world, view, chunks, lighting, shadow, s_base) -> None:
        cam = self.camera
        h = np.float32(cam.mount_height_m)
        f32 = np.float32
        xc64, phi64, s_row = view.at_depth(self.ground_z)
        Z0 = self.ground_z.astype(f32)[:, None]
        xc = xc64.astype(f32)[:, None]
        cos, sin = np.cos(phi64).astype(f32)[:, None], np.sin(phi64).astype(f32)[:, None]
        tan = np.tan(phi64).astype(f32)[:, None]
        half = (0.5 * world.road_width(s_row)).astype(f32)[:, None]
        lay = self._layout_rows(world, chunks, s_row)
        a = self.col_slope32[None, :]
        X0 = Z0 * a
        dx = X0 - xc
        l0 = dx * cos
        s_px = (s_row - s_base).astype(f32)[:, None] + dx * sin
        abs_l0 = np.abs(l0)
        on_road = abs_l0 <= half
        right = l0 > 0
        curb = np.where(right, lay['curb_right'], lay['curb_left'])
        ratio = 1 - curb / h
        z1 = Z0 * ratio
        l1 = (X0 * ratio - xc - (z1 - Z0) * tan) * cos
        lat = np.where(on_road, l0, l1)
        edge = np.abs(lat) - half
        face = ~on_road & (edge <= 0)       # between the road edge and the raised walk
        depth = np.where(on_road, Z0, z1)
        if face.any():
            # the kerb's vertical face: where the ray crosses the road edge
            r, c = np.nonzero(face)
            sign = np.where(right[r, c], 1.0, -1.0)
            denom = self.col_slope[c] - tan[r, 0]
            denom = np.where(np.abs(denom) > 1e-9, denom, 1e-9)
            z_face = (sign * half[r, 0] / cos[r, 0] + xc[r, 0] - Z0[r, 0] * tan[r, 0]) / denom
            depth[r, c] = np.clip(z_face, z1[r, c], Z0[r, 0])
        walk = np.where(right, lay['walk_right'], lay['walk_left'])
        mat = np.where(right, lay['verge_right'], lay['verge_left'])
        has_curb = curb > 0
        mat = np.where(edge < walk, np.where(right, lay['paving_right'], lay['paving_left']),
                       mat)
        mat = np.where(has_curb & (edge < _CURB_WIDTH_M), np.uint8(CURB), mat)
        mat = np.where(~has_curb & (edge < 0.4), np.uint8(SHOULDER), mat)
        mat = np.where(face, np.uint8(CURB), mat)
        mat = np.where(on_road, (ROAD0 + lay['chunk']).astype(np.uint8), mat)

        # texture: grain (faded where a pixel covers more than the grain) and patches
        footprint = Z0 * Z0 / (f32(cam.fy) * h)                 # metres of road per row
        fade = np.clip(f32(0.12) / footprint, 0.0, 1.0)
        t = self.textures
        fine = sample(t.fine, lat, s_px, FINE_TEXEL_M)
        coarse = sample(t.coarse, lat, s_px, COARSE_TEXEL_M)
        tex = 1.0 + np.take(self.fine_amp, mat) * fine * fade + np.take(
            self.coarse_amp, mat) * coarse
        r, c = np.nonzero(((mat == SIDEWALK) | (mat == PAVING)) & (fade > 0.3))
        if r.size:  # paving joints every 0.5 m
            joints = (_fmod(s_px[r, c], 0.5) < 0.04) | (_fmod(edge[r, c], 0.5) < 0.04)
            tex[r[joints], c[joints]] *= 0.82
        # worn wheel tracks: darker bands 0.8 m either side of each lane's centre
        track = (np.abs(abs_l0 - 0.5 * half) - 0.8) * f32(1 / 0.35)
        track *= track
        track += 1
        tex *= np.where(on_road, 1 - 0.07 / track, f32(1))       # Lorentzian band profile
        in_shadow = shadow.lookup(lat, s_px + f32(s_base - shadow.origin))
        light = 1.0 - f32(lighting.shadow_strength) * in_shadow
        shade = tex * light
        shade[face] *= 0.8

        # lane markings, anti-aliased across (pixel width) and along (row footprint) the road
        dl = Z0 / f32(cam.fx)
        near_center = (abs_l0 < 0.06 + dl / 2) & (lay['center'] > 0)
        near_edge = (np.abs(abs_l0 - (half - 0.3)) < 0.075 + dl / 2) & lay['edge']
        r, c = np.nonzero(on_road & (near_center | near_edge))
        if r.size:
            width = dl[r, 0]
            cover = _interval_coverage(l0[r, c], width, 0.0, 0.12)
            dashed = lay['center'][r, 0] == 1
            along = _dash_coverage(s_px[r, c], footprint[r, 0], lay['dash'][r, 0],
                                   lay['period'][r, 0])
            cover = cover * np.where(dashed, along, 1.0) * (lay['center'][r, 0] > 0)
            edge_cover = _interval_coverage(abs_l0[r, c], width, half[r, 0] - 0.3, 0.15)
            cover = np.maximum(cover, edge_cover * lay['edge'][r, 0])[:, None]
            paint = np.array([ch.district.paint_rgb for ch in chunks], f32)[lay['chunk'][r, 0]]
            lit = (light[r, c] * (1 + 0.5 * (tex[r, c] - 1)))[:, None]
            fb.paint = (r + self.first_ground_row, c, paint * lit, cover.astype(f32))
        r0 = self.first_ground_row
        fb.material[r0:] = mat
        fb.shade[r0:] = shade
        fb.depth[r0:] = depth
        fb.road[r0:] = on_road

    # ------------------------------------------------------------------ backdrop
    def _side_tables(self, world, chunks, side: int):
        """Block table of one side over the visible chunks and a setback lookup."""
        blocks = np.concatenate([ch.blocks[side] for ch in chunks])
        walk = np.array([ch.sides[side].sidewalk_width_m for ch in chunks])
        curb = np.array([ch.sides[side].curb_height_m for ch in chunks])
        first = chunks[0].index

        def lookup(s: np.ndarray):
            i = np.clip(np.searchsorted(blocks[:, 0], s, side='right') - 1, 0, len(blocks) - 1)
            c = np.clip(np.floor(s / sc.CHUNK_M).astype(np.int64) - first, 0, len(chunks) - 1)
            lateral = 0.5 * world.road_width(s) + walk[c] + blocks[i, 2]
            return lateral, i, curb[c]
        return blocks, lookup

    def _draw_backdrop(self, fb, world, view, chunks, sun, lighting, s_base) -> None:
        cam = self.camera
        h = cam.mount_height_m
        a = self.col_slope
        zs = self.wall_z
        xz, phiz, sz = view.at_depth(zs)
        best_z = np.full(cam.width, np.inf)
        attrs = None
        for side, sign in ((0, 1.0), (1, -1.0)):
            blocks, lookup = self._side_tables(world, chunks, side)
            lateral_z = lookup(sz)[0]
            outward = (a[:, None] * zs[None, :] - xz[None, :]) * (np.cos(phiz) * sign)[None, :]
            hit = outward >= lateral_z[None, :]
            k = np.argmax(hit, axis=1)
            found = hit[np.arange(cam.width), k] & (k > 0)
            lo, hi = zs[np.maximum(k - 1, 0)], zs[k]
            for _ in range(11):          # bisection: the bracket shrinks to ~3e-5 of z
                mid = 0.5 * (lo + hi)
                x_m, phi_m, s_m = view.at_depth(mid)
                inside = (a * mid - x_m) * np.cos(phi_m) * sign >= lookup(s_m)[0]
                hi = np.where(inside, mid, hi)
                lo = np.where(inside, lo, mid)
            x_h, phi_h, s_h = view.at_depth(hi)
            lateral_h, block, curb = lookup(s_h)
            out_h = (a * hi - x_h) * np.cos(phi_h) * sign
            end_face = out_h - lateral_h > 0.15
            nearer = found & (hi < best_z)
            best_z = np.where(nearer, hi, best_z)
            # horizontal texture coordinate: along the facade, or across it on an end face
            across = np.where(end_face, out_h, s_h - s_base)
            side_attrs = dict(u=across, phi=phi_h, kind=blocks[block, 4],
                              height=blocks[block, 3], color=blocks[block, 5], curb=curb,
                              end=end_face, sign=np.full(cam.width, sign))
            attrs = side_attrs if attrs is None else {
                key: np.where(nearer, side_attrs[key], attrs[key]) for key in attrs}
        has = np.isfinite(best_z)
        if not has.any():
            return
        kind = np.where(has, attrs['kind'], -1).astype(np.int64)
        height = attrs['height'].copy()
        ridge = self.textures.ridge
        trees = kind == sc.BLOCK_TREES
        hills = kind == sc.BLOCK_HILL
        building = kind == sc.BLOCK_BUILDING
        height[trees] += 2.0 * sample_1d(ridge, attrs['u'][trees], RIDGE_TEXEL_M)
        height[hills] *= 0.7 + 0.3 * sample_1d(ridge, attrs['u'][hills], 9 * RIDGE_TEXEL_M)
        z = np.where(has, best_z, 1e9)
        v_top = np.where(has, cam.cy + cam.fy * (h - height) / z, np.inf)
        v_bottom = np.where(has, cam.cy + cam.fy * (h - attrs['curb']) / z + 0.5, -np.inf)
        r_lo = int(max(0, np.floor(v_top.min())))
        r_hi = int(min(cam.height, np.ceil(v_bottom.max()) + 1))
        if r_lo >= r_hi:
            return
        rows = np.arange(r_lo, r_hi)[:, None]
        z32 = z.astype(np.float32)
        mask = (rows >= v_top) & (rows <= v_bottom) & (z32 < fb.depth[r_lo:r_hi])
        if not mask.any():
            return
        # per column: facade light; per pixel: height above the road
        light = np.full(cam.width, 1.0 - 0.35 * lighting.shadow_strength, np.float32)
        end = attrs['end']
        phi, sign = attrs['phi'], attrs['sign']
        normal_x = np.where(end, -np.sin(phi), -sign * np.cos(phi))
        normal_z = np.where(end, -np.cos(phi), sign * np.sin(phi))
        light[building] = self._face_light(normal_x * sun[0] + normal_z * sun[2],
                                           lighting)[building]
        y = (np.float32(h) - self.row_slope[r_lo:r_hi, None].astype(np.float32) * z32)
        u = attrs['u'].astype(np.float32)
        band_rows = r_hi - r_lo
        mat = np.zeros((band_rows, cam.width), np.uint8)
        shade = np.ones((band_rows, cam.width), np.float32)
        t = self.textures
        if building.any():
            cols = np.nonzero(building)[0]
            ub, yb = np.broadcast_to(u[cols], (band_rows, cols.size)), y[:, cols]
            tex = 1.0 + 0.05 * sample(t.fine, ub, yb, _FACADE_TEXEL_M)
            in_storey = _fmod(yb, 3.0)
            pane = (~end[cols] & (_fmod(u[cols], 3.2) > 0.9) & (_fmod(u[cols], 3.2) < 2.4)
                    & (in_storey > 1.0) & (in_storey < 2.3) & (yb > 2.5)
                    & (yb < height[cols] - 0.8))
            # each column of panes reflects a different brightness
            pane_column = (np.floor(u[cols] / 3.2).astype(np.int64) * 11) % t.ridge.size
            facade = (BUILDING0 + attrs['color'][cols]).astype(np.uint8)
            mat[:, cols] = np.where(pane, np.uint8(GLASS), facade)
            shade[:, cols] = np.where(pane, 1.0 + 0.3 * t.ridge[pane_column], tex)
        if trees.any():
            cols = np.nonzero(trees)[0]
            leaves = sample(t.foliage, np.broadcast_to(u[cols] * 2, (band_rows, cols.size)),
                            y[:, cols] * 2, FOLIAGE_TEXEL_M)
            mat[:, cols] = TREELINE
            shade[:, cols] = 1.0 + 0.35 * leaves
        if hills.any():
            cols = np.nonzero(hills)[0]
            grass = sample(t.coarse, np.broadcast_to(u[cols], (band_rows, cols.size)),
                           y[:, cols], 8 * COARSE_TEXEL_M)
            mat[:, cols] = HILL
            shade[:, cols] = 1.0 + 0.12 * grass
        band = slice(r_lo, r_hi)
        fb.material[band] = np.where(mask, mat, fb.material[band])
        fb.shade[band] = np.where(mask, shade * light, fb.shade[band])
        fb.depth[band] = np.where(mask, z32, fb.depth[band])
        fb.road[band] &= ~mask

    # ------------------------------------------------------------------ objects
    def _write(self, fb, region, hit, depth, material, shade) -> None:
        """Z-test a surface inside ``region`` and keep it where it is the nearest.

        ``material`` is a material id or a uint8 array of the region's shape.
        """
        r0, r1, c0, c1 = region
        win = hit & (depth < fb.depth[r0:r1, c0:c1])
        if not win.any():
            return
        fb.material[r0:r1, c0:c1][win] = material if np.isscalar(material) else material[win]
        fb.shade[r0:r1, c0:c1][win] = shade[win]
        fb.depth[r0:r1, c0:c1][win] = depth[win]
        fb.road[r0:r1, c0:c1][win] = False

    def _vehicles(self, world, motion, ego, chunks, t) -> np.ndarray:
        """Parked and moving vehicles near the camera, MOVING_COLUMNS rows in road coords."""
        rows = []
        for ch in chunks:
            for s, gap, length, width, height, color, yaw, kind in ch.parked:
                if not ego.s - 20 <= s <= ego.s + 250:
                    continue
                road_width = world.road_width(np.array([s]))[0]
                side = np.sign(gap)
                lateral = side * (0.5 * road_width - abs(gap) - 0.5 * width)
                rows.append((s, lateral, length, width, height, color, yaw, kind, side))
        moving = motion.moving_vehicles(t, ego.s - 20.0, ego.s + 250.0, ego.s)
        return np.concatenate([np.array(rows).reshape(-1, 9), moving])

    def _draw_vehicle(self, fb, view, row, sun, lighting) -> None:
        s, lateral, length, width, height, color, yaw, kind, facing = row
        x_c, z_c, phi = view.at_arclength(s)
        x = x_c + lateral * np.cos(phi)
        z = z_c - lateral * np.sin(phi)
        if not self._may_be_visible(x, z, 0.5 * length + 0.5):
            return
        heading = phi + yaw + (0.0 if facing > 0 else np.pi)
        h = self.camera.mount_height_m
        body = np.uint8(VEHICLE0 + int(color))
        forward = np.array([np.sin(heading), 0.0, np.cos(heading)])
        if kind == 0:
            body_h, cabin_h = 0.55 * height, 0.45 * height
            parts = [(np.array([x, h - 0.5 * body_h, z]), np.array([width, body_h, length]) / 2,
                      'body'),
                     (np.array([x, h - body_h - 0.5 * cabin_h, z]) - 0.06 * length * forward,
                      np.array([0.86 * width, cabin_h, 0.52 * length]) / 2, 'cabin')]
        else:
            parts = [(np.array([x, h - 0.5 * height, z]), np.array([width, height, length]) / 2,
                      'van')]
        for center, half, part in parts:
            found = self.rays.box(center, half, heading)
            if found is None:
                continue
            hit, axis = found.hit, found.axis
            lx, ly, lz = found.local
            mat = np.full(hit.shape, body, np.uint8)
            side_face = axis == 0
            end_face = axis == 2
            if part in ('body', 'van'):
                wheel_z = half[2] - 0.8
                wheel_y = half[1] - 0.32
                wheel = side_face & (np.minimum((lz - wheel_z) ** 2, (lz + wheel_z) ** 2)
                                     + (ly - wheel_y) ** 2 < 0.32 ** 2)
                sill = ly > half[1] - 0.1
                lamp = end_face & (np.abs(lx) > 0.55 * half[0]) & (ly > -0.55 * half[1]) & (
                    ly < (0.0 if part == 'body' else 0.35) * half[1])
                mat[lamp & (lz < 0)] = TAILLIGHT
                mat[lamp & (lz > 0)] = HEADLIGHT
                mat[wheel | sill] = TIRE
            if part == 'cabin':
                glass = (side_face & (np.abs(lz) < 0.85 * half[2]) & (ly > -0.75 * half[1])) | (
                    end_face & (np.abs(lx) < 0.85 * half[0]) & (ly > -0.75 * half[1]))
                mat[glass] = GLASS
            if part == 'van':
                glass = (ly < -0.15 * half[1]) & (ly > -0.85 * half[1]) & (
                    (end_face & (lz > 0)) | (side_face & (lz > 0.45 * half[2])))
                mat[glass] = GLASS
            light = self._face_light(found.normal_dot(sun), lighting)
            self._write(fb, found.region, hit, found.depth.astype(np.float32), mat, light)

    def _draw_trees_and_poles(self, fb, world, view, chunks, sun, lighting) -> None:
        for ch in chunks:
            for s, offset, trunk_h, crown_r, crown_k, _color in ch.trees:
                base = self._roadside_point(world, view, ch, s, offset, crown_r + 0.5)
                if base is None:
                    continue
                x, z, ground = base
                self._draw_post(fb, x, z, 0.16, ground - trunk_h, ground, TRUNK, sun, lighting)
                radii = np.array([crown_r, crown_r * crown_k, crown_r])
                center = np.array([x, ground - trunk_h - 0.8 * radii[1], z])
                self._draw_crown(fb, center, radii, sun, lighting)
            for s, offset, height in ch.poles:
                base = self._roadside_point(world, view, ch, s, offset, 0.5)
                if base is None:
                    continue
                x, z, ground = base
                self._draw_post(fb, x, z, 0.07, ground - height, ground, POLE, sun, lighting)

    def _draw_post(self, fb, x, z, half_width, y_top, y_bottom, material, sun, lighting) -> None:
        """A trunk or pole: a camera-facing upright rectangle at depth ``z`` (at least one
        pixel wide), shaded like a cylinder lit from the sun's side.

        ``y_top`` and ``y_bottom`` are camera-frame heights (y down), metres.
        """
        cam = self.camera
        if z < NEAR_Z_M:
            return
        u0 = cam.cx + cam.fx * (x - half_width) / z
        u1 = cam.cx + cam.fx * (x + half_width) / z
        c0 = int(max(0, round(u0)))
        c1 = int(min(cam.width, max(round(u1), round(u0) + 1)))
        r0 = int(max(0, round(cam.cy + cam.fy * y_top / z)))
        r1 = int(min(cam.height, round(cam.cy + cam.fy * y_bottom / z)))
        if c0 >= c1 or r0 >= r1:
            return
        across = np.linspace(-1.0, 1.0, c1 - c0 + 2)[1:-1] if c1 - c0 > 1 else np.zeros(1)
        n_dot = across * sun[0] - np.sqrt(1 - across ** 2) * sun[2]
        shade = np.broadcast_to(self._face_light(n_dot, lighting), (r1 - r0, c1 - c0))
        region = (r0, r1, c0, c1)
        depth = np.full((r1 - r0, c1 - c0), z, np.float32)
        self._write(fb, region, np.ones(depth.shape, bool), depth, material, shade)

    def _roadside_point(self, world, view, chunk, s, offset, radius):
        """Camera-frame ``(x, z, ground_y)`` of a point ``offset`` beyond a road edge, or
        None when nothing within ``radius`` metres of it can be in view."""
        if not view.s[0] <= s <= view.s[-1]:
            return None
        side = 0 if offset > 0 else 1
        lateral = np.sign(offset) * (0.5 * world.road_width(np.array([s]))[0] + abs(offset))
        x_c, z_c, phi = view.at_arclength(s)
        x = x_c + lateral * np.cos(phi)
        z = z_c - lateral * np.sin(phi)
        if not self._may_be_visible(x, z, radius):
            return None
        return x, z, self.camera.mount_height_m - chunk.sides[side].curb_height_m

    def _may_be_visible(self, x: float, z: float, radius: float) -> bool:
        """Whether a vertical cylinder of ``radius`` at ``(x, z)`` can meet the view."""
        if z + radius < NEAR_Z_M or z - radius > MAX_OBJECT_Z_M:
            return False
        reach = max(z + radius, NEAR_Z_M)
        return (x - radius <= self.col_slope[-1] * reach + 0.5
                and x + radius >= self.col_slope[0] * reach - 0.5)

    def _draw_crown(self, fb, center, radii, sun, lighting) -> None:
        """A tree crown: an ellipsoid with leafy texture, lit by its surface normal."""
        found = self.rays.ellipsoid(center, radii)
        if found is None:
            return
        light = self._face_light(sun @ found.normal, lighting)
        leaves = sample(self.textures.foliage, found.offset[0] + 3 * center[0],
                        found.offset[1] + 2 * center[2], FOLIAGE_TEXEL_M)
        shade = np.zeros(found.hit.shape, np.float32)
        shade[found.rows, found.cols] = light * (0.85 + 0.3 * leaves)
        self._write(fb, found.region, found.hit, found.depth.astype(np.float32), FOLIAGE, shade)


def _fmod(x: np.ndarray, period: float) -> np.ndarray:
    """``x mod period`` for positive periods (much faster than np.mod on float32)."""
    return x - np.floor(x * np.float32(1.0 / period)) * np.float32(period)


def _interval_coverage(x: np.ndarray, footprint: np.ndarray, centre, width) -> np.ndarray:
    """Fraction of ``[x - footprint/2, x + footprint/2]`` inside ``[centre +- width/2]``."""
    overlap = (np.minimum(x + footprint / 2, centre + width / 2)
               - np.maximum(x - footprint / 2, centre - width / 2))
    return np.clip(overlap / footprint, 0.0, 1.0)


def _dash_coverage(s: np.ndarray, footprint: np.ndarray, dash, period) -> np.ndarray:
    """Fraction of ``[s - footprint/2, s + footprint/2]`` covered by dashes of length
    ``dash`` repeating every ``period`` metres (a box filter, exact)."""
    def painted(x):
        return np.floor(x / period) * dash + np.minimum(np.mod(x, period), dash)
    return np.clip((painted(s + footprint / 2) - painted(s - footprint / 2)) / footprint, 0, 1)
