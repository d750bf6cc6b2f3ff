"""Rendering of one synthetic survey image from a galaxy's latent description (`Galaxy`).

Light is modelled in linear flux and shown through an SDSS-like asinh stretch (faint outskirts
visible, cores saturate to white) on a noisy black sky with a few background sources. The subject
is rendered on a coarse grid over its bounding box and upsampled bilinearly: that keeps an image
at a few milliseconds of numpy work and doubles as a mild PSF.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

STRETCH_GAIN = 10.0  # flux 0.01 lands just above the sky noise, flux ~1.4 saturates
DISPLAY_SCALE = 77.0
MAX_GRID = 144  # coarse-grid side; the largest subjects are upsampled about 2.5x
SKY_MARGIN = 160  # the noise tile is this much larger than the frame, for random offsets
STAR_COLOURS = np.array([[1.0, 0.95, 0.9], [0.75, 0.85, 1.0], [1.0, 0.8, 0.55], [1.0, 0.55, 0.45]], np.float32)
OLD_LIGHT = np.array([1.0, 0.8, 0.5])  # yellowish bulges and ellipticals
YOUNG_LIGHT = np.array([0.7, 0.8, 1.0])  # bluish disks, arms and rings


@dataclass
class Galaxy:
    """Latent truth of one image: what is drawn and what volunteers should recognise."""

    kind: str  # elliptical | disk | edgeon | irregular | star | trail
    radius: float  # visible radius, pixels of a 424 frame
    brightness: float  # surface-brightness scale, 0.35..1
    angle: float  # position angle of the major axis, radians
    axis_ratio: float  # projected minor/major axis of the main body
    sersic_n: float = 3.0
    bulge: float = 0.0  # bulge share of the light, 0..0.8
    bulge_shape: str = "none"  # edge-on bulges: rounded | boxy | none
    bar: float = 0.0  # bar strength, 0 = no bar
    arms: int = 0  # number of spiral arms, 0 = none
    arm_contrast: float = 0.0
    pitch: float = 20.0  # spiral pitch angle, degrees: small = tightly wound
    odd: str | None = None  # one of Q8's answers
    odd_strength: float = 0.0


def stretch(flux: np.ndarray) -> np.ndarray:
    scaled = STRETCH_GAIN * np.minimum(flux, 1e4)
    return DISPLAY_SCALE * np.log(scaled + np.sqrt(scaled * scaled + 1))  # asinh; np.arcsinh is ~10x slower


def make_sky_tile(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """Black sky with faint, slightly correlated noise (uint8), made once per data set and cropped
    at random offsets per image: fresh noise for every frame would cost more than the galaxy."""
    side = image_size + SKY_MARGIN
    noise = rng.standard_normal((side, side, 3), dtype=np.float32)
    noise = 0.6 * noise + 0.2 * np.roll(noise, 1, axis=0) + 0.2 * np.roll(noise, 1, axis=1)
    noise *= np.array([5.0, 4.0, 4.0], np.float32) / math.sqrt(0.6**2 + 2 * 0.2**2)
    sky = noise + np.array([4.0, 3.5, 2.0], np.float32)
    return np.clip(sky + 0.5, 0, 255).astype(np.uint8)


def render(galaxy: Galaxy, rng: np.random.Generator, sky_tile: np.ndarray, image_size: int = 424) -> np.ndarray:
    """The (image_size, image_size, 3) uint8 image of `galaxy`."""
    scale = image_size / 424.0
    top, left = rng.integers(0, SKY_MARGIN + 1, size=2)
    canvas = sky_tile[top:top + image_size, left:left + image_size].copy()
    _add_background_sources(canvas, rng, galaxy.radius * scale)
    patch, corner = _subject_patch(galaxy, rng, scale, image_size)
    add_light(canvas, patch, corner, corner)
    if galaxy.kind == "trail":
        _add_satellite_trail(canvas, rng)
    return canvas


def add_light(canvas: np.ndarray, display: np.ndarray, top: int, left: int) -> None:
    """Add stretched light to the uint8 canvas in place, saturating at white; clips at the edges."""
    bottom, right = min(top + display.shape[0], canvas.shape[0]), min(left + display.shape[1], canvas.shape[1])
    display = display[max(-top, 0):bottom - top, max(-left, 0):right - left]
    top, left = max(top, 0), max(left, 0)
    region = canvas[top:bottom, left:right]
    region[...] = np.minimum(region + display.astype(np.float32) + 0.5, 255)


def _subject_patch(galaxy: Galaxy, rng: np.random.Generator, scale: float, image_size: int):
    """Stretched RGB light of the main subject over its bounding box, and where the box goes."""
    reach = {"merger": 2.1, "disturbed": 2.0, "lens or arc": 2.1}.get(galaxy.odd or "", 1.6)
    half = int(min(image_size // 2, math.ceil(galaxy.radius * scale * reach) + 4))
    side, cells = 2 * half, min(2 * half, MAX_GRID)
    # grid points sit at the centres PIL's bilinear resize maps back onto, in 424-frame pixels
    # float32 throughout: half the memory traffic of float64, and the image ends as uint8 anyway
    coords = (((np.arange(cells) + 0.5) * (side / cells) - half) / scale).astype(np.float32)
    dy, dx = rng.uniform(-2.0, 2.0, size=2)
    y, x = np.meshgrid(coords - dy, coords - dx, indexing="ij")
    old, young, colours = subject_light(galaxy, x, y, rng, spacing=side / cells / scale)
    # fade out towards a circle inside the box so extended Sersic wings do not end in a visible edge
    fade = np.clip((half - np.hypot(x, y) * scale) / (0.4 * half), 0, 1)
    window = (fade * fade * (3 - 2 * fade))[..., None]
    old_colour, young_colour = (np.asarray(c, np.float32) for c in colours)
    rgb = (old[..., None] * old_colour + young[..., None] * young_colour) * window
    display = np.minimum(stretch(rgb), 255).astype(np.uint8)
    if cells != side:
        display = np.asarray(Image.fromarray(display).resize((side, side), Image.BILINEAR))
    return display, image_size // 2 - half


def _add_background_sources(canvas: np.ndarray, rng: np.random.Generator, subject_radius: float) -> None:
    """A handful of faint field stars and tiny galaxies, kept off the subject's core."""
    size = canvas.shape[0]
    for _ in range(rng.poisson(10)):
        cy, cx = rng.uniform(0, size, size=2)
        if math.hypot(cy - size / 2, cx - size / 2) < 0.8 * subject_radius + 6:
            continue
        is_star = rng.random() < 0.5
        sigma = rng.uniform(0.8, 1.4) if is_star else math.exp(rng.uniform(math.log(1.3), math.log(6.0)))
        peak = math.exp(rng.uniform(math.log(0.03), math.log(3.0 if is_star else 0.6)))
        colour = STAR_COLOURS[rng.integers(len(STAR_COLOURS))] if is_star else STAR_COLOURS[2]
        _add_stamp(canvas, cy, cx, sigma, 1.0 if is_star else rng.uniform(0.4, 1.0), peak, colour, rng)


