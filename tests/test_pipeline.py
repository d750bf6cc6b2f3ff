"""The tf.data pipeline: float32 batches in [0, 1], the composed augmentation's transforms, and
evaluation data that is neither augmented nor shuffled."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gz_experiments.config import AugmentConfig
from gz_experiments.data.pipeline import augment_batch, make_dataset, random_transforms

SIZE = 24
IDENTITY = AugmentConfig(rotation=0, shift=0, shear=0, zoom=0, hflip=False, vflip=False)
IDENTITY_MATRIX = [1, 0, 0, 0, 1, 0, 0, 0]


def sample(n: int = 10, seed: int = 0):
    """Random images, and labels whose first column is the row number so rows can be traced."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    labels = rng.random((n, 37), dtype=np.float32)
    labels[:, 0] = np.arange(n) / 1000
    return images, labels


def collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return xs, ys


def rows_of(labels) -> np.ndarray:
    return np.rint(np.concatenate(labels)[:, 0] * 1000).astype(int)


@pytest.mark.parametrize("training", [False, True])
def test_batches_are_float32_in_unit_range_with_the_right_shapes(training):
    images, labels = sample(10)
    xs, ys = collect(make_dataset(images, labels, 4, training=training, augment=AugmentConfig(), seed=1))
    assert [len(x) for x in xs] == [4, 4, 2]
    for x, y in zip(xs, ys):
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert x.shape[1:] == (SIZE, SIZE, 3) and y.shape[1:] == (37,)
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert sorted(rows_of(ys)) == list(range(10))   # every example once per epoch


@pytest.mark.parametrize("augment", [None, AugmentConfig(), AugmentConfig(rotation=90, hflip=True, vflip=True)])
def test_evaluation_data_is_neither_augmented_nor_shuffled(augment):
    images, labels = sample(10)
    xs, ys = collect(make_dataset(images, labels, 3, training=False, augment=augment, seed=5))
    np.testing.assert_array_equal(np.concatenate(ys), labels)
    np.testing.assert_allclose(np.concatenate(xs), images / 255.0, atol=1e-6)


def test_training_data_is_shuffled_and_reshuffled_each_epoch():
    images, labels = sample(40)
    dataset = make_dataset(images, labels, 8, training=True, augment=None, seed=3)
    first, second = (rows_of(collect(dataset)[1]) for _ in range(2))
    assert sorted(first) == sorted(second) == list(range(40))
    assert list(first) != list(range(40)) and list(first) != list(second)


def test_augmentation_with_all_ranges_zero_is_the_identity():
    images, labels = sample(12)
    xs, ys = collect(make_dataset(images, labels, 5, training=True, augment=IDENTITY, seed=2))
    rows = rows_of(ys)
    assert np.abs(np.concatenate(xs) - images[rows] / 255.0).max() <= 1 / 255 + 1e-6


def transforms(cfg: AugmentConfig, batch: int = 256, seed: int = 0) -> np.ndarray:
    return random_transforms(batch, SIZE, cfg, tf.random.Generator.from_seed(seed)).numpy()


def test_zero_ranges_give_identity_transforms():
    np.testing.assert_allclose(transforms(IDENTITY, 16), np.tile(IDENTITY_MATRIX, (16, 1)), atol=1e-6)


def test_horizontal_flip_mirrors_about_half_the_batch():
    cfg = AugmentConfig(rotation=0, shift=0, shear=0, zoom=0, hflip=True, vflip=False)
    matrices = transforms(cfg, 200)
    mirrored = np.isclose(matrices[:, 0], -1)
    # A mirror maps output column x to input column size-1-x; everything else stays the identity.
    mirror_matrix = [-1, 0, SIZE - 1, 0, 1, 0, 0, 0]
    np.testing.assert_allclose(matrices[mirrored], np.tile(mirror_matrix, (mirrored.sum(), 1)), atol=1e-5)
    np.testing.assert_allclose(matrices[~mirrored], np.tile(IDENTITY_MATRIX, ((~mirrored).sum(), 1)), atol=1e-5)
    assert 0.35 < mirrored.mean() < 0.65   # 200 fair coins: outside this range with p < 1e-4

    images, _ = sample(64, seed=1)
    out = augment_batch(tf.constant(images), cfg, tf.random.Generator.from_seed(9)).numpy()
    flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)])
    unchanged = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(flipped ^ unchanged) and 0.25 < flipped.mean() < 0.75


def test_transform_parameters_stay_in_the_reports_ranges():
    """rotation ±40°, shift ±0.2 of the side, zoom in [0.8, 1.2]: each drawn alone, measured back."""
    only = dict(rotation=0, shift=0, shear=0, zoom=0, hflip=False)
    rotation = transforms(AugmentConfig(**{**only, "rotation": 40}))
    degrees = np.degrees(np.arctan2(rotation[:, 3], rotation[:, 0]))
    assert np.abs(degrees).max() <= 40 + 1e-4 and np.abs(degrees).max() > 35 and degrees.min() < -35
    np.testing.assert_allclose(np.hypot(rotation[:, 0], rotation[:, 3]), 1, atol=1e-5)   # a pure rotation
    centre = (SIZE - 1) / 2   # about the centre: the centre pixel stays put
    np.testing.assert_allclose(rotation[:, 0] * centre + rotation[:, 1] * centre + rotation[:, 2], centre, atol=1e-4)
    np.testing.assert_allclose(rotation[:, 3] * centre + rotation[:, 4] * centre + rotation[:, 5], centre, atol=1e-4)

    shift = transforms(AugmentConfig(**{**only, "shift": 0.2}))
    offsets = shift[:, [2, 5]] / SIZE
    assert np.abs(offsets).max() <= 0.2 + 1e-6 and np.abs(offsets).max() > 0.18
    np.testing.assert_allclose(shift[:, [0, 1, 3, 4]], np.tile([1, 0, 0, 1], (len(shift), 1)), atol=1e-6)

    zoom = transforms(AugmentConfig(**{**only, "zoom": 0.2}))
    scales = zoom[:, [0, 4]]
    assert scales.min() >= 0.8 - 1e-6 and scales.max() <= 1.2 + 1e-6 and np.ptp(scales) > 0.35
    assert not np.allclose(scales[:, 0], scales[:, 1])   # each axis drawn separately
    np.testing.assert_allclose(zoom[:, 0] * centre + zoom[:, 2], centre, atol=1e-4)

