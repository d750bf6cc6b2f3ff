"""The decoded-image cache: reused without decoding, invalidated by content and preprocessing,
safe when two processes build it at once, and equal to what `preprocess` gives."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import wait_for

from gz_experiments.data.cache import cache_root, load_or_build
from gz_experiments.data.images import preprocess
from gz_experiments.data.source import ImageStore, TRAIN_IMAGES, read_labels

SIZE = 32


def store_and_ids(root: Path, k: int = 40):
    labels, _ = read_labels(root)
    return ImageStore(root, TRAIN_IMAGES), labels.index.to_numpy()[:k]


def build(store, ids, size=SIZE, crop=None):
    return load_or_build(store, ids, size, crop, progress=False)


def cache_files() -> dict[str, int]:
    """Every cache file but the lock (opening it to lock touches it) with its modification time."""
    return {p.name: p.stat().st_mtime_ns for p in cache_root().iterdir() if p.suffix != ".lock"}


def test_second_load_reuses_the_cache_and_decodes_nothing(synthetic_dir):
    store, ids = store_and_ids(synthetic_dir)
    first = build(store, ids)
    before = cache_files()
    time.sleep(0.01)   # so a rewrite would show in nanosecond mtimes
    second = build(store, ids)
    assert first.built and not second.built
    assert second.path == first.path
    assert any(name.endswith(".npy") for name in before)
    assert cache_files() == before            # no file written or rewritten: nothing was decoded
    np.testing.assert_array_equal(second.ids, ids)
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable


@pytest.mark.parametrize("change", [
    {"crop": 250}, {"size": SIZE + 8}, {"reorder": True},
])
def test_preprocessing_or_row_order_changes_the_key(synthetic_dir, change):
    store, ids = store_and_ids(synthetic_dir)
    base = build(store, ids)
    ids2 = ids[::-1] if change.get("reorder") else ids
    other = build(store, ids2, size=change.get("size", SIZE), crop=change.get("crop"))
    assert other.built and other.path != base.path
    assert other.images.shape == (len(ids), change.get("size", SIZE), change.get("size", SIZE), 3)
    if change.get("reorder"):   # rows follow the ids asked for
        np.testing.assert_array_equal(np.asarray(other.images), np.asarray(base.images)[::-1])
    assert not build(store, ids).built   # the first entry is still there, untouched


def test_changing_one_images_bytes_changes_the_key(data_copy):
    store, ids = store_and_ids(data_copy)
    base = build(store, ids)
    path = data_copy / TRAIN_IMAGES / f"{ids[3]}.jpg"
    image = Image.open(path)
    out = io.BytesIO()
    Image.fromarray(255 - np.asarray(image)).save(out, format="JPEG")   # same size and mode, new content
    path.write_bytes(out.getvalue())
    rebuilt = build(ImageStore(data_copy, TRAIN_IMAGES), ids)
    assert rebuilt.built and rebuilt.path != base.path
    changed = np.flatnonzero((np.asarray(rebuilt.images) != np.asarray(base.images)).any(axis=(1, 2, 3)))
    assert changed.tolist() == [3]


@pytest.mark.parametrize("crop", [None, 250])
def test_cached_images_equal_preprocess(synthetic_dir, crop):
    store, ids = store_and_ids(synthetic_dir, 12)
    cached = build(store, ids, crop=crop)
    for row, galaxy_id in enumerate(ids):
        expected = preprocess(store.read(galaxy_id), SIZE, crop)
        assert expected.shape == (SIZE, SIZE, 3) and expected.dtype == np.uint8
        np.testing.assert_array_equal(cached.images[row], expected)


BUILDER = """
import os, sys, time
from pathlib import Path
import numpy as np
from gz_experiments.data.cache import load_or_build
from gz_experiments.data.source import ImageStore, read_labels
root, go = Path(sys.argv[1]), Path(sys.argv[2])
labels, _ = read_labels(root)
store = ImageStore(root, "images_training_rev1")
Path(sys.argv[3] + ".ready").touch()
while not go.exists():          # start both builders at the same moment
    time.sleep(0.005)
cached = load_or_build(store, labels.index.to_numpy(), 40, 250, progress=False)
np.save(sys.argv[3], np.asarray(cached.images))
print(cached.built)
"""


def test_two_processes_building_the_same_cache_both_succeed(synthetic_dir, tmp_path):
    go = tmp_path / "go"
    env = {**os.environ, "GZ_CACHE_DIR": str(cache_root())}
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(synthetic_dir), str(go), str(tmp_path / f"out{i}.npy")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    wait_for(lambda: all((tmp_path / f"out{i}.npy.ready").exists() for i in range(2)), 60,
             "both builders to wait at the start line", interval=0.01)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert sorted(out.split()[-1] for out, _ in results) == ["False", "True"]   # one built, one reused
    a, b = np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy")
    np.testing.assert_array_equal(a, b)
    store, ids = store_and_ids(synthetic_dir, 160)
    cached = load_or_build(store, ids, 40, 250, progress=False)
    assert not cached.built
    np.testing.assert_array_equal(np.asarray(cached.images), a)
    leftovers = [p.name for p in cache_root().iterdir() if ".tmp" in p.name or "partial" in p.name]
    assert leftovers == []
