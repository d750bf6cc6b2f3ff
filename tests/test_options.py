"""One options dialect: every command's options are a dataclass read by `options.parse`, with the
training config's words for booleans and unset values, one wording for a bad choice or a value below
its bound, and one error (with the command's usage) for unknown or missing names."""
from __future__ import annotations

import re

import pytest

import experiments
from gz_experiments import cli
from gz_experiments.config import override
from gz_experiments.errors import ConfigError
from gz_experiments.options import parameters, parse, parse_overrides

# The least each command needs, so that one more option is the only thing a test changes.
NEEDS = {"evaluate": {"model_uri": "m", "data_dir": "d"}, "predict": {"model_uri": "m", "images": "i"},
         "ensemble": {"models": "runs:/a/model,runs:/b/model"}, "sweep": {}, "report": {}, "synthetic": {}, "ui": {}}


def read(command: str, **given):
    """The command's options as the CLI reads them (its dataclass from the CLI's table)."""
    return parse(cli._load(cli.COMMANDS[command].options), {**NEEDS[command], **given}, command)


def error_of(command: str, **given) -> str:
    with pytest.raises(ConfigError) as error:
        read(command, **given)
    return str(error.value)


def test_every_command_but_training_has_an_options_dataclass():
    assert {name for name, c in cli.COMMANDS.items() if c.options is cli.TRAINING} == {"train", "baseline"}
    assert set(NEEDS) == {name for name, c in cli.COMMANDS.items() if c.options is not cli.TRAINING}


# ---- booleans and unset values: the training config's words everywhere ----------------------------

@pytest.mark.parametrize("command, name", [("evaluate", "tta"), ("evaluate", "skip_bad_images"), ("predict", "tta"),
                                           ("predict", "skip_bad_images"), ("ensemble", "tta"),
                                           ("ensemble", "skip_bad_images")])
def test_a_boolean_option_takes_on_off_yes_no_1_0(command, name):
    for word, meaning in (("on", True), ("off", False), ("yes", True), ("No", False), ("1", True), ("0", False),
                          ("TRUE", True)):
        assert getattr(read(command, **{name: word}), name) is meaning, word
    assert f"parameter {name!r} must be true or false, got 'maybe'" in error_of(command, **{name: "maybe"})


def test_training_booleans_take_the_same_words_in_train_sweep_and_report():
    config = experiments.load("cnn_cropped").CONFIG
    assert override(config, tta="off").tta is False and override(config, augment="on").data.augment is not None
    sweep, report = read("sweep", tta="off"), read("report", tta="yes")
    assert override(config, sweep.fixed).tta is False and override(config, report.fixed).tta is True


def test_none_unsets_an_optional_option_and_mlflow_floats_are_whole_numbers():
    assert read("sweep", study_name="none", sampler_seed="None").study_name is None
    assert read("sweep", sampler_seed="7.0").sampler_seed == 7          # `mlflow run` hands ints as "7.0"
    assert read("predict", batch_size="250.0").batch_size == 250
    assert read("ensemble", register="none", data_dir="").register is None
    assert read("ensemble", data_dir="/d", n_train="all").split.n_train is None   # n_train's own word, as in training
    assert "parameter 'batch_size' must be a whole number, got '2.5'" in error_of("predict", batch_size="2.5")


def test_mlflow_run_tokens_reach_the_same_options():
    given = parse_overrides(["--model-uri", "runs:/r/model", "--images=x", "tta=on"])
    options = parse(cli._load(cli.COMMANDS["predict"].options), given, "predict")
    assert (options.model_uri, options.images, options.tta) == ("runs:/r/model", "x", True)


# ---- unknown and missing names: one error, with the usage ------------------------------------------

@pytest.mark.parametrize("command", [c for c, needs in NEEDS.items() if c not in ("sweep", "report")])
def test_an_unknown_option_is_one_error_with_the_usage(command):
    message = error_of(command, colour="red")
    first, *usage = message.splitlines()
    assert first == f"{command}: unknown parameter 'colour'"
    assert usage[0].startswith(f"usage: gz-experiments {command} ")
    for name in parameters(cli._load(cli.COMMANDS[command].options)):
        assert any(line.lstrip().startswith(f"{name}=") for line in usage), name


