"""What the machine offers training: the devices, the device strategy and the precision.

`precision=auto` (the default) trains in `mixed_bfloat16` where bfloat16 is computed in hardware
and in float32 elsewhere (emulated bfloat16 was measured ~9x slower than float32). TensorFlow and
Keras report no CPU features to Python, so the CPU check reads the kernel's `/proc/cpuinfo` flags;
that guess is kept here, away from training.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

CPUINFO = Path("/proc/cpuinfo")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")   # x86 instructions that compute bfloat16 in hardware
BF16_GPU_CAPABILITY = (8, 0)                    # NVIDIA Ampere and later have bfloat16 tensor cores


@dataclass(frozen=True)
class Precision:
    """The Keras dtype policy a run trains with, and why it was chosen (both logged on the run)."""
    name: str     # float32 | mixed_bfloat16
    reason: str


@contextlib.contextmanager
def precision_policy(name: str, cpuinfo: Path = CPUINFO):
    """Keras' global dtype policy for what runs inside (e.g. `mixed_bfloat16`: bfloat16 compute,
    float32 weights), restored afterwards; `auto` is resolved first; warns when bfloat16 would only
    be emulated."""
    name = resolve_precision(name, cpuinfo).name
    if name == "mixed_bfloat16" and not bfloat16_is_native(cpuinfo):
        warnings.warn("precision=mixed_bfloat16 on a CPU without AVX-512 BF16/AMX and no GPU: bfloat16 is "
                      "emulated and was measured ~9x slower than float32 on such a CPU; use float32 here")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def resolve_precision(asked: str, cpuinfo: Path = CPUINFO) -> Precision:
    """`auto`: mixed_bfloat16 where bfloat16 is native, float32 elsewhere; anything else as asked."""
    if asked != "auto":
        return Precision(asked, f"precision={asked} asked for")
    native, why = bfloat16_support(cpuinfo)
    return Precision("mixed_bfloat16" if native else "float32", f"auto: {why}")


def bfloat16_is_native(cpuinfo: Path = CPUINFO) -> bool:
    """True unless bfloat16 is known to be emulated here (an unreadable cpuinfo is no reason to warn)."""
    native, _ = bfloat16_support(cpuinfo)
    return native is not False


def bfloat16_support(cpuinfo: Path = CPUINFO) -> tuple[bool | None, str]:
    """Whether the devices training will use compute bfloat16 in hardware (None: unknown), and why.
    With GPUs present they train, so they decide; otherwise the CPU's flags do."""
    gpus = gpu_capabilities()
    return gpus_support_bfloat16(gpus) if gpus else cpu_supports_bfloat16(cpu_flags(cpuinfo))


def gpus_support_bfloat16(gpus: dict[str, tuple[int, int] | None]) -> tuple[bool, str]:
    """`gpus`: name -> CUDA compute capability (None where TensorFlow does not say)."""
    slow = [name for name, capability in gpus.items() if capability is None or capability < BF16_GPU_CAPABILITY]
    if slow:
        return False, (f"{', '.join(slow)} below compute capability "
                       f"{'.'.join(map(str, BF16_GPU_CAPABILITY))} (no bfloat16 tensor cores)")
    shown = ", ".join(f"{name} (compute capability {'.'.join(map(str, cap))})" for name, cap in gpus.items())
    return True, f"bfloat16 tensor cores on {shown}"


def cpu_supports_bfloat16(flags: set[str] | None) -> tuple[bool | None, str]:
    if flags is None:
        return None, "CPU features unknown (no readable /proc/cpuinfo), so float32"
    found = sorted(flag for flag in BF16_CPU_FLAGS if flag in flags)
    if found:
        return True, f"the CPU computes bfloat16 in hardware ({', '.join(found)})"
    return False, "the CPU has neither AVX-512 BF16 nor AMX: bfloat16 would be emulated, slower than float32"


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str] | None:
    """The CPU's feature flags as Linux lists them, or None where there is no cpuinfo (don't guess)."""
    try:
        lines = [line for line in Path(cpuinfo).read_text().splitlines() if line.startswith("flags")]
    except OSError:
        return None
    return {flag for line in lines for flag in line.partition(":")[2].split()}


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.partition(":")[2].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def gpu_capabilities() -> dict[str, tuple[int, int] | None]:
    """Each visible GPU ("GPU:0 NVIDIA H100 80GB HBM3") -> its compute capability, in device order."""
    found = {}
    for index, gpu in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(gpu)
        found[f"GPU:{index} {details.get('device_name', 'GPU')}"] = details.get("compute_capability")
    return found


def devices(cpuinfo: Path = CPUINFO) -> str:
    """What training runs on, for the run's record: every visible GPU, or the CPU and its cores."""
    gpus = gpu_capabilities()
    if gpus:
        return ", ".join(gpus)
    return f"CPU: {cpu_model(cpuinfo)}, {len(os.sched_getaffinity(0))} cores"


def run_params(precision: Precision) -> dict[str, str]:
    """What a run logs about the hardware beside its config (whose `precision` stays as asked)."""
    return {"precision_resolved": precision.name, "precision_reason": precision.reason, "devices": devices()}


def distribution_strategy() -> tf.distribute.Strategy:
    """Every visible GPU through MirroredStrategy when there are several; otherwise the default."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
