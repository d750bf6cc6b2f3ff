"""The images an ensemble is scored on: its members' common test split, read back from each member
run's `split.csv` and `data_path`; or, with `data_dir`, that folder (all of it, or a split of it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments import tree
from gz_experiments.data.source import open_source
from gz_experiments.data.split import split_ids
from gz_experiments.ensemble.members import EnsembleError, Member
from gz_experiments.ensemble.options import SplitChoice
from gz_experiments.tracking import store


@dataclass
class TestImages:
    data_path: str
    ids: np.ndarray                   # GalaxyIDs, sorted
    fingerprint: str | None = None    # the members' data fingerprint, when they share one
    val_ids: np.ndarray | None = None  # the validation split blend weights are fitted on; None: unknown

    def split_frame(self) -> pd.DataFrame:
        return pd.DataFrame({tree.ID_COLUMN: self.ids, "split": "test"})


def members_test_split(members: list[Member]) -> TestImages:
    """The one test split every member was scored on, or an error naming where they differ."""
    unknown = [m.name for m in members if m.run is None or "data_path" not in m.run.data.params]
    if unknown:
        raise EnsembleError(f"no training run with data_path and split.csv for {', '.join(unknown)}; "
                            f"give data_dir=<folder> to score the ensemble on that folder's images")
    # Resolved: runs made before data_path was logged absolute may name one folder two ways.
    paths = {m.name: str(Path(m.run.data.params["data_path"]).resolve()) for m in members}
    if len(set(paths.values())) > 1:
        listed = "; ".join(f"{name}: {path}" for name, path in paths.items())
        raise EnsembleError(f"the members were trained on different data ({listed}); ensemble models of one "
                            f"data set, or give data_dir=<folder> to score them all on that folder")
    splits = {m.name: _split_ids(m) for m in members}
    tests = {name: ids["test"] for name, ids in splits.items()}
    first_name, first = next(iter(tests.items()))
    differing = [name for name, ids in tests.items() if not np.array_equal(ids, first)]
    if differing:
        raise EnsembleError(f"the members' test splits differ ({', '.join(differing)} vs {first_name}): their "
                            f"n_train/n_val/n_test or split seed differ, so some were trained on images others are "
                            f"tested on; train them on one split, or give data_dir=<folder> (and its split)")
    prints = {m.run.data.params.get("data_fingerprint") for m in members}
    vals = [ids["val"] for ids in splits.values()]
    shared_val = vals[0] if all(np.array_equal(v, vals[0]) for v in vals) and len(vals[0]) else None
    return TestImages(next(iter(paths.values())), first, prints.pop() if len(prints) == 1 else None, shared_val)


def _split_ids(member: Member) -> dict[str, np.ndarray]:
    try:
        frame = pd.read_csv(store.download(run_id=member.run.info.run_id, path="split.csv"))
    except (*store.ReadError, pd.errors.ParserError) as error:
        raise EnsembleError(f"the split of {member.name} cannot be read ({error}); "
                            f"give data_dir=<folder> to score the ensemble on that folder's images") from None
    return {name: np.sort(frame.loc[frame["split"] == name, tree.ID_COLUMN].to_numpy(np.int64))
            for name in ("val", "test")}


def folder_test_split(data_dir: str, choice: SplitChoice | None) -> TestImages:
    """Every labelled image of `data_dir`, or the test part of `choice`'s split (as training draws it)."""
    source = open_source(Path(data_dir).expanduser())
    if choice is None:
        return TestImages(str(source.root), np.sort(source.labels.index.to_numpy(np.int64)))
    ids = split_ids(source.labels.index, choice.n_train, choice.n_val, choice.n_test, choice.split_seed,
                    where=str(source.root))
    return TestImages(str(source.root), np.sort(np.asarray(ids["test"], np.int64)),
                      val_ids=np.sort(np.asarray(ids["val"], np.int64)) if len(ids["val"]) else None)
