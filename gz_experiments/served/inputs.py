"""A predictor's inputs: the preprocessings — (image_size, crop) — it needs of each image.

A `Predictor` needs one, and takes a uint8 array of frames; an ensemble's members may each need
their own, so it takes {(image_size, crop): frames}. `frames` here are what `predict_images`
takes, so `evaluate` and `predict` handle both without knowing which they hold.
"""
from __future__ import annotations

import numpy as np

from gz_experiments.data.cache import load_or_build
from gz_experiments.data.images import preprocess

Spec = tuple  # (image_size, crop or None)


def specs(predictor) -> list[Spec]:
    return list(predictor.inputs)


def pack(predictor, arrays: dict[Spec, np.ndarray]):
    """{spec: frames} -> what `predictor.predict_images` takes (a plain array for one input)."""
    wanted = specs(predictor)
    return arrays[wanted[0]] if len(wanted) == 1 else {spec: arrays[spec] for spec in wanted}


def load_cached(predictor, store, ids, skip_bad_images: bool = False, progress: bool = True):
    """(GalaxyIDs of the usable images, their frames) from the image cache, one cache per input;
    an image unusable for any input is left out of all."""
    cached = {spec: load_or_build(store, ids, spec[0], spec[1], skip_bad_images, progress)
              for spec in specs(predictor)}
    first = next(iter(cached.values()))
    bad = set().union(*(c.bad for c in cached.values()))
    good = np.array([int(i) not in bad for i in first.ids], dtype=bool)
    arrays = {spec: c.images if good.all() else np.asarray(c.images[good]) for spec, c in cached.items()}
    return first.ids[good], pack(predictor, arrays)


def decode(predictor, jpeg: bytes) -> list[np.ndarray]:
    """One image preprocessed for each input (an `ImageError` if it can't be)."""
    return [preprocess(jpeg, size, crop) for size, crop in specs(predictor)]


def stack(predictor, decoded: list[list[np.ndarray]]):
    """Per-image results of `decode` -> frames for `predict_images`."""
    arrays = {spec: np.stack([frames[k] for frames in decoded]) if decoded else
              np.zeros((0, spec[0], spec[0], 3), np.uint8) for k, spec in enumerate(specs(predictor))}
    return pack(predictor, arrays)


def describe(predictor) -> dict[str, str]:
    """`image_size` and `crop` params: one value, or one per input joined by commas."""
    wanted = specs(predictor)
    return {"image_size": ",".join(str(size) for size, _ in wanted),
            "crop": ",".join(str(crop or "none") for _, crop in wanted)}
