"""tf.data input pipeline over the decoded-image cache, with the report's augmentation.

All geometric transforms (rotation, shift, shear, zoom, flips) are composed into one 3×3 matrix
per image and applied in a single bilinear resampling of the whole batch — a chain of Keras
augmentation layers resamples once per layer and costs as much as the model on 2 cores.
The resampling is one XLA-fused kernel that also rescales to [0, 1], and each batch is made by
one map, so the whole pipeline costs ~1 ms of one core per 10 images at 70² (benchmarks/bench.py).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from gz_experiments.config import AugmentConfig

AUTOTUNE = tf.data.AUTOTUNE


def to_model_input(images_uint8):
    """Rescale to [0, 1], as the report's `rescale=1./255`; the model's input contract."""
    return tf.cast(images_uint8, tf.float32) * (1.0 / 255.0)


def random_transforms(batch: int, size: int, cfg: AugmentConfig, rng: tf.random.Generator) -> tf.Tensor:
    """(batch, 8) projective transforms mapping output pixels to input pixels, like
    ImageDataGenerator: rotation ±cfg.rotation°, shifts ±cfg.shift of the side, shear in degrees,
    zoom per axis in [1-zoom, 1+zoom], optional flips; all about the image centre."""
    def uniform(low, high):
        return rng.uniform([batch], low, high)

    theta = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
    shear = uniform(-cfg.shear, cfg.shear) * (math.pi / 180)
    zx, zy = uniform(1 - cfg.zoom, 1 + cfg.zoom), uniform(1 - cfg.zoom, 1 + cfg.zoom)
    tx, ty = uniform(-cfg.shift, cfg.shift) * size, uniform(-cfg.shift, cfg.shift) * size
    fx = _random_sign(rng, batch) if cfg.hflip else tf.ones([batch])
    fy = _random_sign(rng, batch) if cfg.vflip else tf.ones([batch])
    cos, sin = tf.cos(theta), tf.sin(theta)
    # A = Rotation · Shear · Zoom · Flip, acting on (x, y) measured from the centre.
    a00, a01 = cos * zx * fx, (-sin * tf.cos(shear) + cos * tf.sin(shear)) * zy * fy
    a10, a11 = sin * zx * fx, (cos * tf.cos(shear) + sin * tf.sin(shear)) * zy * fy
    centre = (size - 1) / 2.0
    b0 = centre - a00 * centre - a01 * centre + tx
    b1 = centre - a10 * centre - a11 * centre + ty
    zeros = tf.zeros([batch])
    return tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)


def _random_sign(rng, batch):
    return tf.where(rng.uniform([batch]) < 0.5, -1.0, 1.0)


@tf.function(jit_compile=True)
def _resample(images_uint8, transforms, scale):
    """float32 `scale`·image sampled bilinearly at each output pixel's affine image (the first six
    entries of `transforms`, as ImageProjectiveTransformV3 reads them); 'nearest' fill, as
    ImageDataGenerator's default, is a clamp of the coordinates to the edge.

    XLA fuses coordinates, the four taps, the blend and the scale into one loop over the batch:
    3× less CPU than ImageProjectiveTransformV3, which redoes each pixel's arithmetic per channel.
    """
    shape = tf.shape(images_uint8)
    batch, height, width = shape[0], shape[1], shape[2]
    ys, xs = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    xs, ys = tf.cast(tf.reshape(xs, [1, -1]), tf.float32), tf.cast(tf.reshape(ys, [1, -1]), tf.float32)
    t = transforms
    src_x = tf.clip_by_value(t[:, 0:1] * xs + t[:, 1:2] * ys + t[:, 2:3], 0.0, tf.cast(width - 1, tf.float32))
    src_y = tf.clip_by_value(t[:, 3:4] * xs + t[:, 4:5] * ys + t[:, 5:6], 0.0, tf.cast(height - 1, tf.float32))
    x0, y0 = tf.floor(src_x), tf.floor(src_y)
    wx, wy = (src_x - x0)[..., None], (src_y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)
    first = tf.range(batch)[:, None] * (height * width)
    row0, row1 = first + y0 * width, first + y1 * width
    pixels = tf.reshape(images_uint8, [-1, 3])   # gathering 3-byte rows beats float or planar taps

    def tap(row, column):
        return tf.cast(tf.gather(pixels, row + column), tf.float32)

    top = tap(row0, x0) + (tap(row0, x1) - tap(row0, x0)) * wx
    bottom = tap(row1, x0) + (tap(row1, x1) - tap(row1, x0)) * wx
    return tf.reshape((top + (bottom - top) * wy) * scale, shape)


def augment_batch(images_uint8, cfg: AugmentConfig, rng: tf.random.Generator):
    """uint8 in, uint8 out: one bilinear resampling per image, 'nearest' fill (what figures show)."""
    images_uint8 = tf.convert_to_tensor(images_uint8)
    transforms = random_transforms(tf.shape(images_uint8)[0], images_uint8.shape[1], cfg, rng)
    return tf.cast(tf.round(_resample(images_uint8, transforms, 1.0)), tf.uint8)


def augment_to_model_input(images_uint8, cfg: AugmentConfig, rng: tf.random.Generator):
    """`to_model_input(augment_batch(...))` in one pass, without rounding to uint8 in between."""
    transforms = random_transforms(tf.shape(images_uint8)[0], images_uint8.shape[1], cfg, rng)
    return _resample(images_uint8, transforms, 1.0 / 255.0)


def _gatherer(images: np.ndarray, labels: np.ndarray):
    """index batch -> (uint8 images, float32 labels) with static shapes, read from `images` (a
    memory map is fine). Measured: no slower than `tf.gather` on an in-memory copy, which also
    costs a copy of the array and seconds to capture it in the dataset's graph."""
    size = images.shape[1]

    def read(index):
        index = np.sort(index)   # sequential reads from the memory map
        return np.asarray(images[index]), labels[index]

    def gather(index):
        x, y = tf.numpy_function(read, [index], (tf.uint8, tf.float32))
        return tf.ensure_shape(x, [None, size, size, 3]), tf.ensure_shape(y, [None, labels.shape[1]])
    return gather


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, *, training: bool,
                 augment: AugmentConfig | None = None, seed: int = 0) -> tf.data.Dataset:
    """Batches of (float32 images in [0, 1], float32 labels); shuffled and augmented if training.

    `images` may be a memory map: each batch gathers its rows, so nothing is held twice.
    """
    labels = np.asarray(labels, dtype=np.float32)
    gather = _gatherer(images, labels)
    indices = tf.data.Dataset.range(len(images))
    if training:
        indices = indices.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if training and augment is not None:
        rng = tf.random.Generator.from_seed(seed)

        def to_batch(index):
            x, y = gather(index)
            return augment_to_model_input(x, augment, rng), y
    else:
        def to_batch(index):
            x, y = gather(index)
            return to_model_input(x), y
    # One map per batch: every extra stage is another hand-off between tf.data's threads.
    return indices.batch(batch_size).map(to_batch, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
