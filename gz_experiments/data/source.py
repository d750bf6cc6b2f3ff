"""Read the competition layout — `training_solutions_rev1.csv` and `images_training_rev1/<id>.jpg`,
or the same as the zips Kaggle serves — and validate the labels before anything trains on them."""
from __future__ import annotations

import hashlib
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments import tree
from gz_experiments.data.images import FRAME, preprocess
from gz_experiments.errors import GzError

LABELS_NAME = "training_solutions_rev1"
TRAIN_IMAGES = "images_training_rev1"
TEST_IMAGES = "images_test_rev1"
_IMAGE_NAME = re.compile(r"(?:^|/)(\d{1,12})\.jpg$")   # what `image_name` writes, inside a folder or zip


def image_name(galaxy_id: int) -> str:
    """The competition's file name of a galaxy's image: `<GalaxyID>.jpg`."""
    return f"{int(galaxy_id)}.jpg"


class DataError(GzError, ValueError):
    """Bad input data; the message names the file or rows, how many are bad, and what to do."""


def _examples(items, k: int = 5) -> str:
    items = list(items)
    more = f" … and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(map(str, items[:k])) + more


class ImageStore:
    """The images of one folder or zip, addressed by GalaxyID only: no path is built from raw input."""

    def __init__(self, root: Path, name: str):
        self.folder, self.zip_path = root / name, root / f"{name}.zip"
        self._local = threading.local()   # ZipFile handles are not safe to share across threads
        if self.folder.is_dir():
            names = [p.name for p in self.folder.iterdir()]
            self._members = {int(m.group(1)): m.group(0).lstrip("/") for n in names if (m := _IMAGE_NAME.search(n))}
        elif self.zip_path.is_file():
            with zipfile.ZipFile(self.zip_path) as z:
                infos = [i for i in z.infolist() if not i.is_dir()]
            self._members = {int(m.group(1)): i.filename for i in infos if (m := _IMAGE_NAME.search(i.filename))}
            self._crc = {int(m.group(1)): i.CRC for i in infos if (m := _IMAGE_NAME.search(i.filename))}
        else:
            raise DataError(f"no images: neither {self.folder} nor {self.zip_path} exists; "
                            f"download them from the Galaxy Zoo challenge page or point data_dir elsewhere")

    @property
    def ids(self) -> set[int]:
        return set(self._members)

    def describe(self, galaxy_id: int) -> str:
        if self.folder.is_dir():
            return str(self.folder / self._members[galaxy_id])
        return f"{self.zip_path}:{self._members[galaxy_id]}"

    def read(self, galaxy_id: int) -> bytes:
        if self.folder.is_dir():
            return (self.folder / self._members[int(galaxy_id)]).read_bytes()
        if getattr(self._local, "zip", None) is None:
            self._local.zip = zipfile.ZipFile(self.zip_path)
        return self._local.zip.read(self._members[int(galaxy_id)])

    def as_loaded(self, ids) -> np.ndarray:
        """uint8 (n, 424, 424, 3): these galaxies' whole frames, decoded but neither cropped nor
        resized (the cache holds only the network's input): what figures show as the original."""
        return np.stack([preprocess(self.read(i), FRAME) for i in ids])

    def fingerprint(self, ids) -> str:
        """Content hash of the given images (the zip's CRCs, else the bytes): the cache key."""
        digest = hashlib.blake2b(digest_size=16)
        for galaxy_id in sorted(int(i) for i in ids):
            content = self._crc[galaxy_id].to_bytes(4, "little") if not self.folder.is_dir() else self.read(galaxy_id)
            digest.update(galaxy_id.to_bytes(8, "little") + hashlib.blake2b(content, digest_size=16).digest())
        return digest.hexdigest()


def _labels_file(root: Path):
    csv, zipped = root / f"{LABELS_NAME}.csv", root / f"{LABELS_NAME}.zip"
    if csv.is_file():
        return csv, csv
    if zipped.is_file():
        with zipfile.ZipFile(zipped) as z:
            inner = [n for n in z.namelist() if n.endswith(".csv")]
        if len(inner) != 1:
            raise DataError(f"{zipped} should hold exactly one CSV, found {inner or 'none'}")
        return zipped, zipped
    raise DataError(f"no labels: neither {csv} nor {zipped} exists; download training_solutions_rev1 "
                    f"from the Galaxy Zoo challenge, or use data_dir=synthetic")


