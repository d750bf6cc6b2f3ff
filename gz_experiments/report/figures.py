"""The report run's figures: test RMSE per approach against the report's, per-question RMSE
against the baseline, and every approach's validation curve on one plot."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")   # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

BASELINE = "baseline"


def results_figure(frame: pd.DataFrame):
    """Bars: our test RMSE (and with TTA) per approach; red marks: the report's figure."""
    figure, axis = plt.subplots(figsize=(1.6 * len(frame) + 3, 4.5))
    x = np.arange(len(frame))
    ours = axis.bar(x - 0.18, frame["test_rmse"], 0.36, label="ours", color="tab:blue",
                    yerr=frame["test_rmse_sd"].fillna(0), capsize=3)
    axis.bar(x + 0.18, frame["test_rmse_tta"].fillna(0), 0.36, label="ours, with TTA", color="tab:cyan")
    axis.bar_label(ours, fmt="%.4f", fontsize=8, padding=2)
    reported = frame["report_test_rmse"].notna()
    if reported.any():
        axis.scatter(x[reported] - 0.18, frame["report_test_rmse"][reported], marker="_", s=900, linewidths=3,
                     color="tab:red", zorder=3, label="report")
    axis.set_xticks(x, frame["approach"])
    axis.set_ylabel("test RMSE")
    axis.set_title("test RMSE per approach (lower is better)")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return figure


def per_question_figure(matrix: pd.DataFrame):
    """Heatmap approach × question; colour is the RMSE relative to the baseline's for that question
    (below 1: better than predicting the mean) when the baseline is in the table."""
    relative = BASELINE in matrix.index
    colour = matrix / matrix.loc[BASELINE] if relative else matrix
    figure, axis = plt.subplots(figsize=(0.8 * matrix.shape[1] + 3, 0.55 * len(matrix) + 1.8))
    image = axis.imshow(colour.to_numpy(float), cmap="RdYlGn_r", aspect="auto",
                        **({"vmin": 0.5, "vmax": 1.5} if relative else {}))
    for (i, j), value in np.ndenumerate(matrix.to_numpy(float)):
        if not math.isnan(value):
            axis.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7)
    axis.set_xticks(range(matrix.shape[1]), matrix.columns)
    axis.set_yticks(range(len(matrix)), matrix.index)
    figure.colorbar(image, ax=axis, label="RMSE / baseline's RMSE" if relative else "RMSE")
    axis.set_title("per-question test RMSE" + (" (colour: relative to the baseline)" if relative else ""))
    return figure


def curves_figure(results):
    """Validation RMSE per epoch, one line per run; the baseline's as a dashed level."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    colours = {}
    for result in results:
        if result.approach == BASELINE or not result.val_curve:
            continue
        colour = colours.setdefault(result.approach, f"C{len(colours)}")
        first = sum(r.approach == result.approach for r in results[:results.index(result)]) == 0
        axis.plot(np.arange(1, len(result.val_curve) + 1), result.val_curve, "o-", ms=3, color=colour,
                  label=result.approach if first else None)
    for result in results:
        level = result.metrics.get("best_val_rmse", result.metrics.get("val_rmse"))
        if result.approach == BASELINE and level is not None:
            axis.axhline(level, ls="--", color="grey", label="baseline (mean)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation RMSE")
    axis.set_title("validation RMSE per epoch")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend()
    return figure
