"""The ensemble's options, read and checked before any model is downloaded or TensorFlow loads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gz_experiments.config import DataConfig
from gz_experiments.errors import ConfigError
from gz_experiments.options import option, parse


@dataclass(frozen=True)
class SplitChoice:
    """With `data_dir`: score on the test part of this split instead of every image."""
    n_train: int | None = option(DataConfig.n_train, min=1)   # training's defaults
    n_val: int = option(DataConfig.n_val, min=0)
    n_test: int = option(DataConfig.n_test, min=1)
    split_seed: int = option(DataConfig.split_seed, min=0)


@dataclass(frozen=True)
class EnsembleOptions:
    """One model averaging logged models, logged in a run of its own and scored beside each member."""
    models: tuple[str, ...] = option((), "member model URIs, comma-separated (none: the top_k best runs of "
                                                "approach in experiment)")
    experiment: str | None = option(None, "the experiment whose runs are chosen from (and the ensemble's)")
    approach: str | None = option(None, "the approach whose runs are chosen (lowest best_val_rmse)")
    top_k: int = option(3, "how many of them", min=1)
    data_fingerprint: str | None = option(None, "only runs on these data (none: the best run's)")
    data_dir: str | None = option(None, "score on this folder's labelled images instead of the members' test split")
    split: SplitChoice | None = option(None, "with data_dir: only the test part of this split (as training "
                                                   "draws it)")
    tta: bool = option(True, "also test_rmse_tta: the mean over 8 dihedral views")
    register: str | None = option(None, "register the ensemble under this model name")
    skip_bad_images: bool = option(False, "leave unreadable images out (listed) instead of stopping")
    blend: Literal["fit", "mean"] = option("fit", "fit: convex weights with the lowest RMSE on the members' common validation "
                                                 "split; mean: 1/n each")

    def check(self) -> None:
        chosen = bool(self.experiment or self.approach)
        if bool(self.models) == chosen:
            raise ConfigError("give either models=<uri>,<uri>,… or experiment=<name> with approach=<approach>, "
                              "not both or neither")
        if chosen and not (self.experiment and self.approach):
            raise ConfigError("experiment=… and approach=… go together: the best runs of that approach in "
                              "that experiment")
        if self.models and len(set(self.models)) < max(2, len(self.models)):
            raise ConfigError(f"models needs at least 2 different model URIs; got {', '.join(self.models)}")
        if self.split is not None and not self.data_dir:
            raise ConfigError("n_train, n_val, n_test and split_seed choose a split of data_dir: "
                              "give data_dir=<folder> too")


def parse_options(given: dict[str, str]) -> EnsembleOptions:
    return parse(EnsembleOptions, given, "ensemble")
