"""What the machine offers training: the device strategy and whether bfloat16 is worth using.

TensorFlow and Keras report no CPU features to Python, so the bfloat16 check reads the kernel's
`/proc/cpuinfo` flags; that guess is kept here, away from training.
"""
from __future__ import annotations

import contextlib
import warnings

import keras
import tensorflow as tf

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")   # x86 instructions that compute bfloat16 in hardware


@contextlib.contextmanager
def precision_policy(name: str):
    """Keras' global dtype policy for what runs inside (e.g. `mixed_bfloat16`: bfloat16 compute,
    float32 weights), restored afterwards; warns when bfloat16 would only be emulated."""
    if name == "mixed_bfloat16" and not bfloat16_is_native():
        warnings.warn("precision=mixed_bfloat16 on a CPU without AVX-512 BF16/AMX and no GPU: bfloat16 is "
                      "emulated and was measured ~9x slower than float32 on such a CPU; use float32 here")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bfloat16_is_native() -> bool:
    """GPUs, or x86 CPUs with AVX-512 BF16 / AMX, compute bfloat16 in hardware."""
    if tf.config.list_logical_devices("GPU"):
        return True
    flags = cpu_flags()
    return flags is None or any(flag in flags for flag in BF16_CPU_FLAGS)


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags as Linux lists them, or None where there is no /proc/cpuinfo (don't guess)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = [line for line in cpuinfo if line.startswith("flags")]
    except OSError:
        return None
    return {flag for line in lines for flag in line.partition(":")[2].split()}


def distribution_strategy() -> tf.distribute.Strategy:
    """Every visible GPU through MirroredStrategy when there are several; otherwise the default."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
