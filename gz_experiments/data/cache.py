"""Decoded images, built once into a memory-mapped `.npy` keyed by content and preprocessing.

Later runs and epochs decode no JPEG, and a full 61,578-image set never has to fit in memory.
A file lock makes concurrent builders (parallel sweep workers) wait for one build, and the
array only appears under its final name, complete, through an atomic rename after fsync; its
sidecar `.json`, written the same way and last, marks it whole. What is opened is checked against
the sidecar (size, shape): a damaged entry is rebuilt with a warning naming it. Temporary files
are removed when a build fails, and those of dead builders by the next build. The array's space is
reserved before it is written through the map: a full disk is one `NoSpaceError`, not a SIGBUS.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gz_experiments.data.images import ImageError, preprocess
from gz_experiments.errors import NoSpaceError
from gz_experiments.progress import Progress
from gz_experiments.data.source import DataError, ImageStore, _examples
from gz_experiments.tracking.processes import HOST, is_gone

CACHE_VERSION = 1   # bump when `preprocess` changes what it produces
CHUNK = 32          # images per thread-pool task
TMP_MARK = ".partial-"   # <key>.partial-<host>-<pid>.npy|.json while a build runs
TMP_NAME = re.compile(r"[0-9a-f]+\.partial-(?P<host>.+)-(?P<pid>\d+)\.(npy|json)")
OLD_TMP_NAME = re.compile(r"[0-9a-f]{24}\.tmp(?P<pid>\d+)(\.npy)?")   # before host-named temporaries


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
    shape = (len(ids), image_size, image_size, 3)
    with _locked(cache_root() / f"{key}.lock"):
        meta = _check_entry(array_path, meta_path, shape)
        built = meta is None
        if built:
            remove_stale_temporaries()
            meta = _build(store, ids, image_size, crop, array_path, meta_path, progress)
        images = np.load(array_path, mmap_mode="r")
    bad = {int(k): v for k, v in meta["bad"].items()}
    if bad and not skip_bad_images:
        where = [f"{store.describe(i)} ({why})" for i, why in bad.items()]
        raise DataError(f"{len(bad)} of {len(ids)} images are unusable: {_examples(where, 3)}; "
                        f"replace them, or pass skip_bad_images=true to train without them")
    if bad:
        warnings.warn(f"skipping {len(bad)} unusable images (skip_bad_images=true)", stacklevel=2)
    return CachedImages(ids, images, bad, array_path, built)


def _check_entry(array_path: Path, meta_path: Path, shape: tuple) -> dict | None:
    """The entry's sidecar (written last: its presence means the array is complete) when the array
    matches it and the shape asked for; None when there is no entry. A damaged one (truncated,
    overwritten, half-deleted) is removed with a warning naming it, so it is rebuilt."""
    if not array_path.exists() and not meta_path.exists():
        return None
    problem = None
    try:
        meta = json.loads(meta_path.read_text())
        header_shape, dtype, offset = _npy_header(array_path)
        size, expected = array_path.stat().st_size, offset + int(np.prod(header_shape)) * dtype.itemsize
        if header_shape != shape or dtype != np.uint8:
            problem = f"it holds {dtype} {header_shape}, expected uint8 {shape}"
        elif size != expected or size != meta.get("bytes", size) or meta.get("ids") != shape[0]:
            problem = f"it holds {size} bytes, expected {expected}"
    except FileNotFoundError as error:
        problem = f"{Path(error.filename).name} is missing"
    except (OSError, ValueError, TypeError, AttributeError) as error:
        problem = f"{type(error).__name__}: {error}"
    if problem is None:
        return meta
    warnings.warn(f"image cache entry {array_path} is damaged ({problem}); removing it and decoding the "
                  f"images again", stacklevel=3)
    for path in (meta_path, array_path):   # sidecar first: never a sidecar without its array
        path.unlink(missing_ok=True)
    return None


def _npy_header(path: Path) -> tuple[tuple, np.dtype, int]:
    """Shape, dtype and where the data start, from the `.npy` header."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(handle)
        return shape, dtype, handle.tell()


def _build(store, ids, image_size, crop, array_path: Path, meta_path: Path, progress: bool) -> dict:
    """Decode into a temporary file named after this host and process, then publish it: fsync,
    atomic rename, and the sidecar last. Any failure or stop signal removes the temporary file."""
    tmp = temporary_path(array_path)
    try:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                           shape=(len(ids), image_size, image_size, 3))
        _reserve(tmp, len(ids) * image_size * image_size * 3)
        bad = _decode_all(store, ids, image_size, crop, images, progress)
        images.flush()
        del images
        _fsync(tmp)
        os.replace(tmp, array_path)
        meta = {"ids": len(ids), "bytes": array_path.stat().st_size, "bad": {str(k): v for k, v in bad.items()}}
        _write_atomically(meta_path, json.dumps(meta))
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        array_path.unlink(missing_ok=True)   # no sidecar was written: the array must not stay either
        raise _no_space(array_path.parent, len(ids) * image_size * image_size * 3) from None
    finally:
        tmp.unlink(missing_ok=True)
    return meta


def _reserve(path: Path, data_bytes: int) -> None:
    """Allocate the whole file now. Writing through a map onto a sparse file whose disk fills
    kills the process with SIGBUS; here a full disk is an ordinary error before any decoding."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            path.unlink(missing_ok=True)
            raise _no_space(path.parent, size) from None
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):   # a file system without fallocate
            raise
    finally:
        os.close(fd)


def _no_space(folder: Path, needed: int) -> NoSpaceError:
    free = shutil.disk_usage(folder).free if folder.is_dir() else 0
    return NoSpaceError(f"no space left for the image cache in {folder}: it needs "
                        f"{needed / 1e6:.1f} MB ({needed} bytes), {free / 1e6:.1f} MB are free; free some "
                        f"space there or set GZ_CACHE_DIR to a folder with room")


def _decode_all(store, ids, image_size, crop, images, progress: bool) -> dict[int, str]:
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
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    try:
        for count in pool.map(decode, chunks):
            done += count
            if bar and (done % (8 * CHUNK) == 0 or done == len(ids)):
                bar.update(done)
    finally:   # on an error or a stop signal, don't decode the remaining chunks first
        pool.shutdown(wait=True, cancel_futures=True)
    return bad


def temporary_path(final: Path) -> Path:
    return final.with_name(f"{final.stem}{TMP_MARK}{HOST}-{os.getpid()}{final.suffix}")


def remove_stale_temporaries() -> list[Path]:
    """Temporary files of builds whose process died (kill -9, power loss) on this host; a live
    builder's file, or another host's (a shared cache folder), is never touched."""
    removed = []
    for path in cache_root().iterdir() if cache_root().is_dir() else ():
        match = TMP_NAME.fullmatch(path.name) or OLD_TMP_NAME.fullmatch(path.name)
        if match and is_gone(match["host"] if "host" in match.groupdict() else HOST, match["pid"]):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _write_atomically(path: Path, text: str) -> None:
    tmp = temporary_path(path)
    try:
        tmp.write_text(text)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent)   # the renames themselves survive a power loss


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

