#!/usr/bin/env python
"""Training-step throughput of variants of one approach, float32 and mixed_bfloat16 side by side.

    python benchmarks/side_by_side.py galaxy_cnn '{"fused": {}, "keras_bn": {"keras_bn": 1}}' 6 3
    python benchmarks/side_by_side.py resnet '{"b32": {"batch_size": 32}, "b100": {"batch_size": 100}}' 3 3

Each variant is a dict of config overrides (`keras_bn: 1` builds the model with Keras' own, unfused
batch norm instead of the project's). Every model is built first, then each round times `steps` calls of
Keras' train function per model in turn (one untimed call first), on random images held in memory; the
median of `rounds` rounds is printed as images/s of wall time and images per CPU-second of this process
(less disturbed by neighbours taking the cores), with the load average before and after. docs/speed.md
has what it measured.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import experiments  # noqa: E402
import gz_experiments.models.layers as project_layers  # noqa: E402
from gz_experiments.config import override  # noqa: E402
from gz_experiments.hardware import precision_policy  # noqa: E402
from gz_experiments.train import compile_model  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


def in_memory(size: int, batch: int, k: int = 4) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x, y = rng.random((k * batch, size, size, 3), np.float32), rng.random((k * batch, 37), np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().repeat()


def build(approach: str, overrides: dict, precision: str):
    overrides = dict(overrides)
    keras_bn = overrides.pop("keras_bn", 0)
    config = override(experiments.load(approach).CONFIG, {**({"weights": "none"} if approach == "resnet" else {}),
                                                           **overrides})
    saved = project_layers.BatchNormalization, project_layers.fuse_batch_norm
    if keras_bn:
        project_layers.BatchNormalization, project_layers.fuse_batch_norm = keras.layers.BatchNormalization, lambda m: m
    try:
        with precision_policy(precision):
            model = compile_model(config)
    finally:
        project_layers.BatchNormalization, project_layers.fuse_batch_norm = saved
    data = in_memory(config.data.image_size, config.batch_size)
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)   # builds the optimizer's state
    return model.make_train_function(), iter(data), config.batch_size


def timed(step, iterator, steps: int, batch: int) -> tuple[float, float]:
    step(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        logs = step(iterator)
    float(logs["loss"])   # waits for the last step
    return steps * batch / (time.perf_counter() - wall), steps * batch / (time.process_time() - cpu)


def main(approach: str, variants: dict, steps: int = 5, rounds: int = 3) -> None:
    runs = {(name, p): build(approach, overrides, p) for name, overrides in variants.items() for p in PRECISIONS}
    samples = {key: [] for key in runs}
    before = os.getloadavg()
    for _ in range(rounds):
        for key, (step, iterator, batch) in runs.items():
            samples[key].append(timed(step, iterator, steps, batch))
    print(f"load average {before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    for name in variants:
        medians = {p: [statistics.median(s[i] for s in samples[(name, p)]) for i in (0, 1)] for p in PRECISIONS}
        (f_wall, f_cpu), (b_wall, b_cpu) = medians["float32"], medians["mixed_bfloat16"]
        print(f"{approach} {name}: float32 {f_wall:.0f} img/s ({f_cpu:.0f}/CPU-s), mixed_bfloat16 {b_wall:.0f} "
              f"({b_cpu:.0f}/CPU-s): bf16/float32 x{b_wall / f_wall:.2f} wall, x{b_cpu / f_cpu:.2f} CPU", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:5]))