def _add_stamp(canvas, cy, cx, sigma, axis_ratio, peak, colour, rng) -> None:
    reach = int(math.ceil(4 * sigma + 2 * math.log1p(peak)))
    y0, x0 = int(cy) - reach, int(cx) - reach
    offsets = np.arange(2 * reach + 1, dtype=np.float32) + 0.5
    u, v = rotate((offsets + (x0 - cx))[None, :], (offsets + (y0 - cy))[:, None], rng.uniform(0, math.pi))
    r2 = (u * u + (v / axis_ratio) ** 2) / (2 * sigma * sigma)
    flux = peak * (np.exp(-r2) + 0.002 / (1 + r2) ** 1.5)  # core plus the wide PSF wing of bright stars
    add_light(canvas, stretch(flux[..., None] * colour), y0, x0)


def _add_satellite_trail(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A straight streak across the whole frame, passing near the centre, mostly in one band."""
    size = canvas.shape[0]
    angle, offset = rng.uniform(0, math.pi), rng.uniform(-0.05, 0.05) * size
    coords = np.arange(size, dtype=np.float32) + 0.5 - size / 2
    distance = np.abs(coords[None, :] * math.sin(angle) - coords[:, None] * math.cos(angle) - offset)
    colour = np.array([0.3, 0.3, 0.3]) + 0.7 * np.eye(3)[rng.integers(3)]
    flux = rng.uniform(0.1, 0.8) * np.exp(-0.5 * (distance / rng.uniform(0.7, 1.3)) ** 2)
    add_light(canvas, stretch(flux[..., None] * colour), 0, 0)


# ---- light of the main subject, in linear flux on the coarse grid (424-frame pixel units) ----


# total flux of a round n=2.5 Sersic profile with re = 1 and intensity 1 at re: 2 pi n e^b b^-2n Gamma(2n)
SERSIC_TOTAL_2_5 = 2 * math.pi * 2.5 * math.exp(14 / 3) * (14 / 3) ** -5 * math.gamma(5)


def rotate(x: np.ndarray, y: np.ndarray, angle: float):
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def sersic(r_over_re: np.ndarray, n: float) -> np.ndarray:
    return np.exp(-(2 * n - 1 / 3) * (np.power(r_over_re, 1 / n) - 1))


def subject_light(g: Galaxy, x, y, rng: np.random.Generator, spacing: float):
    """(old-star flux, young-star flux, their two RGB colours) of the subject on the grid."""
    companion = 0.0
    if g.odd == "merger":
        x, y, companion = _merger_companion(g, x, y, rng)
    if g.odd == "disturbed":
        x = x + 0.2 * g.radius * np.sin(y * (4.0 / g.radius) + rng.uniform(0, 6.3))
    body = {"elliptical": _elliptical, "disk": _disk, "edgeon": _edge_on, "irregular": _irregular,
            "star": _star, "trail": _elliptical}[g.kind]
    old, young = body(g, x, y, rng, spacing)
    old, young = old + companion, young + _odd_feature_light(g, x, y, rng, spacing)
    if g.odd == "dust lane":
        u, v = rotate(x, y, g.angle)
        lane = 1 - 0.85 * np.exp(-0.5 * (v / max(0.05 * g.radius * g.axis_ratio ** 0.5, spacing)) ** 2)
        old, young = old * lane, young * lane
    colours = (OLD_LIGHT * rng.normal(1, 0.06, 3), YOUNG_LIGHT * rng.normal(1, 0.06, 3))
    if g.kind == "star":
        colours = (STAR_COLOURS[0], STAR_COLOURS[rng.integers(len(STAR_COLOURS))])
    return old, young, colours


def _elliptical(g: Galaxy, x, y, rng, spacing):
    u, v = rotate(x, y, g.angle)
    r = np.sqrt(u * u + (v / g.axis_ratio) ** 2) / (g.radius / 2.7)
    old = 0.35 * g.brightness * sersic(r, g.sersic_n)
    return old, 0.05 * old


def _disk(g: Galaxy, x, y, rng, spacing):
    u, v = rotate(x, y, g.angle)
    v = v / g.axis_ratio  # deproject the inclined disk into its own plane
    h = g.radius / 3.5
    r, theta = np.hypot(u, v) / h, np.arctan2(v, u)
    i0 = 0.5 * g.brightness
    disk = i0 * np.exp(-r)
    bar_length = rng.uniform(1.2, 2.0) if g.bar > 0 else 0.6
    old = 0.45 * disk + _bulge(g, r, i0) + _bar(g, u / h, v / h, bar_length, i0, rng)
    young = disk * _arm_pattern(g, r, theta, bar_length, rng)
    return old, young


def _bulge(g: Galaxy, r_over_h, disk_i0: float) -> np.ndarray | float:
    """A Sersic bulge carrying the share `g.bulge` of the light; bigger bulges are also larger."""
    if g.bulge <= 0.01:
        return 0.0
    re = 0.15 + 0.6 * g.bulge  # in disk scale lengths
    intensity = g.bulge / (1 - g.bulge) * 2 * math.pi * disk_i0 / (SERSIC_TOTAL_2_5 * re * re)
    return intensity * sersic(r_over_h / re, 2.5)


def _bar(g: Galaxy, u, v, length: float, disk_i0: float, rng) -> np.ndarray | float:
    if g.bar <= 0:
        return 0.0
    bu, bv = rotate(u, v, rng.uniform(0, math.pi))
    return 1.1 * g.bar * disk_i0 * np.exp(-(((bu / length) ** 2 + (bv / (0.28 * length)) ** 2) ** 2))


def _arm_pattern(g: Galaxy, r, theta, start: float, rng) -> np.ndarray | float:
    """Log-spiral brightness modulation with mean 1: arms of `g.arms` at pitch `g.pitch`."""
    if g.arms == 0:
        return 1.0
    phase = g.arms * (theta - np.log(r + 0.05) / math.tan(math.radians(g.pitch))) + rng.uniform(0, 6.3)
    arms = ((1 + np.cos(phase)) / 2) ** 3 / 0.3125  # 0.3125 = mean of the cubed raised cosine
    fade_in = 1 - np.exp(-((r / start) ** 2))  # arms start at the bar's ends or near the bulge
    return 1 + g.arm_contrast * fade_in * (arms - 1)


def _edge_on(g: Galaxy, x, y, rng, spacing):
    u, v = rotate(x, y, g.angle)
    h, hz = g.radius / 3.3, max(g.radius * g.axis_ratio / 2.0, 0.7 * spacing)
    disk = 0.8 * g.brightness * np.exp(-np.abs(u) / h) / np.cosh(v / hz) ** 2
    re = h * (0.3 + 0.6 * g.bulge)
    amplitude = 0.6 * g.brightness * g.bulge
    bulge = 0.0
    if g.bulge_shape == "rounded":
        bulge = amplitude * sersic(np.hypot(u, v / 0.8) / re, 2.5)
    if g.bulge_shape == "boxy":  # superelliptical isophotes: flat sides, square-ish corners
        bulge = amplitude * sersic((np.abs(u) ** 4 + np.abs(v / 0.8) ** 4) ** 0.25 / re, 1.0)
    return 0.4 * disk + bulge, 0.8 * disk


def _irregular(g: Galaxy, x, y, rng, spacing):
    """Clumpy star-forming light over a faint lopsided diffuse body, no bulge, no symmetry."""
    u, v = rotate(x, y, g.angle)
    diffuse = 0.25 * g.brightness * np.exp(-np.hypot(u, v / g.axis_ratio) / (g.radius / 3.0))
    young = diffuse.copy()
    for _ in range(rng.integers(6, 15)):
        cu, cv = rng.normal(0, 0.35 * g.radius, 2) * (1.0, g.axis_ratio)
        sigma = max(rng.uniform(0.05, 0.13) * g.radius, spacing)
        young += rng.uniform(0.1, 0.6) * g.brightness * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * sigma**2))
    return 0.3 * diffuse, young


def _star(g: Galaxy, x, y, rng, spacing):
    """A bright point source: white core, coloured halo, usually four diffraction spikes."""
    r = np.hypot(x, y)
    peak = g.brightness * rng.uniform(30, 400)
    core = peak * np.exp(-0.5 * (r / max(1.3, 0.7 * spacing)) ** 2)
    halo = 0.2 * peak ** 0.5 / (1 + (r / (0.15 * g.radius)) ** 2) ** 1.5
    if rng.random() < 0.75:
        for angle in np.array([0, math.pi / 2]) + rng.uniform(0, math.pi / 2):
            u, v = rotate(x, y, angle)
            core += 0.01 * peak * np.exp(-np.abs(u) / (0.3 * g.radius) - 0.5 * (v / max(0.5, 0.6 * spacing)) ** 2)
    return core, halo


def _merger_companion(g: Galaxy, x, y, rng):
    """Shift the main galaxy off centre and return a companion plus a tidal bridge (old light)."""
    separation = g.radius * rng.uniform(0.9, 1.4)
    direction = rng.uniform(0, 2 * math.pi)
    ex, ey = math.cos(direction), math.sin(direction)
    main_x, main_y = x + 0.35 * separation * ex, y + 0.35 * separation * ey
    cx, cy = x - 0.65 * separation * ex, y - 0.65 * separation * ey
    cu, cv = rotate(cx, cy, rng.uniform(0, math.pi))
    size = g.radius * rng.uniform(0.45, 0.8) / 3.0
    companion = 0.22 * g.brightness * sersic(np.hypot(cu, cv / rng.uniform(0.5, 1.0)) / size, rng.uniform(1.5, 4))
    along = np.clip((main_x * ex + main_y * ey) / separation, -1.3, 0.3)  # from main centre to past the companion
    across = -main_x * ey + main_y * ex
    bridge = 0.03 * g.brightness * np.exp(-0.5 * (across / (0.12 * g.radius)) ** 2 - 4 * (along + 0.5) ** 2)
    return main_x, main_y, companion + bridge


def _odd_feature_light(g: Galaxy, x, y, rng, spacing) -> np.ndarray | float:
    """Young light of rings, arcs, tidal tails and knots; 0 for the other features."""
    s, radius = g.odd_strength, g.radius
    if g.odd == "ring":
        u, v = rotate(x, y, g.angle)
        rr = np.hypot(u, v / g.axis_ratio) / radius
        return 0.15 * s * g.brightness * np.exp(-0.5 * ((rr - rng.uniform(0.8, 1.0)) / 0.04) ** 2)
    if g.odd == "lens or arc":
        r, theta = np.hypot(x, y) / radius, np.arctan2(y, x)
        dtheta = np.angle(np.exp(1j * (theta - rng.uniform(-math.pi, math.pi))))  # wrapped to +-pi
        arc = np.exp(-0.5 * ((r - rng.uniform(1.05, 1.35)) / 0.03) ** 2 - 0.5 * (dtheta / rng.uniform(0.35, 0.7)) ** 2)
        return 0.3 * s * arc
    if g.odd == "disturbed":
        r, theta = np.hypot(x, y) / radius, np.arctan2(y, x)
        tail = ((1 + np.cos(theta - np.log(r + 0.1) / 0.55 - rng.uniform(0, 6.3))) / 2) ** 8
        return 0.2 * s * g.brightness * tail * np.exp(-r / 0.8) * (1 - np.exp(-((r / 0.5) ** 2)))
    if g.odd == "other":
        knots, sigma = np.zeros_like(x), max(0.04 * radius, spacing)
        for distance, direction in zip(rng.uniform(0.25, 0.7, 3) * radius, rng.uniform(0, 6.3, rng.integers(1, 4))):
            kx, ky = distance * math.cos(direction), distance * math.sin(direction)
            knots += rng.uniform(0.5, 2.0) * s * np.exp(-((x - kx) ** 2 + (y - ky) ** 2) / (2 * sigma**2))
        return knots
    return 0.0
