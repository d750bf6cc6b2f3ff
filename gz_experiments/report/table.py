"""The report's results table: one row per approach (the mean over its seeds), the report's own
figure beside ours, and the markdown, CSV and parent-run metrics made from it."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

import experiments
from gz_experiments import tree

# Test RMSE in the report (resnet: fine-tuned from ImageNet weights); baseline and galaxy_cnn have none.
REPORT_RMSE = experiments.REPORT_RMSE
COLUMNS = ("approach", "runs", "test_rmse", "test_rmse_sd", "test_rmse_tta", "best_val_rmse", "best_epoch",
           "epochs", "train_seconds", "images_per_s", "report_test_rmse", "vs_report", "settings", "seeds",
           "reused", "run_ids")
QUESTIONS = tuple(f"Q{q}" for q in range(1, len(tree.QUESTIONS) + 1))


def table(results, competition: bool = True) -> pd.DataFrame:
    """RunResults -> one row per approach, in the order the approaches first appear. On data that
    are not the competition's (`competition=False`), nothing is set beside the report's figures."""
    rows = []
    for approach in dict.fromkeys(r.approach for r in results):
        runs = [r for r in results if r.approach == approach]
        row = _row(approach, runs)
        if not competition:
            row["report_test_rmse"] = row["vs_report"] = math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _row(approach: str, runs) -> dict:
    def mean(key: str, *fallbacks: str) -> float:
        values = [next((r.metrics[k] for k in (key, *fallbacks) if k in r.metrics), math.nan) for r in runs]
        return float(np.mean(values)) if values and not all(math.isnan(v) for v in values) else math.nan

    test = [r.metrics.get("test_rmse", math.nan) for r in runs]
    seconds, epochs = mean("train_seconds"), mean("epochs_run")
    n_train = np.mean([float(r.params.get("n_train_used", "nan")) for r in runs])
    report = REPORT_RMSE.get(approach, math.nan)
    return {
        "approach": approach, "runs": len(runs), "test_rmse": float(np.mean(test)),
        "test_rmse_sd": float(np.std(test, ddof=1)) if len(runs) > 1 else math.nan,
        "test_rmse_tta": mean("test_rmse_tta"), "best_val_rmse": mean("best_val_rmse", "val_rmse"),
        "best_epoch": mean("best_epoch"), "epochs": epochs, "train_seconds": seconds,
        "images_per_s": n_train * epochs / seconds if seconds > 0 else math.nan,
        "report_test_rmse": report, "vs_report": float(np.mean(test)) - report,
        "settings": runs[0].settings,
        "seeds": ",".join(r.params.get("seed", "") for r in runs) if approach != "baseline" else "",
        "reused": ",".join(r.label for r in runs if r.reused),
        "run_ids": " ".join(r.run_id for r in runs),
    }


def question_matrix(results) -> pd.DataFrame:
    """Per-question test RMSE (approach × Q1…Q11), the mean over an approach's seeds."""
    rows = {}
    for approach in dict.fromkeys(r.approach for r in results):
        runs = [r for r in results if r.approach == approach]
        rows[approach] = [np.mean([r.metrics.get(f"test_rmse_q{q}", math.nan) for r in runs])
                          for q in range(1, len(QUESTIONS) + 1)]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(QUESTIONS))


def parent_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """`test_rmse/<approach>` (and with TTA): report runs compare with each other in the UI."""
    metrics = {}
    for row in frame.itertuples():
        for name in ("test_rmse", "test_rmse_tta"):
            value = getattr(row, name)
            if not math.isnan(value):
                metrics[f"{name}/{row.approach}"] = value
    return metrics


def split_line(results) -> str:
    """The split every row was scored on, as the training runs logged it."""
    trained = next((r for r in results if "n_train_used" in r.params), None)
    if trained is None:
        first = results[0].params
        return f"split: n_train {first.get('n_train')}, n_val {first.get('n_val')}, n_test {first.get('n_test')}"
    p = trained.params
    return (f"split: {p.get('n_train_used')} train / {p.get('n_val_used')} val / {p.get('n_test_used')} test "
            f"galaxies, split_seed {p.get('split_seed', '?')}")


HEADERS = {"approach": "approach", "test_rmse": "test RMSE", "test_rmse_tta": "with TTA",
           "best_val_rmse": "best val RMSE", "best_epoch": "best epoch", "epochs": "epochs",
           "train_seconds": "training time", "images_per_s": "images/s", "report_test_rmse": "report",
           "vs_report": "ours − report", "settings": "settings"}


SYNTHETIC_NOTE = ("**Synthetic data**, not the competition's galaxies: the numbers compare these approaches "
                  "with each other only; the report's figures are left out, as they were measured on other data.")


def markdown(frame: pd.DataFrame, split: str, missing: list[str] = (), competition: bool = True) -> str:
    headers = HEADERS if competition else {k: v for k, v in HEADERS.items()
                                           if k not in ("report_test_rmse", "vs_report")}
    about = (f"Test RMSE over the 37 vote fractions; {split}. `report`: the report's test RMSE (its ResNet was "
             f"fine-tuned from ImageNet weights); `settings`: where a run departs from its approach's "
             f"configuration." if competition else
             f"{SYNTHETIC_NOTE}\n\nTest RMSE over the 37 vote fractions; {split}. `settings`: where a run "
             f"departs from its approach's configuration.")
    lines = ["# Results", "", about, "",
             "| " + " | ".join(headers.values()) + " |", "|" + "---|" * len(headers)]
    for row in frame.to_dict("records"):
        lines.append("| " + " | ".join(_cell(key, row) for key in headers) + " |")
    notes = [f"- {row['approach']}: mean of {row['runs']} runs (seeds {row['seeds']}), test RMSE sd "
             f"{row['test_rmse_sd']:.4f}" for row in frame.to_dict("records") if row["runs"] > 1]
    notes += [f"- {row['approach']}: reused finished runs ({row['reused']})"
              for row in frame.to_dict("records") if row["reused"]]
    notes += [f"- not finished, left out: {', '.join(missing)}"] if missing else []
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _cell(key: str, row: dict) -> str:
    value = row[key]
    if isinstance(value, str):
        return value or "—"
    if value is None or math.isnan(value):
        return "—"
    if key == "train_seconds":
        return duration(value)
    if key in ("best_epoch", "epochs"):
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if key == "images_per_s":
        return f"{value:.1f}"
    if key == "vs_report":
        return f"{value:+.4f}"
    return f"{value:.4f}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"
