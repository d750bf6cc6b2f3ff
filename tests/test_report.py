"""The report's pieces without training: options and plan (what is hashed, what is validated before
anything trains), which runs a rerun may reuse (real sqlite MLflow), the table, markdown and figures
built from fabricated metric dicts, `seeds=` parsing, and `split_seed` apart from `seed`."""
from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest

import experiments
from conftest import tiny_overrides
from gz_experiments.report import figures as report_figures, table as report_table
from gz_experiments.config import ConfigError, flat_params, override
from gz_experiments.data.dataset import prepare
from gz_experiments.data.split import split_ids
from gz_experiments.report.options import BASELINE, DEFAULT_APPROACHES, parse_options
from gz_experiments.report.plan import plan
from gz_experiments.report.runs import CONFIG_HASH_TAG, DATA_TAG, RunResult, find_finished, settings
from gz_experiments.commands.seeds import parse_seeds, split_seeds


# ---- options and plan -----------------------------------------------------------------------------

def test_default_report_is_the_baseline_and_the_reports_four():
    options, fixed = parse_options({"data_dir": "/data", "epochs": "5"})
    assert options.approaches == DEFAULT_APPROACHES == ("baseline", "cnn_full", "cnn_cropped", "cnn_slim_head", "resnet")
    jobs = plan(options, fixed)
    assert [j.label for j in jobs] == list(DEFAULT_APPROACHES)
    assert all(j.config.epochs == 5 and j.config.data.data_dir == "/data" for j in jobs)
    resnet = next(j for j in jobs if j.approach == "resnet")
    assert resnet.config == override(experiments.load("resnet").CONFIG, data_dir="/data", epochs=5)


def test_per_approach_parameters_and_seeds():
    options, fixed = parse_options({"approaches": "baseline,cnn_cropped,resnet", "seeds": "1,2",
                                    "epochs": "1", "resnet.weights": "none"})
    jobs = {j.label: j for j in plan(options, fixed)}
    assert set(jobs) == {"baseline", "cnn_cropped-seed1", "cnn_cropped-seed2", "resnet-seed1", "resnet-seed2"}
    assert jobs["resnet-seed2"].config.model.body.weights == "none" and jobs["resnet-seed2"].config.seed == 2
    assert not hasattr(jobs["cnn_cropped-seed1"].config.model.body, "weights")   # resnet.… is resnet's only
    assert jobs["cnn_cropped-seed1"].config_hash != jobs["cnn_cropped-seed2"].config_hash


@pytest.mark.parametrize("tokens, named", [
    ({"approaches": "cnn_cropped,alexnet"}, "approaches"),
    ({"approaches": "cnn_cropped,cnn_cropped"}, "approaches"),
    ({"approaches": "cnn_cropped", "resnet.weights": "none"}, "resnet.weights"),
    ({"seeds": "1,x"}, "seeds"),
    ({"seeds": "1,2", "seed": "3"}, "seed"),
    ({"from": "abc", "epochs": "2"}, "from"),
])
def test_bad_options_are_one_clear_error(tokens, named):
    with pytest.raises(ConfigError, match=named):
        parse_options(tokens)


def test_a_bad_value_for_one_approach_fails_before_anything_trains():
    options, fixed = parse_options({"approaches": "baseline,cnn_cropped", "cnn_cropped.dropout": "2"})
    with pytest.raises(ConfigError, match="cnn_cropped: .*dropout"):
        plan(options, fixed)


def test_configuration_hash_ignores_where_data_lives_but_not_what_is_trained():
    def job(**more):
        options, fixed = parse_options({"approaches": "cnn_cropped", **more})
        return plan(options, fixed)[0]
    base = job(data_dir="/a")
    assert job(data_dir="/moved/elsewhere").config_hash == base.config_hash   # data compared by fingerprint
    for changed in ({"epochs": "3"}, {"seed": "7"}, {"split_seed": "7"}, {"n_train": "50"}):
        assert job(data_dir="/a", **changed).config_hash != base.config_hash, changed
    baseline_jobs = plan(*parse_options({"approaches": "baseline", "seeds": "1,2,3", "epochs": "9"}))
    assert len(baseline_jobs) == 1 and "epochs" not in baseline_jobs[0].params   # the mean needs no training


