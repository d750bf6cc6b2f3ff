"""benchmarks/bench.py runs end to end (--quick, on the synthetic set) and writes every figure the
issue asks for, the roofline's included. Timings are machine-dependent, so only their presence, sign
and range are checked; the FLOP count is exact."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

RATIOS = ("pipeline_vs_model", "pipeline_vs_report", "input_vs_report_input")
FIGURES = ("model_only/float32", "pipeline/float32", "report/float32", "input_only", "report_input_only",
           "inference", "model_only_plain/float32", "model_only_xla/float32")


@pytest.mark.slow   # a benchmark in a subprocess: TensorFlow, two compiles, a few timed batches
def test_quick_benchmark_writes_every_figure_and_ratio(tmp_path):
    """No --data-dir: synthetic galaxies, made into the (test's own) cache. bfloat16 only where native."""
    from gz_experiments.hardware import bfloat16_is_native
    bf16 = bfloat16_is_native()
    out = tmp_path / "bench.json"
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "bench.py"), "--out", str(out),
               "--approaches", "cnn_cropped", "--quick", "--max-images", "96", *([] if bf16 else ["--no-bf16"])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["images"] == 96 and report["quick"] is True
    assert report["cache_build_images_per_s"] > 0
    assert [(b["image_size"], b["crop"]) for b in report["cache_builds"]] == [(70, 250)]
    result = report["approaches"]["cnn_cropped"]
    for key in RATIOS:
        assert result[key] > 0, key
    for key in FIGURES:
        assert result["images_per_s"][key] > 0, key
    fig = result["images_per_s"]   # the ratios are the printed figures' ratios, not computed elsewhere
    assert result["pipeline_vs_model"] == pytest.approx(fig["pipeline/float32"] / fig["model_only/float32"], rel=0.02)
    assert result["input_vs_report_input"] == pytest.approx(fig["input_only"] / fig["report_input_only"], rel=0.02)
    # (a) with XLA off and on side by side; the approach's own setting (cnn_cropped: off) is its (a)
    assert result["xla_vs_plain"] == pytest.approx(fig["model_only_xla/float32"] / fig["model_only_plain/float32"],
                                                   rel=0.02)
    assert result["jit_compile"] is False and fig["model_only/float32"] == fig["model_only_plain/float32"]
    assert set(report["targets_met"]) == {"cache_build_images_per_s", "cnn_cropped.pipeline_vs_model",
                                          "cnn_cropped.input_vs_report_input"}
    assert "b/a =" in done.stdout and "d(b)/d(c) =" in done.stdout and "xla_vs_plain =" in done.stdout

    peaks = report["peak_gflop_per_s"]   # the roofline: peaks, FLOPs per image, achieved and its fraction
    assert peaks["float32"] > 0 and peaks["bfloat16"] > 0 and peaks["matmul_size"] == 2048
    roofline = result["roofline"]
    gflop = cnn_cropped_training_gflop()
    assert gflop > 0.1 and roofline["training_gflop_per_image"] == pytest.approx(gflop, rel=1e-3)
    for precision in ("float32", "mixed_bfloat16") if bf16 else ("float32",):
        achieved = roofline[precision]
        assert achieved["gflop_per_s"] == pytest.approx(
            fig[f"model_only/{precision}"] * gflop, rel=0.01)
        assert 0 < achieved["fraction_of_peak"] <= 1.5, precision
        peak = peaks["float32" if precision == "float32" else "bfloat16"]
        assert achieved["fraction_of_peak"] == pytest.approx(achieved["gflop_per_s"] / peak, abs=0.002)
    assert report["machine"]["cpu"] and report["machine"]["load_average"]["before"]
    assert "matmul peak" in done.stdout and "of peak" in done.stdout and "GFLOP per training image" in done.stdout


def cnn_cropped_training_gflop() -> float:
    """What the benchmark should have counted: the same count, of a model built here."""
    import experiments
    from gz_experiments.train import compile_model
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    from roofline import training_flops_per_image
    return training_flops_per_image(compile_model(experiments.load("cnn_cropped").CONFIG)) / 1e9


def test_flops_are_counted_from_the_built_model():
    """3 × the forward pass's FLOPs as TensorFlow's profiler counts them: a dense layer's 2·in·out
    multiply-adds plus its bias, a convolution's 2·k²·c_in·c_out per output pixel."""
    import keras
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    from roofline import achieved, training_flops_per_image
    inputs = keras.Input((10,))
    assert training_flops_per_image(keras.Model(inputs, keras.layers.Dense(5)(inputs))) == 3 * (2 * 10 * 5 + 5)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)   # 6×6 outputs
    assert training_flops_per_image(keras.Model(inputs, conv)) == 3 * 2 * 3 * 3 * 3 * 4 * 6 * 6
    got = achieved({"float32": 100.0, "mixed_bfloat16": 300.0}, 1e9, {"float32": 200.0, "bfloat16": 600.0})
    assert got == {"float32": {"gflop_per_s": 100.0, "fraction_of_peak": 0.5},
                   "mixed_bfloat16": {"gflop_per_s": 300.0, "fraction_of_peak": 0.5}}


def test_fused_augmentation_resamples_exactly_like_tensorflows_projective_transform():
    """The speed work replaced ImageProjectiveTransformV3 with one XLA-fused kernel: same pixels."""
    import numpy as np
    import tensorflow as tf

    from gz_experiments.config import AugmentConfig
    from gz_experiments.data.pipeline import _resample, augment_batch, random_transforms

    images = tf.constant(np.random.default_rng(0).integers(0, 256, (16, 30, 30, 3), dtype=np.uint8))
    cfg = AugmentConfig(rotation=90, shift=0.3, shear=10, zoom=0.3, hflip=True, vflip=True)
    transforms = random_transforms(16, 30, cfg, tf.random.Generator.from_seed(4))
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=transforms, output_shape=[30, 30], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST").numpy()
    np.testing.assert_allclose(_resample(images, transforms, 1.0).numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(_resample(images, transforms, 1 / 255).numpy(), expected / 255, atol=1e-5)
    assert np.abs(expected - images.numpy()).mean() > 20   # the transforms really moved the pixels

    as_uint8 = augment_batch(images, cfg, tf.random.Generator.from_seed(4)).numpy()   # same draws
    assert as_uint8.dtype == np.uint8
    rounded = np.rint(expected).astype(int)   # a value at .5 may round either way in float32
    assert np.abs(as_uint8.astype(int) - rounded).max() <= 1 and (as_uint8 == rounded).mean() > 0.999
