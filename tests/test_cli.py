"""The one CLI, in-process: one option parser for every command, user errors (`GzError`) as one
`error:` line and exit 2, bugs as tracebacks; places that can't be written named before any work;
param logging that leaves `mlflow run`'s own -P values alone; progress fit for a log file."""
from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from gz_experiments import cli
from gz_experiments.tracking.recorder import Recorder
from gz_experiments.errors import ConfigError, GzError

LABELS = "training_solutions_rev1.csv"


def error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one `error:` line on stderr."""
    assert cli.main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_one_parser_reads_key_value_and_mlflow_style_tokens():
    tokens = ["epochs=3", "--n-train", "all", "--seed=7", "filters[1]=96"]
    assert cli.parse_overrides(tokens) == {"epochs": "3", "n_train": "all", "seed": "7", "filters[1]": "96"}
    with pytest.raises(ConfigError, match="--seed needs a value"):
        cli.parse_overrides(["--seed"])
    with pytest.raises(ConfigError, match="expected key=value"):
        cli.parse_overrides(["epochs"])


def test_every_command_is_registered_in_the_cli(capsys):
    assert set(cli.COMMANDS) == {"train", "baseline", "evaluate", "predict", "sweep", "report", "ensemble", "synthetic",
                                 "ui"}
    assert cli.main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert all(f"  {name} " in printed for name in cli.COMMANDS)


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "unknown command 'bogus'"),
    (["evaluate", "colour=red"], "evaluate: unknown parameter 'colour'; missing 'model_uri', 'data_dir'"),
    (["evaluate", "model_uri=m", "data_dir=d", "tta=maybe"], "'tta' must be true or false"),
    (["train"], "train needs an approach first"),
    (["train", "cnn_cropped", "crop=all"], "'crop' must be a whole number or 'none'"),
    (["synthetic", "n=0"], "parameter 'n' must be at least 1, got 0"),
])
def test_bad_options_are_one_error_line(capsys, argv, message):
    assert message in error_line(capsys, argv)


def test_only_user_errors_are_one_line_a_bug_keeps_its_traceback(monkeypatch, capsys):
    class DataError(ValueError):   # e.g. a library's own DataError: not ours, so a bug to show
        pass

    def broken(tokens):
        raise DataError("deep inside a library")
    monkeypatch.setattr("gz_experiments.commands.train.run", broken)
    with pytest.raises(DataError):
        cli.main(["train", "cnn_cropped"])

    def user_error(tokens):
        raise GzError("what to do")
    monkeypatch.setattr("gz_experiments.commands.train.run", user_error)
    assert error_line(capsys, ["train", "cnn_cropped"]) == "error: what to do"


def test_every_user_error_class_is_a_gz_error():
    from gz_experiments.config import ConfigError as ConfigErrorOfConfig
    from gz_experiments.data.images import ImageError
    from gz_experiments.data.source import DataError
    from gz_experiments.search import SearchSpaceError
    from gz_experiments.sweep import SweepError
    from gz_experiments.models.resnet import WeightsError
    assert ConfigErrorOfConfig is ConfigError
    assert all(issubclass(c, GzError) for c in (DataError, ImageError, WeightsError, SearchSpaceError, SweepError))


def test_evaluate_of_a_model_that_does_not_exist_is_one_error_line_and_no_run(capsys, synthetic_dir):
    line = error_line(capsys, ["evaluate", "model_uri=runs:/0123456789abcdef/model", f"data_dir={synthetic_dir}"])
    assert "model_uri 'runs:/0123456789abcdef/model' cannot be loaded" in line
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []   # validated first


@pytest.mark.parametrize("argv, named", [
    (["predict", "model_uri=models:/nosuch/1", "images={data}"], "model_uri"),
    (["predict", "model_uri=models:/nosuch/1", "images=/no/such/folder"], "images"),
    (["evaluate", "model_uri=models:/nosuch/1", "data_dir=/no/such/folder"], "data_dir"),
])
def test_a_bad_option_of_evaluate_or_predict_leaves_no_failed_run(capsys, synthetic_dir, argv, named):
    line = error_line(capsys, [token.format(data=synthetic_dir) for token in argv])
    assert named in line, line
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


# ---- places that must be writable ---------------------------------------------------------------

@pytest.fixture
def a_file(tmp_path) -> Path:
    """A plain file: no folder can be made under it, whoever runs the test (root included)."""
    path = tmp_path / "a-file"
    path.write_text("")
    return path


def test_unwritable_cache_is_named_before_any_work(capsys, monkeypatch, a_file, synthetic_dir):
    monkeypatch.setenv("GZ_CACHE_DIR", str(a_file / "cache"))
    line = error_line(capsys, ["baseline", f"data_dir={synthetic_dir}"])
    assert f"the image cache GZ_CACHE_DIR {a_file / 'cache'} cannot be written" in line
    assert "set GZ_CACHE_DIR to a writable folder" in line


def test_unwritable_tracking_database_is_named(capsys, monkeypatch, a_file, synthetic_dir):
    uri = f"sqlite:///{a_file / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    line = error_line(capsys, ["baseline", f"data_dir={synthetic_dir}"])
    assert f"MLflow tracking database {a_file / 'mlflow.db'}" in line and "set MLFLOW_TRACKING_URI" in line


def test_unwritable_artifact_location_is_named(capsys, monkeypatch, a_file, synthetic_dir):
    mlflow.create_experiment("nowhere", artifact_location=str(a_file / "artifacts"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "nowhere")
    line = error_line(capsys, ["baseline", f"data_dir={synthetic_dir}"])
    assert f"the MLflow artifact location {a_file / 'artifacts'} cannot be written" in line


# ---- messages about the data --------------------------------------------------------------------

def test_a_header_only_csv_says_so_and_does_not_suggest_n_train_all(capsys, data_copy):
    header = (data_copy / LABELS).read_text().splitlines()[0]
    (data_copy / LABELS).write_text(header + "\n")
    line = error_line(capsys, ["baseline", f"data_dir={data_copy}"])
    assert "holds only the header" in line and "n_train=all" not in line


def test_too_small_a_set_suggests_n_train_all_only_when_it_helps():
    from gz_experiments.data.source import DataError
    from gz_experiments.data.split import split_ids
    with pytest.raises(DataError, match="use n_train=all"):
        split_ids(range(10), 8, 2, 2, seed=0)
    with pytest.raises(DataError) as error:
        split_ids(range(10), None, 6, 6, seed=0)
    assert "n_train=all" not in str(error.value).split(";")[-1]


def test_an_unreadable_image_is_named_by_its_file_not_a_buffer(data_copy):
    from gz_experiments.data.cache import load_or_build
    from gz_experiments.data.source import DataError, open_source
    source = open_source(data_copy)
    victim = sorted(source.images.ids)[0]
    (data_copy / "images_training_rev1" / f"{victim}.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError) as error:
        load_or_build(source.images, sorted(source.images.ids), 32, None, progress=False)
    assert f"{victim}.jpg" in str(error.value) and "BytesIO" not in str(error.value)


# ---- logging ------------------------------------------------------------------------------------

def test_params_mlflow_run_logged_are_left_to_it_and_only_on_its_run():
    with mlflow.start_run() as launched:
        mlflow.log_param("n_train", "all")   # what `mlflow run -P n_train=all` logs first
        Recorder(launched.info.run_id, launched.info.experiment_id).params({"n_train": None, "seed": 42})
    with mlflow.start_run() as other:
        Recorder(other.info.run_id, other.info.experiment_id).params({"n_train": 96, "seed": 42, "tta": True})
    assert mlflow.get_run(launched.info.run_id).data.params == {"n_train": "all", "seed": "42"}
    assert mlflow.get_run(other.info.run_id).data.params == {"n_train": "96", "seed": "42", "tta": "true"}



def test_resnet_weights_are_checked_before_any_data_are_generated(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GZ_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["train", "resnet", "weights=/nowhere/resnet50.weights.h5"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "synthetic").exists()   # nothing generated before the check


def test_training_on_the_synthetic_default_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    import experiments
    from gz_experiments.data.dataset import with_data_folder
    monkeypatch.setattr("gz_experiments.data.dataset.resolve_data_dir", lambda data: tmp_path / "generated")
    config = with_data_folder(experiments.load("cnn_cropped").CONFIG)
    [line] = [l for l in capsys.readouterr().out.splitlines() if "synthetic" in l]
    assert "not the competition's" in line and "data_dir=<folder>" in line
    assert config.data.data_dir == str(tmp_path / "generated")


def test_every_approach_has_an_mlproject_entry_point():
    import experiments
    import yaml
    from conftest import PROJECT_ROOT
    entries = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())["entry_points"]
    for approach in experiments.APPROACHES:
        assert entries[approach]["command"] == f"python -m gz_experiments train {approach}", approach
    assert set(experiments.REPORT_APPROACHES) == set(experiments.REPORT_RMSE) and \
        experiments.REPORT_APPROACHES == ("cnn_full", "cnn_cropped", "cnn_slim_head", "resnet")