# ---- reuse: only FINISHED runs with the same configuration and data -------------------------------

def test_only_a_finished_run_with_the_same_hash_and_data_is_reused():
    experiment = mlflow.set_experiment("reuse").experiment_id
    ids = {}
    for status, config_hash, data in (("FINISHED", "h1", "d1"), ("FAILED", "h2", "d1"), ("RUNNING", "h3", "d1"),
                                      ("KILLED", "h4", "d1"), ("FINISHED", "h1", "d2")):
        run = mlflow.MlflowClient().create_run(experiment, tags={CONFIG_HASH_TAG: config_hash, DATA_TAG: data})
        if status != "RUNNING":
            mlflow.MlflowClient().set_terminated(run.info.run_id, status)
        ids[(status, config_hash, data)] = run.info.run_id
    assert find_finished("h1", "d1") == ids[("FINISHED", "h1", "d1")]
    assert find_finished("h1", "d2") == ids[("FINISHED", "h1", "d2")]
    for config_hash in ("h2", "h3", "h4", "h9"):
        assert find_finished(config_hash, "d1") is None


# ---- table, markdown, figures from fabricated metric dicts ----------------------------------------

def result(approach, test, label=None, seed="42", tta=None, curve=(), reused=False, **params):
    metrics = {"test_rmse": test, **{f"test_rmse_q{q}": test + q / 1000 for q in range(1, 12)}}
    if approach == BASELINE:
        metrics["val_rmse"] = test + 0.01
    else:
        metrics.update(test_rmse_tta=tta or test - 0.001, best_val_rmse=min(curve or [test]),
                       best_epoch=float(np.argmin(curve or [test]) + 1), epochs_run=float(len(curve) or 1),
                       train_seconds=100.0)
        params = {"n_train_used": "1000", "n_val_used": "200", "n_test_used": "200", "seed": seed,
                  "split_seed": "42", **params}
    return RunResult(label or approach, approach, f"id-{label or approach}", reused, metrics, params, list(curve))


RESULTS = [
    result(BASELINE, 0.160, reused=True),
    result("cnn_cropped", 0.130, curve=[0.15, 0.14, 0.131], reused=True),
    result("resnet", 0.120, label="resnet-seed1", seed="1", curve=[0.14, 0.12]),
    result("resnet", 0.124, label="resnet-seed2", seed="2", curve=[0.15, 0.122]),
]


def test_table_has_one_row_per_approach_with_the_reports_figure_beside_ours():
    frame = report_table.table(RESULTS)
    assert list(frame["approach"]) == ["baseline", "cnn_cropped", "resnet"]
    cropped = frame.set_index("approach").loc["cnn_cropped"]
    assert cropped["report_test_rmse"] == 0.1369 and cropped["vs_report"] == pytest.approx(0.130 - 0.1369)
    assert cropped["images_per_s"] == pytest.approx(1000 * 3 / 100.0)
    assert cropped["best_val_rmse"] == 0.131 and cropped["best_epoch"] == 3 and cropped["reused"] == "cnn_cropped"
    resnet = frame.set_index("approach").loc["resnet"]
    assert resnet["runs"] == 2 and resnet["seeds"] == "1,2" and resnet["test_rmse"] == pytest.approx(0.122)
    assert resnet["test_rmse_sd"] == pytest.approx(np.std([0.120, 0.124], ddof=1))
    base = frame.set_index("approach").loc["baseline"]
    assert base["best_val_rmse"] == pytest.approx(0.17) and math.isnan(base["report_test_rmse"])
    assert report_table.parent_metrics(frame) == pytest.approx({
        "test_rmse/baseline": 0.160, "test_rmse/cnn_cropped": 0.130, "test_rmse_tta/cnn_cropped": 0.129,
        "test_rmse/resnet": 0.122, "test_rmse_tta/resnet": 0.121})


