"""`override` parses MLflow's strings and rejects bad values by name; experiment configs state the report."""
from __future__ import annotations

import dataclasses

import pytest

import experiments
from gz_experiments.config import AugmentConfig, ConfigError, DataConfig, TrainConfig, flat_params, override

BASE = TrainConfig()


@pytest.mark.parametrize("params, attribute, expected", [
    ({"epochs": "5"}, ("epochs",), 5),
    ({"epochs": "5.0"}, ("epochs",), 5),                       # MLflow may log ints as floats
    ({"dropout": "0.25"}, ("model", "dropout"), 0.25),
    ({"learning_rate": "3e-4"}, ("learning_rate",), 3e-4),
    ({"skip_bad_images": "true"}, ("data", "skip_bad_images"), True),
    ({"tta": "False"}, ("tta",), False),
    ({"hflip": "0"}, ("data", "augment", "hflip"), False),
    ({"n_train": "all"}, ("data", "n_train"), None),
    ({"subset": "all"}, ("data", "n_train"), None),           # issue 5's name for the whole set
    ({"crop": "none"}, ("data", "crop"), None),
    ({"crop": "250"}, ("data", "crop"), 250),
    ({"architecture": "resnet", "fine_tune_blocks": "all"}, ("model", "body", "fine_tune_blocks"), None),
    ({"crop": "424"}, ("data", "crop"), 424),
    ({"seed": "0"}, ("seed",), 0),
    ({"filters": "32,64,128"}, ("model", "body", "filters"), (32, 64, 128)),
    ({"filters": "(16, 32)"}, ("model", "body", "filters"), (16, 32)),
    ({"filters[1]": "96"}, ("model", "body", "filters"), (32, 96, 128, 128)),
    ({"dense": "96,64"}, ("model", "dense"), (96, 64)),
    ({"dense[0]": "256"}, ("model", "dense"), (256,)),
    ({"output": "tree"}, ("model", "output"), "tree"),
    ({"augment": "false"}, ("data", "augment"), None),
    ({"augment": "none"}, ("data", "augment"), None),           # the older spelling, still accepted
    ({"augment": "true"}, ("data", "augment"), AugmentConfig()),
    ({"jit_compile": "true"}, ("jit_compile",), True),
    ({"jit_compile": "off"}, ("jit_compile",), False),
])
def test_override_parses_mlflow_strings(params, attribute, expected):
    value = override(BASE, params)
    for name in attribute:
        value = getattr(value, name)
    assert value == expected
    assert type(value) is type(expected)


def test_override_leaves_the_original_and_other_fields_alone():
    changed = override(BASE, epochs="3", rotation="10")
    assert BASE.epochs == 20 and BASE.data.augment.rotation == 40.0
    assert changed.epochs == 3 and changed.data.augment.rotation == 10.0
    assert changed.data.augment.shift == BASE.data.augment.shift
    assert changed.model == BASE.model


def test_setting_an_augmentation_field_switches_augmentation_back_on():
    off = override(BASE, augment="none")
    assert off.data.augment is None
    on = override(off, rotation="15")
    assert on.data.augment == AugmentConfig(rotation=15.0)


@pytest.mark.parametrize("params, named", [
    ({"epoch": "3"}, "'epoch'"),
    ({"filterz[1]": "3"}, "'filterz[1]'"),
    ({"epochs": "0"}, "'epochs'"),
    ({"epochs": "-2"}, "'epochs'"),
    ({"epochs": "1.5"}, "'epochs'"),
    ({"epochs": "ten"}, "'epochs'"),
    ({"batch_size": ""}, "'batch_size'"),
    ({"n_val": "2k"}, "'n_val'"),
    ({"image_size": "0"}, "'image_size'"),
    ({"filters": "32,abc"}, "'filters'"),
    ({"filters": ""}, "'filters'"),
    ({"filters[7]": "32"}, "'filters[7]'"),
    ({"filters[1]": "1.5"}, "'filters[1]'"),
    ({"dense": "0"}, "'dense'"),
    ({"output": "softmax"}, "'output'"),
    ({"precision": "float16"}, "'precision'"),
    ({"optimizer": "adamw"}, "'optimizer'"),
    ({"lr_schedule": "step"}, "'lr_schedule'"),
    ({"dropout": "1.0"}, "'dropout'"),
    ({"dropout": "high"}, "'dropout'"),
    ({"learning_rate": "0"}, "'learning_rate'"),
    ({"skip_bad_images": "maybe"}, "'skip_bad_images'"),
    ({"jit_compile": "xla"}, "'jit_compile' must be true or false"),
    ({"subset": "8000"}, "'subset'"),
    # Each optional field has the one word that reads right for it: crop=all would read "crop all".
    ({"crop": "all"}, "'crop' must be a whole number or 'none'"),
    ({"n_train": "none"}, "'n_train' must be a whole number or 'all'"),
    ({"architecture": "resnet", "fine_tune_blocks": "none"}, "'fine_tune_blocks' must be a whole number or 'all'"),
    ({"augment": "maybe"}, "'augment' must be true or false"),
    # Checked here, before any image is decoded:
    ({"crop": "500"}, "'crop' must be within the 424-pixel frame"),
    ({"crop": "0"}, "'crop' must be at least 1"),
    ({"seed": "-1"}, "'seed' must be 0 or more"),
])
def test_override_rejects_bad_values_naming_the_parameter(params, named):
    with pytest.raises(ConfigError) as error:
        override(BASE, params)
    assert named in str(error.value)


