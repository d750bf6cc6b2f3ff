"""Speed options: bfloat16 mixed precision, MirroredStrategy, and `n_train=all` on the memory-mapped cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import mlflow
import numpy as np
import pytest

from conftest import PROJECT_ROOT, tiny_overrides
from gz_experiments import tree


def _config(data_dir, **more):
    import experiments
    from gz_experiments.config import override
    return override(experiments.load("cnn_cropped").CONFIG, tiny_overrides(data_dir, **more))


@pytest.mark.slow
def test_mixed_bfloat16_trains_and_the_saved_model_predicts_float32(synthetic_dir):
    from gz_experiments.data.images import preprocess
    from gz_experiments.served.serving import load_predictor
    from gz_experiments.train import train
    metrics = train(_config(synthetic_dir, precision="mixed_bfloat16"), progress=False)
    assert np.isfinite(metrics["test_rmse"]) and np.isfinite(metrics["best_val_rmse"])
    assert keras.mixed_precision.global_policy().name == "float32"   # restored for whatever runs next

    run = mlflow.last_active_run()
    assert run.data.params["precision"] == "mixed_bfloat16"
    predictor = load_predictor(f"runs:/{run.info.run_id}/model")
    assert predictor.model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    assert predictor.model.get_layer("conv1").compute_dtype == "bfloat16"
    assert predictor.model.get_layer("votes").compute_dtype == "float32"
    files = sorted((synthetic_dir / "images_test_rev1").glob("*.jpg"))
    images = np.stack([preprocess(f.read_bytes(), predictor.image_size, predictor.crop) for f in files])
    predicted = predictor.predict_images(images, tta=True)
    assert predicted.dtype == np.float32 and predicted.shape == (len(files), tree.N_OUTPUTS)
    assert np.isfinite(predicted).all() and predicted.min() >= 0 and predicted.max() <= 1


def test_mirroring_only_with_several_gpus():
    import tensorflow as tf
    from gz_experiments.hardware import distribution_strategy
    gpus = len(tf.config.list_logical_devices("GPU"))
    strategy = distribution_strategy()
    assert isinstance(strategy, tf.distribute.MirroredStrategy) == (gpus > 1)
    assert strategy.num_replicas_in_sync == max(1, gpus)


# Run in a fresh process: logical devices can only be configured before TensorFlow initialises.
# With no GPUs here, the CPU is split into two logical devices and the strategy that
# `distribution_strategy()` returns with several GPUs (MirroredStrategy) is built over them.
MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

import experiments
from gz_experiments import train as training
from gz_experiments.config import override

seen = {}
training.distribution_strategy = lambda: strategy
compile_model = training.compile_model
def compile_and_record(*args):
    model = compile_model(*args)
    seen["strategy"] = type(model.distribute_strategy).__name__
    seen["replicas"] = model.distribute_strategy.num_replicas_in_sync
    return model
training.compile_model = compile_and_record
config = override(experiments.load("cnn_cropped").CONFIG, json.loads(sys.argv[1]))
metrics = training.train(config, progress=False, log_model=False)
print("RESULT " + json.dumps({**seen, **metrics}))
"""


@pytest.mark.slow
def test_training_runs_under_mirrored_strategy_over_two_logical_devices(synthetic_dir):
    overrides = tiny_overrides(synthetic_dir, tta="false")
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(overrides)], cwd=PROJECT_ROOT,
                            env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    seen = json.loads(lines[0][len("RESULT "):])
    assert seen["strategy"] == "MirroredStrategy" and seen["replicas"] == 2
    assert seen["epochs_run"] == 1 and np.isfinite(seen["best_val_rmse"]) and np.isfinite(seen["test_rmse"])
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.info.status == "FINISHED" and run.data.metrics["val_rmse"] == seen["best_val_rmse"]


def test_n_train_all_keeps_the_training_split_memory_mapped(synthetic_dir):
    from gz_experiments.data.cache import cache_root
    from gz_experiments.data.dataset import prepare
    from gz_experiments.data.pipeline import make_dataset
    config = _config(synthetic_dir, n_train="all")
    assert config.data.n_train is None
    data = prepare(config.data, progress=False)

    assert len(data.train) == 160 - 32 - 32   # every galaxy not in val or test
    for split in (data.train, data.val, data.test):
        assert isinstance(split.images, np.memmap) and not split.images.flags.owndata
        assert os.path.dirname(split.images.filename) == str(cache_root())
    # The three splits are views of one file on disk, not copies held in memory.
    assert data.train.images.filename == data.val.images.filename == data.test.images.filename
    images, labels = next(iter(make_dataset(data.train.images, data.train.labels, 32, training=True,
                                            augment=config.data.augment)))
    assert images.shape == (32, 48, 48, 3) and labels.shape == (32, tree.N_OUTPUTS)


@pytest.mark.parametrize("approach", ["cnn_full", "cnn_cropped", "cnn_slim_head", "galaxy_cnn", "resnet"])
def test_each_approach_compiles_with_its_own_jit_compile_setting(approach):
    """XLA is chosen per approach by measurement (Keras' 'auto' would turn it off on every CPU);
    `compile_model` passes the setting through, and an override flips it. Compiles only, no training."""
    import experiments
    from gz_experiments.config import override
    from gz_experiments.train import compile_model
    config = override(experiments.load(approach).CONFIG, {"weights": "none"} if approach == "resnet" else {})
    assert config.jit_compile is XLA_BY_APPROACH[approach]
    assert compile_model(config).jit_compile is config.jit_compile
    flipped = override(config, jit_compile=str(not config.jit_compile))
    assert compile_model(flipped).jit_compile is not config.jit_compile


# Chosen by benchmarks/bench.py's xla_vs_plain on this project's 2-core AVX2 CPU (see config.py):
# XLA was slower for every approach there, ResNet50 included.
XLA_BY_APPROACH = {"cnn_full": False, "cnn_cropped": False, "cnn_slim_head": False, "galaxy_cnn": False,
                   "resnet": False}


@pytest.mark.slow
def test_xla_trains_the_tree_output_under_mixed_bfloat16_and_the_saved_model_loads(synthetic_dir):
    from gz_experiments.served.serving import load_predictor
    from gz_experiments.train import train
    config = _config(synthetic_dir, jit_compile="true", output="tree", precision="mixed_bfloat16")
    metrics = train(config, progress=False)
    assert np.isfinite(metrics["test_rmse"]) and np.isfinite(metrics["best_val_rmse"])

    run = mlflow.last_active_run()
    assert run.data.params["jit_compile"] == "true" and run.data.params["output"] == "tree"
    predictor = load_predictor(f"runs:/{run.info.run_id}/model")
    size = predictor.image_size
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    predicted = predictor.predict_images(images)
    assert predicted.shape == (3, tree.N_OUTPUTS) and np.isfinite(predicted).all()
    np.testing.assert_allclose(predicted[:, :3].sum(axis=1), 1.0, atol=1e-2)   # the tree's Q1 sums to one
