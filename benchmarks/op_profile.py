#!/usr/bin/env python
"""Where a training step's time goes: TensorFlow's profiler over a few steps, op time summed by op type.

    python benchmarks/op_profile.py galaxy_cnn mixed_bfloat16 [steps] ['{"batch_size": 32}'] [top-n ops by name]

The model and images are side_by_side.py's (random images in memory; `keras_bn: 1` for Keras' own batch
norm). The trace goes to a temporary folder, removed afterwards; the table is milliseconds of op time per
step (summed over threads, so it can exceed wall time) by op type, the oneDNN kernels under their `_Mkl`
names. docs/speed.md has what it found.
"""
from __future__ import annotations

import collections
import glob
import json
import shutil
import sys
import tempfile

import tensorflow as tf

from side_by_side import build

WRAPPERS = ("Process", "Run", "__inference")   # spans that contain ops rather than being ops


def op_times(logdir: str) -> tuple[collections.Counter, collections.Counter]:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as trace:
        space.ParseFromString(trace.read())
    by_type, by_name = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name and not name.startswith("$"):
                    op_type = name.rsplit(":", 1)[1]
                    if not op_type.strip().startswith(WRAPPERS):
                        by_type[op_type] += event.duration_ps / 1e9
                        by_name[name] += event.duration_ps / 1e9
    return by_type, by_name


def main(approach: str, precision: str, steps: int = 5, overrides: dict | None = None, top: int = 0) -> None:
    step, iterator, batch = build(approach, overrides or {}, precision)
    step(iterator)
    logdir = tempfile.mkdtemp(prefix="gz-op-profile-")
    try:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            logs = step(iterator)
        float(logs["loss"])
        tf.profiler.experimental.stop()
        by_type, by_name = op_times(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    print(f"{approach} {precision} {overrides or ''}: {sum(by_type.values()) / steps:.1f} ms of op time per step "
          f"(batch {batch})")
    for op_type, ms in by_type.most_common(25):
        print(f"  {op_type:40s} {ms / steps:8.2f} ms")
    for name, ms in by_name.most_common(top):
        print(f"  {name[-90:]:90s} {ms / steps:8.2f} ms")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[2]) if len(args) > 2 else 5, json.loads(args[3]) if len(args) > 3 else None,
         int(args[4]) if len(args) > 4 else 0)