def test_help_params_names_every_parameter_and_the_special_words():
    from gz_experiments.config import describe_params, flat_params
    config = experiments.load("cnn_cropped").CONFIG
    text = describe_params(config)
    assert all(f"  {name} = " in text for name in flat_params(config))
    assert "n_train = 8000    (all: every galaxy left" in text and "crop = 250    (1..424" in text
    assert "augment = true    (true | false; false: no augmentation)" in text
    assert "subset=all: the same as n_train=all" in text


def test_parse_value_is_the_one_parser_for_strings():
    from gz_experiments.config import parse_value
    assert parse_value("tta", "on", bool) is True and parse_value("n_train", "ALL", int | None) is None
    assert parse_value("study_name", "none", str | None) is None   # other optional fields: none


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'.*epochs"):
        override(BASE, epoch="3")


def test_a_bad_choice_says_what_is_allowed():
    with pytest.raises(ConfigError, match="adamax, adam, sgd, rmsprop"):
        override(BASE, optimizer="adamw")


REPORT_CNN = dict(filters=(32, 64, 128, 128), dense=(512,), dropout=0.5, architecture="cnn", output="sigmoid")


@pytest.mark.parametrize("approach, data, model", [
    ("cnn_full", dict(crop=None, image_size=100), REPORT_CNN),
    ("cnn_cropped", dict(crop=250, image_size=70), REPORT_CNN),
    ("cnn_slim_head", dict(crop=250, image_size=70),
     {**REPORT_CNN, "filters": (32, 96, 128, 128), "dense": (96, 64)}),
    ("resnet", dict(crop=250, image_size=70),
     dict(architecture="resnet", dense=(512,), dropout=0.5, output="sigmoid", weights="imagenet",
          fine_tune_blocks=None)),
])
def test_experiment_configs_state_the_report(approach, data, model):
    config = experiments.load(approach).CONFIG
    assert config.approach == approach
    for name, value in data.items():
        assert getattr(config.data, name) == value, name
    for name, value in model.items():
        owner = config.model if hasattr(config.model, name) else config.model.body   # a model's own field
        assert getattr(owner, name) == value, name
    # Shared by all four (report section 2.3): batch 100, adamax, 20 epochs, the generator's augmentation.
    assert (config.batch_size, config.optimizer, config.epochs) == (100, "adamax", 20)
    assert config.data.augment == AugmentConfig(rotation=40, shift=0.2, shear=0.2, zoom=0.2, hflip=True, vflip=False)
    assert (config.data.n_train, config.data.n_val, config.data.n_test) == (8000, 2000, 2000)


def test_unknown_approach_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown approach 'cnn_ful'.*cnn_full"):
        experiments.load("cnn_ful")


@pytest.mark.parametrize("config", [
    *(experiments.load(a).CONFIG for a in ("cnn_full", "cnn_cropped", "cnn_slim_head", "resnet")),
    override(BASE, augment="none", n_train="all", crop="200", filters="8,16", output="tree"),
    override(BASE, rotation="5", hflip="false", architecture="resnet", fine_tune_blocks="2", skip_bad_images="true"),
], ids=["cnn_full", "cnn_cropped", "cnn_slim_head", "resnet", "augment_off", "tweaked"])
def test_flat_params_round_trip_through_override_as_strings(config):
    logged = {name: str(value) for name, value in flat_params(config).items()}   # MLflow stores strings
    assert override(TrainConfig(), logged) == config


def test_flat_params_uses_names_override_accepts():
    from gz_experiments.config import known_parameters
    # parameters of the models BASE doesn't use
    others = {"weights", "fine_tune_blocks", "global_pool", "convs_per_stage", "views"}
    assert set(flat_params(BASE)) == set(known_parameters()) - others


@dataclasses.dataclass(frozen=True)
class _Body:
    crop: int = 3   # the same flat name as data.crop


@dataclasses.dataclass(frozen=True)
class _Colliding:
    data: DataConfig = DataConfig()
    body: _Body = _Body()


def test_a_field_name_repeated_in_another_config_is_an_error_at_import():
    from gz_experiments.config import FieldNameCollision, _leaf_paths
    with pytest.raises(FieldNameCollision, match=r"body\.crop .* 'crop' of data\.crop"):
        _leaf_paths(_Colliding)
    assert "crop" in _leaf_paths(type(experiments.load("cnn_cropped").CONFIG))   # the real config is fine
