"""tf.data input pipeline over the decoded-image cache, with the report's augmentation.

All geometric transforms (rotation, shift, shear, zoom, flips) are composed into one 3×3 matrix
per image and applied in a single bilinear resampling of the whole batch — a chain of Keras
augmentation layers resamples once per layer and costs as much as the model on 2 cores.
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


def augment_batch(images_uint8, cfg: AugmentConfig, rng: tf.random.Generator):
    """One bilinear resampling per image; 'nearest' fill as ImageDataGenerator's default."""
    shape = tf.shape(images_uint8)
    transforms = random_transforms(shape[0], images_uint8.shape[1], cfg, rng)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images_uint8, transforms=transforms, output_shape=shape[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, *, training: bool,
                 augment: AugmentConfig | None = None, seed: int = 0) -> tf.data.Dataset:
    """Batches of (float32 images in [0, 1], float32 labels); shuffled and augmented if training.

    `images` may be a memory map: each batch gathers its rows, so nothing is held twice.
    """
    n, size = len(images), images.shape[1]
    labels = np.asarray(labels, dtype=np.float32)

    def gather(index):
        index = np.sort(index)   # sequential reads from the memory map
        return np.asarray(images[index]), labels[index]

    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(
        lambda i: tf.numpy_function(gather, [i], (tf.uint8, tf.float32)), num_parallel_calls=AUTOTUNE)
    batches = batches.map(lambda x, y: (tf.ensure_shape(x, [None, size, size, 3]), tf.ensure_shape(y, [None, labels.shape[1]])))
    if training and augment is not None:
        rng = tf.random.Generator.from_seed(seed)
        batches = batches.map(lambda x, y: (augment_batch(x, augment, rng), y), num_parallel_calls=AUTOTUNE)
    return batches.map(lambda x, y: (to_model_input(x), y), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
