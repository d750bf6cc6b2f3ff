"""Each model's own parameters: set by their flat names, logged only for the chosen model, refused
for another; an image size the network can't take is refused when parameters are read, before any
image is decoded or TensorFlow loads."""
from __future__ import annotations

import subprocess
import sys

import pytest

import experiments
from conftest import PROJECT_ROOT
from gz_experiments import models
from gz_experiments.config import ConfigError, flat_params, override
from gz_experiments.models.cnn import CnnConfig
from gz_experiments.models.galaxy_cnn import GalaxyCnnConfig
from gz_experiments.models.resnet import ResNetConfig

CROPPED = experiments.load("cnn_cropped").CONFIG


@pytest.mark.parametrize("params, named, readers", [
    ({"weights": "none"}, "'weights'", "resnet only"),
    ({"fine_tune_blocks": "2"}, "'fine_tune_blocks'", "resnet only"),
    ({"global_pool": "true"}, "'global_pool'", "galaxy_cnn only"),
])
def test_another_models_parameter_is_refused_naming_its_model(params, named, readers):
    with pytest.raises(ConfigError) as error:
        override(CROPPED, params)
    assert named in str(error.value) and readers in str(error.value) and "architecture=cnn" in str(error.value)


def test_a_conv_parameter_is_refused_for_resnet():
    with pytest.raises(ConfigError, match=r"'filters\[1\]' applies to cnn and galaxy_cnn only"):
        override(experiments.load("resnet").CONFIG, {"filters[1]": "64"})


def test_the_architecture_is_read_first_whatever_the_order():
    config = override(CROPPED, {"weights": "none", "fine_tune_blocks": "2", "architecture": "resnet"})
    assert config.model.body == ResNetConfig(weights="none", fine_tune_blocks=2)


def test_runs_log_only_the_chosen_models_parameters():
    logged = {a: set(flat_params(experiments.load(a).CONFIG)) for a in ("cnn_cropped", "galaxy_cnn", "resnet")}
    assert {"filters", "kernel_size", "batch_norm"} <= logged["cnn_cropped"]
    assert not {"weights", "fine_tune_blocks", "global_pool"} & logged["cnn_cropped"]
    assert {"filters", "global_pool"} <= logged["galaxy_cnn"] and "weights" not in logged["galaxy_cnn"]
    assert {"weights", "fine_tune_blocks"} <= logged["resnet"]
    assert not {"filters", "kernel_size", "batch_norm", "global_pool"} & logged["resnet"]
    # The shared head's parameters are everyone's.
    assert all({"dense", "dropout", "output", "tree_warmup_epochs"} <= names for names in logged.values())


def test_switching_architecture_keeps_shared_conv_parameters_and_defaults_the_rest():
    galaxy = override(CROPPED, architecture="galaxy_cnn", filters="16,32", batch_norm="true")
    assert galaxy.model.body == GalaxyCnnConfig(filters=(16, 32), batch_norm=True, global_pool=False)
    assert override(CROPPED, architecture="resnet").model.body == ResNetConfig()
    assert override(galaxy, architecture="cnn").model.body == CnnConfig(filters=(16, 32), batch_norm=True)


@pytest.mark.parametrize("approach, smallest", [("cnn_cropped", 46), ("galaxy_cnn", 16), ("resnet", 32)])
def test_an_image_size_the_network_cant_take_is_refused_when_parameters_are_read(approach, smallest):
    config = experiments.load(approach).CONFIG
    assert override(config, image_size=str(smallest)).data.image_size == smallest
    with pytest.raises(ConfigError, match=rf"image_size={smallest - 1} is too small for .*at least {smallest}"):
        override(config, image_size=str(smallest - 1))


def test_the_size_check_sees_every_parameter_of_one_override():
    """A smaller frame with fewer conv layers is fine, whichever order they are given in."""
    config = override(CROPPED, {"image_size": "21", "filters": "8,8"})   # 2 convs take 10² and more
    assert config.data.image_size == 21 and config.model.body.filters == (8, 8)
    with pytest.raises(ConfigError, match="image_size=21 .*filters=8,8,8, kernel_size=3.*at least 22"):
        override(CROPPED, {"image_size": "21", "filters": "8,8,8"})


def test_fine_tune_blocks_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="'fine_tune_blocks' must be 0 to 5"):
        override(experiments.load("resnet").CONFIG, fine_tune_blocks="6")


def test_every_minimum_input_size_is_known_without_keras():
    """Validation is pure Python: reading parameters and refusing image_size=8 loads no TensorFlow."""
    script = ("import sys, experiments\n"
              "from gz_experiments.config import ConfigError, override\n"
              "for approach in experiments.APPROACHES:\n"
              "    try:\n"
              "        override(experiments.load(approach).CONFIG, image_size='8')\n"
              "    except ConfigError as error:\n"
              "        print(error)\n"
              "print('loaded:', sorted({'keras', 'tensorflow'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len([line for line in lines if "image_size=8 is too small" in line]) == len(experiments.APPROACHES)
    assert lines[-1] == "loaded: []"


def test_every_architecture_is_registered_with_its_own_config():
    assert set(models.ARCHITECTURES) == {"cnn", "galaxy_cnn", "resnet"}
    for name, architecture in models.ARCHITECTURES.items():
        assert architecture.name == name
        assert models.body_config(name, None) == architecture.config()