@pytest.mark.parametrize("command, missing", [("evaluate", ["model_uri", "data_dir"]), ("predict", ["model_uri"])])
def test_a_missing_required_option_is_named_with_the_usage(command, missing):
    with pytest.raises(ConfigError) as error:
        parse(cli._load(cli.COMMANDS[command].options), {"images": "x"} if command == "predict" else {}, command)
    first, *usage = str(error.value).splitlines()
    assert first == f"{command}: missing {', '.join(map(repr, missing))} (required)"
    assert all(any(line.lstrip().startswith(f"{name}=… ") and "required" in line for line in usage) for name in missing)


@pytest.mark.parametrize("argv", [["evaluate", "colour=red"], ["sweep", "colour=red"], ["report", "colour=red"],
                                  ["train", "cnn_cropped", "colour=red"], ["baseline", "colour=red"]])
def test_an_unknown_name_is_one_error_line_from_every_command(capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "unknown parameter 'colour'" in lines[0] and "Traceback" not in err, err


def test_sweep_and_report_take_other_names_as_training_parameters():
    assert read("sweep", epochs="3", n_trials="4").fixed == {"epochs": "3"}
    report = read("report", **{"from": "abc"})
    assert report.from_run == "abc" and report.fixed == {}   # `from` (a Python keyword) is from_run


# ---- choices and lower bounds: one wording across commands ----------------------------------------

def train_error(**given) -> str:
    with pytest.raises(ConfigError) as error:
        override(experiments.load("cnn_cropped").CONFIG, given)
    return str(error.value)


@pytest.mark.parametrize("command, name, bad, choices", [
    ("ensemble", "blend", "median", "fit, mean"),
    ("sweep", "pruner", "hyperbnd", "median, hyperband, none"),
    ("report", "approaches", "alexnet", ", ".join(("baseline", *experiments.APPROACHES))),
    ("train", "optimizer", "adagrad", "adamax, adam, sgd, rmsprop"),
])
def test_a_bad_choice_reads_the_same_in_every_command(command, name, bad, choices):
    message = train_error(**{name: bad}) if command == "train" else error_of(command, **{name: bad})
    assert message == f"parameter {name!r} must be one of {choices}; got {bad!r}"


def test_choices_ignore_case():
    assert read("ensemble", blend="MEAN").blend == "mean" and read("sweep", pruner="HyperBand").pruner == "hyperband"


@pytest.mark.parametrize("command, name, bad, bound", [
    ("predict", "batch_size", "0", 1), ("synthetic", "n", "0", 1), ("synthetic", "seed", "-1", 0),
    ("ensemble", "top_k", "0", 1), ("sweep", "n_trials", "0", 1), ("report", "seeds", "2,-1", 0),
    ("ui", "port", "0", 1), ("train", "epochs", "0", 1),
])
def test_a_value_below_its_bound_reads_the_same_in_every_command(command, name, bad, bound):
    message = train_error(**{name: bad}) if command == "train" else error_of(command, **{name: bad})
    assert message == f"parameter {name!r} must be at least {bound}, got {bad.split(',')[-1]}"


def test_an_optional_option_s_bound_names_its_unset_word():
    assert error_of("sweep", sampler_seed="-1") == "parameter 'sampler_seed' must be at least 0 (or none), got -1"
    assert error_of("sweep", trial_minutes="0") == "parameter 'trial_minutes' must be more than 0 (or none), got 0.0"
    assert error_of("ensemble", data_dir="/d", n_train="0") == "parameter 'n_train' must be at least 1 (or all), got 0"


# ---- a command's own rules between fields ---------------------------------------------------------

@pytest.mark.parametrize("command, given, fragment", [
    ("sweep", {"heartbeat_interval": "90"}, "grace_period > heartbeat_interval"),
    ("ensemble", {"n_test": "10"}, "give data_dir=<folder> too"),
    ("report", {"seeds": "1,1"}, "lists a seed twice"),
    ("report", {"from": "abc", "seeds": "1"}, "drop ['seeds']"),
])
def test_cross_field_rules_stay_with_their_command(command, given, fragment):
    assert fragment in error_of(command, **given)


def test_help_shows_each_option_with_its_default_choices_and_bound(capsys):
    assert cli.main(["sweep", "--help"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^  pruner=median +median \| hyperband \| none; ", printed, re.M), printed
    assert re.search(r"^  n_trials=20 +≥ 1; complete \+ pruned trials", printed, re.M), printed
    assert re.search(r"^  name=value … +any training parameter, fixed for every trial", printed, re.M), printed
