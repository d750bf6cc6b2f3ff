"""Decoded images, built once into a memory-mapped `.npy` keyed by content and preprocessing.

Later runs and epochs decode no JPEG, and a full 61,578-image set never has to fit in memory.
A file lock makes concurrent builders (parallel sweep workers) wait for one build, and the
array only appears under its final name, complete, through an atomic rename.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gz_experiments.data.images import ImageError, preprocess
from gz_experiments.progress import Progress
from gz_experiments.data.source import DataError, ImageStore, _examples

CACHE_VERSION = 1   # bump when `preprocess` changes what it produces
CHUNK = 32          # images per thread-pool task


def cache_root() -> Path:
    return Path(os.environ.get("GZ_CACHE_DIR", Path.home() / ".cache" / "gz-experiments")).expanduser()


@dataclass
class CachedImages:
    ids: np.ndarray          # GalaxyIDs in row order, as asked for
    images: np.ndarray       # uint8 (n, size, size, 3), memory-mapped read-only; bad rows are zero
    bad: dict[int, str]      # GalaxyID -> why its image was unusable
    path: Path
    built: bool              # False when an existing cache was reused


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_key(store: ImageStore, ids, image_size: int, crop: int | None) -> str:
    recipe = json.dumps({"v": CACHE_VERSION, "size": image_size, "crop": crop}).encode()
    order = hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=8).digest()
    return hashlib.blake2b(recipe + order + store.fingerprint(ids).encode(), digest_size=12).hexdigest()


def load_or_build(store: ImageStore, ids, image_size: int, crop: int | None,
                  skip_bad_images: bool = False, progress: bool = True) -> CachedImages:
    ids = np.asarray(list(ids), dtype=np.int64)   # row order is kept: splits become contiguous
    key = cache_key(store, ids, image_size, crop)
    array_path, meta_path = cache_root() / f"{key}.npy", cache_root() / f"{key}.json"
    with _locked(cache_root() / f"{key}.lock"):
        built = not (array_path.exists() and meta_path.exists())
        if built:
            _build(store, ids, image_size, crop, array_path, meta_path, progress)
        meta = json.loads(meta_path.read_text())
    bad = {int(k): v for k, v in meta["bad"].items()}
    if bad and not skip_bad_images:
        where = [f"{store.describe(i)} ({why})" for i, why in bad.items()]
        raise DataError(f"{len(bad)} of {len(ids)} images are unusable: {_examples(where, 3)}; "
                        f"replace them, or pass skip_bad_images=true to train without them")
    if bad:
        warnings.warn(f"skipping {len(bad)} unusable images (skip_bad_images=true)", stacklevel=2)
    return CachedImages(ids, np.load(array_path, mmap_mode="r"), bad, array_path, built)


def _build(store, ids, image_size, crop, array_path: Path, meta_path: Path, progress: bool) -> None:
    tmp = array_path.with_suffix(f".tmp{os.getpid()}.npy")
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(ids), image_size, image_size, 3))
    bad: dict[int, str] = {}

    def decode(rows: range) -> int:
        for row in rows:
            try:
                images[row] = preprocess(store.read(ids[row]), image_size, crop)
            except ImageError as error:
                bad[int(ids[row])] = str(error)
        return len(rows)

    bar = Progress(len(ids), f"decoding {len(ids)} images into the cache") if progress else None
    # Pillow releases the GIL while it reads, decodes and resizes, so threads use every core;
    # rows go out in chunks, as one task per image costs more than the decode of a small JPEG.
    chunks = [range(start, min(start + CHUNK, len(ids))) for start in range(0, len(ids), CHUNK)]
    done = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for count in pool.map(decode, chunks):
            done += count
            if bar and (done % (8 * CHUNK) == 0 or done == len(ids)):
                bar.update(done)
    images.flush()
    del images
    os.replace(tmp, array_path)
    meta_tmp = meta_path.with_suffix(f".tmp{os.getpid()}")
    meta_tmp.write_text(json.dumps({"ids": len(ids), "bad": {str(k): v for k, v in bad.items()}}))
    os.replace(meta_tmp, meta_path)

