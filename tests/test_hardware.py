"""Using the hardware: `precision=auto` resolved from this machine's CPU flags (and a stubbed cpuinfo
without bfloat16), the devices a run names, and the fused batch normalisation that makes bfloat16 pay."""
from __future__ import annotations

import warnings

import keras
import mlflow
import numpy as np
import pytest

from conftest import tiny_overrides
from gz_experiments import hardware
from gz_experiments.hardware import (cpu_flags, cpu_supports_bfloat16, gpus_support_bfloat16, precision_policy,
                                     resolve_precision)

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse sse2 avx avx2 fma\n\n"


def stub_cpuinfo(tmp_path, text=AVX2_ONLY):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_auto_is_the_default_and_resolves_from_this_machines_cpu_flags():
    from gz_experiments.config import TrainConfig
    assert TrainConfig().precision == "auto"
    flags = cpu_flags()
    native = flags is not None and bool({"avx512_bf16", "amx_bf16"} & flags)
    resolved = resolve_precision("auto")
    if not hardware.gpu_capabilities():   # no GPU here: the CPU decides
        assert resolved.name == ("mixed_bfloat16" if native else "float32")
        assert resolved.reason.startswith("auto: ")
        if native:
            assert "amx_bf16" in resolved.reason or "avx512_bf16" in resolved.reason


def test_auto_on_a_cpu_without_bfloat16_is_float32_and_says_why(tmp_path):
    cpuinfo = stub_cpuinfo(tmp_path)
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "sse2", "avx", "avx2", "fma"}
    if hardware.gpu_capabilities():
        pytest.skip("a GPU decides the precision on this machine, not the CPU")
    resolved = resolve_precision("auto", cpuinfo)
    assert resolved.name == "float32"
    assert "neither AVX-512 BF16 nor AMX" in resolved.reason and "emulated" in resolved.reason


def test_cpu_flags_decide_and_unknown_features_mean_float32(tmp_path):
    assert cpu_supports_bfloat16({"avx2", "amx_bf16"})[0] is True
    assert cpu_supports_bfloat16({"avx512f", "avx512_bf16"})[0] is True
    assert cpu_supports_bfloat16({"avx512f", "avx2"})[0] is False
    assert cpu_flags(tmp_path / "missing") is None
    native, why = cpu_supports_bfloat16(None)
    assert native is None and "unknown" in why
    if not hardware.gpu_capabilities():   # unknown: auto stays float32, an explicit bf16 isn't warned about
        assert resolve_precision("auto", tmp_path / "missing").name == "float32"
        assert hardware.bfloat16_is_native(tmp_path / "missing") is True


def test_gpus_need_compute_capability_8_for_bfloat16():
    assert gpus_support_bfloat16({"GPU:0 NVIDIA H100 80GB HBM3": (9, 0)}) == (
        True, "bfloat16 tensor cores on GPU:0 NVIDIA H100 80GB HBM3 (compute capability 9.0)")
    native, why = gpus_support_bfloat16({"GPU:0 NVIDIA A100": (8, 0), "GPU:1 Tesla V100": (7, 0)})
    assert native is False and "GPU:1 Tesla V100" in why and "A100" not in why
    assert gpus_support_bfloat16({"GPU:0 unknown": None})[0] is False


def test_explicit_precisions_are_kept_whatever_the_machine(tmp_path):
    cpuinfo = stub_cpuinfo(tmp_path)
    assert resolve_precision("float32", cpuinfo) == hardware.Precision("float32", "precision=float32 asked for")
    assert resolve_precision("mixed_bfloat16", cpuinfo).name == "mixed_bfloat16"


def test_the_emulated_bfloat16_warning_stays_for_an_explicit_request(tmp_path):
    cpuinfo = stub_cpuinfo(tmp_path)
    if hardware.gpu_capabilities():
        pytest.skip("a GPU computes bfloat16 here")
    with pytest.warns(UserWarning, match="emulated"):
        with precision_policy("mixed_bfloat16", cpuinfo):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with precision_policy("auto", cpuinfo):   # auto never picks emulated bfloat16
            assert keras.mixed_precision.global_policy().name == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_devices_name_the_cpu_and_its_cores(tmp_path):
    if hardware.gpu_capabilities():
        assert hardware.devices().startswith("GPU:0 ")
    else:
        assert hardware.devices(stub_cpuinfo(tmp_path)).startswith("CPU: AMD EPYC 7B13, ")
        assert hardware.devices().startswith("CPU: ") and hardware.devices().endswith(" cores")


