"""From a `DataConfig` to cached, split arrays: the one entry into the data layer for training."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments import tree
from gz_experiments.config import DataConfig, override
from gz_experiments.data.cache import cache_root, load_or_build
from gz_experiments.data.source import Source, open_source
from gz_experiments.data.split import SPLITS, split_ids

SYNTHETIC = "synthetic"


@dataclass
class Split:
    ids: np.ndarray
    images: np.ndarray    # uint8 (n, size, size, 3), possibly memory-mapped
    labels: np.ndarray    # float32 (n, 37)

    def __len__(self):
        return len(self.ids)


@dataclass
class PreparedData:
    train: Split
    val: Split
    test: Split
    source: Source
    fingerprint: str           # labels + every image used + preprocessing: equal ⇒ same inputs
    bad: dict[int, str]        # images skipped with skip_bad_images

    def split_frame(self) -> pd.DataFrame:
        return split_frame({name: getattr(self, name).ids for name in SPLITS})


@dataclass
class Selection:
    """A validated data set and the seeded split of its GalaxyIDs, before any image is decoded."""
    source: Source
    ids: dict[str, np.ndarray]   # split name -> GalaxyIDs

    def labels(self, split: str) -> np.ndarray:
        """float32 (n, 37) vote fractions of one split, in its id order."""
        return self.source.labels.loc[self.ids[split]].to_numpy(np.float32)


def split_frame(ids: dict[str, np.ndarray]) -> pd.DataFrame:
    """GalaxyID → split, the artifact that rebuilds any run's test set."""
    rows = [(int(i), name) for name in SPLITS for i in ids[name]]
    return pd.DataFrame(rows, columns=[tree.ID_COLUMN, "split"])


def resolve_data_dir(cfg: DataConfig, seed: int = 0) -> Path:
    """`synthetic` means the built-in data set, generated once (deterministically) into the cache."""
    if cfg.data_dir != SYNTHETIC:
        return Path(cfg.data_dir).expanduser()
    from gz_experiments import synthetic
    n = (cfg.n_train or 8000) + cfg.n_val + cfg.n_test
    return synthetic.generate(cache_root() / "synthetic" / f"n{n}-seed{seed}", n, seed=seed)


def select(cfg: DataConfig) -> Selection:
    """The labels and split `prepare` uses, for what needs no image (the mean baseline)."""
    source = open_source(resolve_data_dir(cfg))
    return Selection(source, split_ids(source.labels.index, cfg.n_train, cfg.n_val, cfg.n_test, cfg.split_seed,
                                       where=str(source.root)))


def prepare(cfg: DataConfig, *, progress: bool = True) -> PreparedData:
    selection = select(cfg)
    source, ids = selection.source, selection.ids
    wanted = np.concatenate([ids[name] for name in SPLITS])
    cached = load_or_build(source.images, wanted, cfg.image_size, cfg.crop, cfg.skip_bad_images, progress)
    splits, start = {}, 0
    for name in SPLITS:   # the cache holds the splits in SPLITS' order: each split is a slice
        rows = slice(start, start + len(ids[name]))
        start = rows.stop
        splits[name] = _split(cached.ids[rows], cached.images[rows], source, cached.bad)
    if cfg.refit:   # train and val are adjacent in the cache: one slice, no copy
        seen = slice(0, len(ids["train"]) + len(ids["val"]))
        splits["train"] = _split(cached.ids[seen], cached.images[seen], source, cached.bad)
    fingerprint = hashlib.blake2b(f"{source.labels_hash}:{cached.path.stem}".encode(), digest_size=8).hexdigest()
    return PreparedData(**splits, source=source, fingerprint=fingerprint, bad=cached.bad)


def _split(ids: np.ndarray, images: np.ndarray, source: Source, bad: dict[int, str]) -> Split:
    if bad:   # rare (skip_bad_images): copy the good rows rather than train on blank frames
        good = np.array([int(i) not in bad for i in ids], dtype=bool)
        ids, images = ids[good], np.asarray(images[good])
    return Split(ids, images, source.labels.loc[ids].to_numpy(np.float32))


def with_data_folder(config):
    """A training config whose `data_dir=synthetic` (the built-in data set) is generated (once, into
    the cache) and named by its folder, so the library is handed a folder like any other; says so."""
    if config.data.data_dir != SYNTHETIC:
        return config
    data = config.data
    print(f"data: the built-in synthetic set ({(data.n_train or 8000) + data.n_val + data.n_test} generated galaxies, "
          f"not the competition's); give data_dir=<folder> for real data")
    return override(config, data_dir=str(resolve_data_dir(config.data)))
