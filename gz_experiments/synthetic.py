"""A synthetic stand-in for the Galaxy Zoo competition data, in the competition's own layout.

Images are drawn from a latent truth (`synthetic_render.Galaxy`). Labels come from 20-60 simulated
volunteers walking the tree of `tree.py`, each answering correctly with a probability that grows with
how visible the feature is, else with a plausible confusion. A column counts an answer over all
volunteers, so the tree's sums hold exactly and labels follow the visible morphology up to volunteer noise.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from gz_experiments import tree
from gz_experiments.data.source import LABELS_NAME, TEST_IMAGES, TRAIN_IMAGES, image_name
from gz_experiments.progress import Progress
from gz_experiments.synthetic_render import Galaxy, make_sky_tile, render

FORMAT_VERSION = 3  # bump when the output changes: complete older data sets are then rebuilt
MARKER = ".complete"
LABELS_FILE = f"{LABELS_NAME}.csv"
FIRST_ID, LAST_ID = 100008, 999967  # the range of the real GalaxyIDs
JPEG_QUALITY = 90
ODD_FEATURES = tree.QUESTIONS[7].answers  # ring, lens or arc, disturbed, irregular, other, merger, dust lane


def is_synthetic(folder: str | Path) -> bool:
    """Whether a data folder was written by `generate` (not the competition's galaxies)."""
    return (Path(folder).expanduser() / MARKER).is_file()


def generate(out_dir: str | Path, n: int, seed: int = 0, image_size: int = 424, n_test: int = 0,
             progress: bool = True) -> Path:
    """Write n labelled (and n_test unlabelled) images to out_dir, or reuse a complete earlier run.

    Built beside out_dir and renamed into place once complete, so an interrupted run never looks
    finished. Same arguments, same bytes."""
    out_dir = Path(out_dir)
    params = {"n": int(n), "seed": int(seed), "image_size": int(image_size), "n_test": int(n_test),
              "format": FORMAT_VERSION}
    state = _existing_data_set(out_dir, params)
    if state == "complete":
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_data_set(staging, params, progress)
        (staging / MARKER).write_text(json.dumps(params, sort_keys=True))
        _move_into_place(staging, out_dir, replace_stale=state == "stale")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if _existing_data_set(out_dir, params) == "complete":  # a concurrent run finished it first
            return out_dir
        raise
    return out_dir


def _existing_data_set(out_dir: Path, params: dict) -> str:
    """"complete", "stale" (same request, older generator) or "absent"; ValueError for anything else."""
    marker = out_dir / MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found == params:
            return "complete"
        if {**found, "format": FORMAT_VERSION} == params:
            return "stale"
        raise ValueError(f"{out_dir} holds a synthetic data set made with {found}, not {params}; "
                         "choose another directory or delete it")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} exists but is not a complete synthetic data set; delete it or "
                         "choose another directory")
    return "absent"