def test_markdown_names_the_split_reused_runs_and_missing_approaches():
    frame = report_table.table(RESULTS)
    text = report_table.markdown(frame, report_table.split_line(RESULTS), missing=["cnn_full"])
    assert "1000 train / 200 val / 200 test galaxies, split_seed 42" in text
    row = next(line for line in text.splitlines() if line.startswith("| cnn_cropped"))
    assert "| 0.1300 | 0.1290 | 0.1310 | 3 | 3 | 100 s | 30.0 | 0.1369 | -0.0069 |" in row
    assert "resnet: mean of 2 runs (seeds 1,2)" in text and "cnn_cropped: reused finished runs" in text
    assert "not finished, left out: cnn_full" in text
    assert report_table.duration(7800) == "2 h 10 min" and report_table.duration(600) == "10 min"


def test_figures_draw_every_approach(tmp_path):
    frame = report_table.table(RESULTS)
    matrix = report_table.question_matrix(RESULTS)
    assert matrix.shape == (3, 11) and matrix.loc["resnet", "Q1"] == pytest.approx(0.123)
    bars = report_figures.results_figure(frame)
    assert [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["baseline", "cnn_cropped", "resnet"]
    heat = report_figures.per_question_figure(matrix)
    assert heat.axes[0].images[0].get_array()[0].tolist() == pytest.approx([1.0] * 11)   # baseline / itself
    curves = report_figures.curves_figure(RESULTS)
    assert len(curves.axes[0].lines) == 3 + 1   # three runs' curves and the baseline's level
    for figure, name in ((bars, "r.png"), (heat, "q.png"), (curves, "c.png")):
        figure.savefig(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 10_000


def test_settings_name_where_a_run_departs_from_its_approach():
    params = {k: "none" if v is None else str(v) for k, v in flat_params(experiments.load("resnet").CONFIG).items()}
    assert settings("resnet", params) == ""
    assert settings("resnet", {**params, "weights": "none", "epochs": "5.0", "learning_rate": "1e-3",
                               "n_train": "5866"}) == "weights=none, epochs=5.0"
    assert settings(BASELINE, {"n_train": "5"}) == ""


# ---- seeds and split_seed -------------------------------------------------------------------------

def test_seeds_parse():
    assert parse_seeds("1, 2,3") == (1, 2, 3)
    for bad in ("", "1,1", "-1", "a"):
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)
    assert split_seeds({"seeds": "4,5", "seed": "42", "epochs": "1"}) == ({"epochs": "1"}, (4, 5))
    assert split_seeds({"epochs": "1"}) == ({"epochs": "1"}, ())


def test_split_seed_draws_the_split_and_seed_does_not(synthetic_dir):
    base = override(experiments.load("cnn_cropped").CONFIG, tiny_overrides(synthetic_dir))
    assert base.data.split_seed == 42 and flat_params(base)["split_seed"] == 42
    seed_1, seed_2, other_split = (prepare(override(base, **change).data, progress=False).split_frame()
                                   for change in ({"seed": 1}, {"seed": 2}, {"split_seed": 7}))
    pd.testing.assert_frame_equal(seed_1, seed_2)
    assert not seed_1.equals(other_split)
    # split_seed=42 (the default) is the split that seed=42 drew before split_seed existed
    ids = split_ids(pd.read_csv(synthetic_dir / "training_solutions_rev1.csv")["GalaxyID"], 96, 32, 32, seed=42)
    assert set(seed_1.query("split == 'test'")["GalaxyID"]) == set(ids["test"])
    with pytest.raises(ConfigError, match="split_seed"):
        override(base, split_seed=-1)


def test_missing_resnet_weights_fail_before_anything_trains(tmp_path):
    from gz_experiments.report.plan import check_weights
    from gz_experiments.models.resnet import WeightsError
    jobs = plan(*parse_options({"approaches": "baseline,cnn_cropped,resnet",
                                "resnet.weights": str(tmp_path / "missing.weights.h5")}))
    with pytest.raises((ConfigError, WeightsError), match="missing.weights.h5"):
        check_weights(jobs)
    check_weights([j for j in jobs if j.approach != "resnet"])   # the others need none