def read_labels(root: Path) -> tuple[pd.DataFrame, str]:
    """Validated labels (GalaxyID int64 index, 37 float32 columns) and a hash of the file."""
    path, _ = _labels_file(root)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as error:  # pandas raises many types for unreadable CSVs
        raise DataError(f"{path}: cannot be read as CSV ({error})") from None
    _check_header(path, list(frame.columns))
    if frame.empty:
        raise DataError(f"{path}: holds only the header, no label rows; give the competition's file "
                        f"(61,578 galaxies) or a folder made by `python -m gz_experiments synthetic`")
    ids = _check_ids(path, frame[tree.ID_COLUMN])
    values = _check_values(path, frame[list(tree.CLASS_COLUMNS)])
    labels = pd.DataFrame(values, index=pd.Index(ids, name=tree.ID_COLUMN), columns=tree.CLASS_COLUMNS)
    return labels, hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def _check_header(path, columns: list[str]) -> None:
    missing = [c for c in tree.LABELS_HEADER if c not in columns]
    extra = [c for c in columns if c not in tree.LABELS_HEADER]
    if missing or extra:
        raise DataError(f"{path}: wrong columns — missing {len(missing)} ({_examples(missing) or 'none'}), "
                        f"unexpected {len(extra)} ({_examples(extra) or 'none'}); the header must be "
                        f"GalaxyID,Class1.1,…,Class11.6 as in the competition's file")


def _check_ids(path, raw: pd.Series) -> np.ndarray:
    good = raw.str.fullmatch(r"\s*\d{1,12}\s*")
    if not good.all():
        rows = [f"row {i + 2} ({v!r})" for i, v in raw[~good].items()]
        raise DataError(f"{path}: {len(rows)} GalaxyIDs are not positive integers: {_examples(rows)}")
    ids = raw.astype(np.int64).to_numpy()
    duplicated = pd.Series(ids).duplicated(keep=False)
    if duplicated.any():
        dups = sorted(set(ids[duplicated.to_numpy()]))
        raise DataError(f"{path}: {len(dups)} GalaxyIDs appear more than once: {_examples(dups)}; "
                        f"each galaxy must have one label row")
    return ids


def _check_values(path, raw: pd.DataFrame) -> np.ndarray:
    values = raw.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad_rows):
        raise DataError(f"{path}: {len(bad_rows)} rows have non-numeric or missing labels: "
                        f"{_examples(f'row {r + 2}' for r in bad_rows)}; fix or remove those rows")
    out_of_range = np.flatnonzero(((values < 0) | (values > 1)).any(axis=1))
    if len(out_of_range):
        raise DataError(f"{path}: {len(out_of_range)} rows have vote fractions outside [0, 1]: "
                        f"{_examples(f'row {r + 2}' for r in out_of_range)}")
    return values.astype(np.float32)


@dataclass
class Source:
    """A validated competition-layout data set: labels, the images they point at, a fingerprint."""
    root: Path
    labels: pd.DataFrame
    images: ImageStore
    labels_hash: str


def open_source(data_dir: str | Path) -> Source:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data_dir {str(data_dir)!r} is not a folder; give the folder holding "
                        f"training_solutions_rev1.csv (or .zip) and images_training_rev1/ (or .zip), "
                        f"or data_dir=synthetic")
    labels, labels_hash = read_labels(root)
    images = ImageStore(root, TRAIN_IMAGES)
    missing = sorted(set(labels.index) - images.ids)
    if missing:
        raise DataError(f"{len(missing)} of {len(labels)} label rows have no image in {images.folder}"
                        f"{'' if images.folder.is_dir() else '.zip'}: GalaxyIDs {_examples(missing)}; "
                        f"restore the images or remove those rows")
    return Source(root, labels, images, labels_hash)