def _move_into_place(staging: Path, out_dir: Path, replace_stale: bool) -> None:
    old = staging.with_name(staging.name + "-stale")
    if replace_stale:  # our own older output, e.g. in a cache: swap it out, delete it after
        os.rename(out_dir, old)
    elif out_dir.exists():
        out_dir.rmdir()  # only an empty directory gets here (_existing_data_set vetted it)
    os.rename(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _write_data_set(root: Path, params: dict, progress: bool) -> None:
    n, n_test, seed, size = params["n"], params["n_test"], params["seed"], params["image_size"]
    ids = galaxy_ids(seed, n + n_test)
    train_ids, test_ids = np.sort(ids[:n]), np.sort(ids[n:])
    sky_tile = make_sky_tile(np.random.default_rng([seed, 1]), size)
    bar, done = Progress(n + n_test, "synthetic galaxies") if progress else None, 0
    rows = []
    for folder, folder_ids, stream in ((TRAIN_IMAGES, train_ids, 2), (TEST_IMAGES, test_ids, 3)):
        if len(folder_ids) == 0:
            continue
        (root / folder).mkdir()
        for index, galaxy_id in enumerate(folder_ids):
            rng = np.random.default_rng([seed, stream, index])
            galaxy = sample_galaxy(rng)
            labels = volunteer_labels(galaxy, rng)
            pixels = render(galaxy, rng, sky_tile, size)
            Image.fromarray(pixels).save(root / folder / image_name(galaxy_id), quality=JPEG_QUALITY)
            if stream == 2:
                rows.append(_csv_row(galaxy_id, labels))
            done += 1
            if bar:
                bar.update(done)
    (root / LABELS_FILE).write_text(",".join(tree.LABELS_HEADER) + "\n" + "".join(rows))


def galaxy_ids(seed: int, count: int) -> np.ndarray:
    """Distinct six-digit ids in the range of the real ones, fixed by the seed."""
    rng = np.random.default_rng([seed, 0])
    return FIRST_ID + rng.choice(LAST_ID - FIRST_ID + 1, size=count, replace=False)


def _csv_row(galaxy_id: int, labels: np.ndarray) -> str:
    # six decimals like the real file; each value is off by <= 5e-7, so sums hold within 1e-5
    return f"{galaxy_id}," + ",".join(repr(round(float(v), 6)) for v in labels) + "\n"


# ---- latent truth ----

KIND_SHARES = {"elliptical": 0.37, "disk": 0.46, "edgeon": 0.12, "star": 0.035, "trail": 0.015}
ARM_COUNT_SHARES = (0.06, 0.6, 0.14, 0.08, 0.07, 0.05)  # 1 to 6 arms
ODD_SHARES = {"elliptical": (0.2, 0.15, 0.15, 0.0, 0.2, 0.25, 0.05),  # in ODD_FEATURES order
              "disk": (0.2, 0.1, 0.15, 0.2, 0.15, 0.2, 0.0),
              "edgeon": (0.0, 0.0, 0.15, 0.0, 0.15, 0.2, 0.5)}


def sample_galaxy(rng: np.random.Generator) -> Galaxy:
    kind = str(rng.choice(list(KIND_SHARES), p=list(KIND_SHARES.values())))
    if kind == "star":
        return Galaxy(kind, radius=rng.uniform(25, 70), brightness=rng.uniform(0.4, 1.0), angle=0.0, axis_ratio=1.0)
    if kind == "trail":  # a streak across a faint small galaxy
        return Galaxy(kind, radius=rng.uniform(14, 30), brightness=rng.uniform(0.2, 0.5),
                      angle=rng.uniform(0, math.pi), axis_ratio=rng.uniform(0.5, 1.0))
    galaxy = Galaxy(kind, radius=math.exp(rng.uniform(math.log(30), math.log(105))),
                    brightness=rng.uniform(0.35, 1.0), angle=rng.uniform(0, math.pi), axis_ratio=1.0)
    if kind == "elliptical":
        galaxy.axis_ratio = 1 - 0.72 * rng.beta(1.3, 2.2)
        galaxy.sersic_n = rng.uniform(2.0, 4.5)
    elif kind == "disk":
        _sample_disk(galaxy, rng)
    else:
        galaxy.axis_ratio = rng.uniform(0.08, 0.25)
        galaxy.bulge_shape = str(rng.choice(["rounded", "boxy", "none"], p=[0.5, 0.15, 0.35]))
        galaxy.bulge = 0.0 if galaxy.bulge_shape == "none" else rng.uniform(0.2, 0.7)
    if rng.random() < (0.22 if kind == "edgeon" else 0.15):
        galaxy.odd = str(rng.choice(ODD_FEATURES, p=ODD_SHARES[kind]))
        galaxy.odd_strength = rng.uniform(0.5, 1.0)
    if galaxy.odd == "irregular":  # clumpy light replaces the ordered disk
        galaxy.kind, galaxy.bulge, galaxy.bar, galaxy.arms = "irregular", 0.0, 0.0, 0
    return galaxy


def _sample_disk(galaxy: Galaxy, rng: np.random.Generator) -> None:
    galaxy.axis_ratio = math.cos(rng.uniform(0, 1.1))  # inclinations up to ~63 degrees
    galaxy.bulge = 0.8 * rng.beta(1.4, 3.0)
    galaxy.bar = rng.uniform(0.4, 1.0) if rng.random() < 0.3 else 0.0
    if rng.random() < 0.8:
        galaxy.arms = int(rng.choice(np.arange(1, 7), p=ARM_COUNT_SHARES))
        galaxy.arm_contrast = rng.uniform(0.35, 1.0)
        # many tightly wound arms would crowd into concentric rings, unlike real galaxies
        galaxy.pitch = max(7.0 + 27.0 * rng.beta(1.5, 2.0), 3.0 * galaxy.arms)


# ---- simulated volunteers ----

_TREE_ORDER, _PARENTS, _SLICES = tree.topological_order(), tree.parent_indices(), tree.question_slices()

def volunteer_labels(galaxy: Galaxy, rng: np.random.Generator) -> np.ndarray:
    """The 37 vote fractions of 20-60 volunteers walking the tree for this galaxy."""
    volunteers = int(rng.integers(20, 61))
    votes = np.zeros(tree.N_OUTPUTS)
    for q in _TREE_ORDER:
        reached = volunteers if _PARENTS[q] is None else int(votes[_PARENTS[q]])
        votes[_SLICES[q]] = rng.multinomial(reached, ANSWER_MODELS[q](galaxy))
    return votes / volunteers


def _clarity(g: Galaxy) -> float:
    """0..1: how easily volunteers see detail; small or faint galaxies are ambiguous."""
    size = min(max((g.radius - 15.0) / 60.0, 0.0), 1.0) ** 0.7
    return size * (0.55 + 0.45 * g.brightness)


def _soft_bins(value: float, centres, width: float) -> np.ndarray:
    """Answer shares for a continuous property read off the image with blur `width`."""
    p = np.exp(-0.5 * ((value - np.asarray(centres)) / width) ** 2) + 1e-3
    return p / p.sum()


def _correct_or_confused(answer: int, share: float, confusion) -> np.ndarray:
    p = (1 - share) * np.asarray(confusion, dtype=float)
    p[answer] += share
    return p / p.sum()


def _q1_smooth_features_star(g: Galaxy):
    c = _clarity(g)
    if g.kind in ("star", "trail"):
        star = 0.55 + 0.4 * g.brightness if g.kind == "star" else 0.55
        return [0.7 * (1 - star), 0.3 * (1 - star), star]
    # how much structure shows: arms or a bar, else at least a disk beside the bulge
    detail = {"elliptical": 0.0, "edgeon": 1.0, "irregular": 0.9,
              "disk": max(0.5 + 0.5 * g.arm_contrast if g.arms else 0.0, g.bar, 0.5 * (1 - g.bulge))}[g.kind]
    if g.odd in ("merger", "disturbed", "ring", "lens or arc", "other"):
        detail = max(detail, 0.6 * g.odd_strength)
    features = 0.08 + 0.1 * (1 - c) + (0.85 - 0.1 * (1 - c)) * min(1.0, 0.25 + c) * detail
    star = 0.005 + 0.015 * (1 - c)
    return [1 - features - star, features, star]


def _q2_edge_on(g: Galaxy):
    if g.kind in ("star", "trail"):
        return [0.1, 0.9] if g.kind == "star" else [0.6, 0.4]
    # steeply inclined disks and flat ellipticals draw some edge-on votes too
    yes = 0.65 + 0.33 * _clarity(g) if g.kind == "edgeon" else 0.04 + 0.6 * min(max((0.6 - g.axis_ratio) / 0.3, 0), 1)
    return [yes, 1 - yes]


def _q3_bar(g: Galaxy):
    yes = 0.05 + 0.08 * (1 - _clarity(g)) + 0.85 * g.bar * min(1.0, 0.3 + _clarity(g))
    return [yes, 1 - yes]


def _q4_spiral(g: Galaxy):
    c = _clarity(g)
    yes = 0.1 + 0.15 * (1 - c) + (0.25 if g.kind == "irregular" or g.odd in ("ring", "disturbed") else 0)
    if g.arms:
        yes = 0.15 + 0.8 * g.arm_contrast * min(1.0, 0.3 + c)
    return [yes, 1 - yes]


def _q5_bulge(g: Galaxy):
    apparent = {"elliptical": 0.45, "irregular": 0.0, "star": 0.45, "trail": 0.3}.get(g.kind, g.bulge)
    return _soft_bins(apparent, (0.0, 0.15, 0.35, 0.6), 0.06 + 0.1 * (1 - _clarity(g)))


def _q6_odd(g: Galaxy):
    yes = {"star": 0.12, "trail": 0.5}.get(g.kind, 0.06 + 0.08 * (1 - _clarity(g)))
    if g.odd:
        yes += g.odd_strength * (0.5 + 0.45 * _clarity(g))
    return [min(yes, 0.99), 1 - min(yes, 0.99)]


def _q7_roundness(g: Galaxy):
    # an edge-on disk's glow and bulge look rounder than its thin midplane
    apparent = {"star": 1.0, "trail": 0.15, "edgeon": 2 * g.axis_ratio}.get(g.kind, g.axis_ratio)
    return _soft_bins(apparent, (0.92, 0.62, 0.3), 0.1 + 0.07 * (1 - _clarity(g)))


ODD_CONFUSION = (0.08, 0.07, 0.17, 0.15, 0.35, 0.12, 0.06)  # what a vague "odd" is called


def _q8_odd_feature(g: Galaxy):
    if g.kind == "trail":
        return _correct_or_confused(ODD_FEATURES.index("other"), 0.7, ODD_CONFUSION)
    if not g.odd:
        return np.asarray(ODD_CONFUSION)
    share = 0.4 + 0.55 * _clarity(g) * g.odd_strength
    return _correct_or_confused(ODD_FEATURES.index(g.odd), share, ODD_CONFUSION)


def _q9_edge_on_bulge(g: Galaxy):
    if g.kind != "edgeon":
        return [0.65, 0.1, 0.25] if g.kind in ("elliptical", "disk") else [0.3, 0.1, 0.6]
    confusion = {"rounded": (0, 0.3, 0.7), "boxy": (0.8, 0, 0.2), "none": (0.8, 0.2, 0)}[g.bulge_shape]
    return _correct_or_confused(("rounded", "boxy", "none").index(g.bulge_shape), 0.5 + 0.45 * _clarity(g), confusion)


def _q10_winding(g: Galaxy):
    if not g.arms:
        return [0.3, 0.4, 0.3]
    return _soft_bins(g.pitch, (10.0, 19.0, 29.0), 3.0 + 5.0 * (1 - _clarity(g)))


def _q11_arm_count(g: Galaxy):
    if not g.arms:
        return [0.1, 0.3, 0.05, 0.03, 0.02, 0.5]
    c = _clarity(g)
    cant_tell = 0.05 + 0.3 * (1 - c) + (0.05 if g.arms >= 4 else 0.0)
    counts = _soft_bins(min(g.arms, 5) - 1, np.arange(5), 0.35 + 0.6 * (1 - c))
    return [*((1 - cant_tell) * counts), cant_tell]


ANSWER_MODELS = (_q1_smooth_features_star, _q2_edge_on, _q3_bar, _q4_spiral, _q5_bulge, _q6_odd,
                 _q7_roundness, _q8_odd_feature, _q9_edge_on_bulge, _q10_winding, _q11_arm_count)