@pytest.mark.slow   # trains, logs and loads a model
def test_a_training_run_logs_the_precision_it_resolved_to_and_its_devices(synthetic_dir):
    """galaxy_cnn (fused batch norm) at its default precision; its logged model loads and predicts."""
    import experiments
    from gz_experiments.config import override
    from gz_experiments.models.layers import BatchNormalization
    from gz_experiments.served.serving import load_predictor
    from gz_experiments.train import train
    config = override(experiments.load("galaxy_cnn").CONFIG, tiny_overrides(synthetic_dir, tta="false"))
    assert config.precision == "auto"
    metrics = train(config, progress=False)
    assert np.isfinite(metrics["test_rmse"])
    run = mlflow.last_active_run()
    predictor = load_predictor(f"runs:/{run.info.run_id}/model")
    assert type(predictor.model.get_layer("bn1")) is BatchNormalization
    size = predictor.image_size
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    assert np.isfinite(predictor.predict_images(images)).all()
    params = run.data.params
    expected = resolve_precision("auto")
    assert params["precision"] == "auto"   # as asked
    assert params["precision_resolved"] == expected.name and params["precision_reason"] == expected.reason
    assert params["devices"] == hardware.devices()
    assert keras.mixed_precision.global_policy().name == "float32"   # restored


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_computes_what_keras_batch_norm_does(policy):
    """Training and inference outputs, running statistics and gradients agree with Keras' own layer."""
    import tensorflow as tf
    from gz_experiments.models.layers import BatchNormalization
    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (8, 6, 6, 5)).astype(np.float32))
    layers = []
    with precision_policy(policy):
        for cls in (keras.layers.BatchNormalization, BatchNormalization):
            layer = cls(momentum=0.5)
            layer.build(x.shape)
            layer.gamma.assign(np.linspace(0.5, 2.0, 5))
            layer.beta.assign(np.linspace(-1.0, 1.0, 5))
            layers.append(layer)
    tolerance = 1e-4 if policy == "float32" else 5e-2   # bfloat16 keeps ~3 significant digits
    outputs, gradients = [], []
    for layer in layers:
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.range(5, dtype=tf.float32))
        assert y.dtype == (tf.float32 if policy == "float32" else tf.bfloat16)
        outputs.append(tf.cast(y, tf.float32).numpy())
        gradients.append([g.numpy() for g in tape.gradient(loss, [layer.gamma, layer.beta])])
    np.testing.assert_allclose(outputs[1], outputs[0], atol=tolerance * 4)
    for fused, plain in zip(gradients[1], gradients[0]):
        np.testing.assert_allclose(fused, plain, rtol=tolerance, atol=tolerance * 10)
    keras_bn, fused_bn = layers
    np.testing.assert_allclose(fused_bn.moving_mean.numpy(), keras_bn.moving_mean.numpy(), rtol=tolerance)
    batch_variance = (keras_bn.moving_variance.numpy() - 0.5) / 0.5   # momentum 0.5 from a variance of 1
    n = 8 * 6 * 6   # the fused op's running variance is Bessel-corrected
    np.testing.assert_allclose(fused_bn.moving_variance.numpy(), 0.5 + 0.5 * batch_variance * n / (n - 1),
                               rtol=tolerance)
    assert not np.allclose(fused_bn.moving_mean.numpy(), 0.0)   # the statistics really moved
    fused_bn.moving_variance.assign(keras_bn.moving_variance)   # inference from the same statistics
    inferred = [tf.cast(layer(x, training=False), tf.float32).numpy() for layer in layers]
    np.testing.assert_allclose(inferred[1], inferred[0], atol=tolerance * 4, rtol=tolerance * 10)

def test_models_with_fused_batch_norm_save_load_and_share_weight_files_with_keras(tmp_path):
    from gz_experiments.models.layers import BatchNormalization, fuse_batch_norm
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(4, 3)(inputs)))
    fused = fuse_batch_norm(plain)
    assert type(fused.get_layer("bn")) is BatchNormalization
    plain.get_layer("bn").moving_mean.assign(np.arange(4.0))
    plain.save_weights(tmp_path / "plain.weights.h5")
    fused.load_weights(tmp_path / "plain.weights.h5")   # weight files address layers by class name
    np.testing.assert_array_equal(fused.get_layer("bn").moving_mean.numpy(), np.arange(4.0))
    fused.save(tmp_path / "fused.keras")
    loaded = keras.saving.load_model(tmp_path / "fused.keras")
    assert type(loaded.get_layer("bn")) is BatchNormalization
    x = np.random.default_rng(1).random((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), fused.predict(x, verbose=0), atol=1e-6)


def test_tensorflow_comes_from_exactly_one_extra_cpu_or_gpu_of_one_version():
    """Both builds install the `tensorflow` module: core dependencies hold neither, the extras one each,
    pinned alike so a GPU install trains with the TensorFlow the CPU one was measured with."""
    import re
    import tomllib
    from conftest import PROJECT_ROOT
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("tensorflow")]
    extras = project["optional-dependencies"]
    (cpu,), (gpu,) = extras["cpu"], extras["gpu"]
    assert re.fullmatch(r"tensorflow-cpu(==.+)", cpu) and gpu.startswith("tensorflow[and-cuda]==")
    assert cpu.removeprefix("tensorflow-cpu") == gpu.removeprefix("tensorflow[and-cuda]")
    assert "-e .[cpu]" in (PROJECT_ROOT / "python_env.yaml").read_text()


def test_a_logged_model_pins_the_tensorflow_build_that_trained_it():
    from importlib.metadata import PackageNotFoundError, version
    from gz_experiments.served.serving import requirements
    pins = requirements()
    builds = [p for p in pins if p.split("==")[0] in ("tensorflow-cpu", "tensorflow")]
    assert len(builds) == 1
    name, pinned = builds[0].split("==")
    assert version(name) == pinned
    if name == "tensorflow":   # only when tensorflow-cpu is absent
        with pytest.raises(PackageNotFoundError):
            version("tensorflow-cpu")
