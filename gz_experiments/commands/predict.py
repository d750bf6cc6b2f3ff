"""`predict`: a folder (or zip) of galaxy images → a CSV in the competition's submission format.

`GalaxyID` + the 37 columns in the training header's order, one row per image, sorted by GalaxyID.
Images are decoded and predicted a batch at a time, so the 79,975 images of `images_test_rev1`
never sit in memory at once. An unreadable image is never skipped silently: it is an error, or,
with `skip_bad_images=true`, a warning and a row in `<out>.errors.csv`.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments import tree
from gz_experiments.served import inputs
from gz_experiments.data.images import ImageError
from gz_experiments.progress import Progress
from gz_experiments.data.source import _IMAGE_NAME, TEST_IMAGES, DataError, ImageStore, _examples
from gz_experiments.errors import ConfigError
from gz_experiments.options import option


@dataclass(frozen=True)
class PredictOptions:
    """A submission CSV: GalaxyID + the 37 columns, one row per image."""
    model_uri: str = option(help="models:/<model_id> (printed by training), runs:/<run id>/model, "
                                    "models:/<name>/<version>, models:/<name>@champion or a folder")
    images: str = option(help="images_test_rev1/, images_test_rev1.zip, or the data_dir holding one")
    out: str = option("submission.csv", "the CSV written (whole, then renamed into place)")
    tta: bool = option(False, "predict the mean over 8 dihedral views (8 times the work)")
    batch_size: int = option(500, "images decoded and predicted at a time", min=1)
    skip_bad_images: bool = option(False, "predict the rest; unreadable images listed in <out>.errors.csv")


def run(options: PredictOptions) -> None:
    """`gz-experiments predict`: once the places results go are writable."""
    from gz_experiments.tracking.preflight import check_writable_places
    check_writable_places(None)
    predict(options.model_uri, options.images, options.out, tta=options.tta, batch_size=options.batch_size,
            skip_bad_images=options.skip_bad_images)


@dataclass
class Predictions:
    ids: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    bad: dict[int, str] = field(default_factory=dict)   # GalaxyID -> why it could not be read

    def frame(self) -> pd.DataFrame:
        values = np.concatenate(self.values) if self.values else np.zeros((0, tree.N_OUTPUTS), np.float32)
        frame = pd.DataFrame(values, columns=list(tree.CLASS_COLUMNS))
        frame.insert(0, tree.ID_COLUMN, np.asarray(self.ids, dtype=np.int64))
        return frame.sort_values(tree.ID_COLUMN, ignore_index=True)


def open_images(images: str | Path) -> ImageStore:
    """`images_test_rev1/`, `images_test_rev1.zip`, any folder of `<GalaxyID>.jpg`, or a data_dir holding one."""
    path = Path(images).expanduser()
    if path.is_file() and path.suffix == ".zip":
        store = ImageStore(path.parent, path.stem)
    elif path.is_dir() and ((path / TEST_IMAGES).is_dir() or (path / f"{TEST_IMAGES}.zip").is_file()):
        store = ImageStore(path, TEST_IMAGES)
    elif path.is_dir():
        store = ImageStore(path.parent, path.name)
    else:
        raise DataError(f"images {str(images)!r} is neither a folder nor a .zip; give images_test_rev1/, "
                        f"images_test_rev1.zip or the data_dir holding one")
    if not store.ids:
        raise DataError(f"images {str(images)!r} holds no <GalaxyID>.jpg files")
    _warn_about_ignored_files(store)
    return store


def _warn_about_ignored_files(store: ImageStore) -> None:
    """Files that are not `<GalaxyID>.jpg` get no row: say so rather than drop them unseen."""
    if store.folder.is_dir():
        names = [p.name for p in store.folder.iterdir() if not p.name.startswith(".")]
    else:
        with zipfile.ZipFile(store.zip_path) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir()]
    ignored = [n for n in names if not _IMAGE_NAME.search(n)]
    if ignored:
        warnings.warn(f"ignoring {len(ignored)} files not named <GalaxyID>.jpg: {_examples(ignored)}", stacklevel=3)


def _decode(store: ImageStore, ids, predictor, pool: ThreadPoolExecutor):
    """(frames of the readable images for `predictor`, their ids, {id: why} for the others)."""
    def one(galaxy_id):
        try:
            return inputs.decode(predictor, store.read(galaxy_id)), None
        except (ImageError, OSError, zipfile.BadZipFile) as error:   # BadZipFile: a member fails its CRC
            return None, str(error)
    frames, good, bad = [], [], {}
    for galaxy_id, (frame, why) in zip(ids, pool.map(one, ids)):
        if why is None:
            frames.append(frame)
            good.append(int(galaxy_id))
        else:
            bad[int(galaxy_id)] = why
    return inputs.stack(predictor, frames), good, bad


def predict_store(predictor, store: ImageStore, *, tta: bool = False, batch_size: int = 500,
                  skip_bad_images: bool = False, progress: bool = True) -> Predictions:
    """Every image of `store`, a batch at a time; the next batch decodes while this one predicts.

    Once an unreadable image turns up without `skip_bad_images`, the rest is only decoded, so the
    error can list every bad file without spending the model's time on a CSV nobody gets.
    """
    ids = sorted(store.ids)
    batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    result, done = Predictions(), 0
    bar = Progress(len(ids), "predicting") if progress else None
    with ThreadPoolExecutor(max_workers=1) as ahead, ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        def decode(batch):
            return ahead.submit(_decode, store, batch, predictor, pool)
        pending = decode(batches[0]) if batches else None
        for i, batch in enumerate(batches):
            frames, good, bad = pending.result()
            if i + 1 < len(batches):
                pending = decode(batches[i + 1])
            result.bad.update(bad)
            if skip_bad_images or not result.bad:
                result.values.append(np.asarray(predictor.predict_images(frames, tta=tta), np.float32))
                result.ids.extend(good)
            done += len(batch)
            if bar:
                bar.update(done)
    return result


def write_submission(result: Predictions, store: ImageStore, out: Path, skip_bad_images: bool) -> Path | None:
    """The CSV (written whole, then renamed: never a half-written submission) and, if any image
    was unreadable, `<out>.errors.csv` listing them; raises without `skip_bad_images`."""
    errors_path = out.with_name(f"{out.name}.errors.csv")
    if not result.bad:
        errors_path.unlink(missing_ok=True)   # a stale list from an earlier run would mislead
        errors_path = None
    else:
        rows = [(i, store.describe(i), why) for i, why in sorted(result.bad.items())]
        pd.DataFrame(rows, columns=[tree.ID_COLUMN, "file", "error"]).to_csv(errors_path, index=False)
        where = [f"{file} ({why})" for _, file, why in rows]
        message = (f"{len(rows)} of {len(store.ids)} images are unreadable: {_examples(where, 3)} "
                   f"(all listed in {errors_path})")
        if not skip_bad_images:
            raise DataError(f"{message}; replace them, or pass skip_bad_images=true to predict the rest")
        warnings.warn(f"{message}; they have no row in {out} (skip_bad_images=true)", stacklevel=2)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    result.frame().to_csv(tmp, index=False, float_format="%.6f")
    os.replace(tmp, out)
    return errors_path


def writable_output(out: str | Path) -> Path:
    """The resolved `out`, once a file can be written there (tried, then removed)."""
    path = Path(out).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"parameter 'out': {path} is a folder; give a file name, e.g. {path / 'submission.csv'}")
    probe = path.with_name(f".{path.name}.probe{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"parameter 'out': cannot write {path} ({error.strerror or error}); "
                          f"give a path in a writable folder") from None
    return path


def predict(model_uri: str, images: str, out: str = "submission.csv", *, tta: bool = False,
            batch_size: int = 500, skip_bad_images: bool = False, progress: bool = True) -> pd.DataFrame:
    """Predict every image into a submission CSV, logged as an artifact of a `predict` MLflow run.
    The output path, the images and the model are checked before the run starts: a wrong one
    leaves no FAILED run behind."""
    from gz_experiments.served.serving import load_predictor   # TensorFlow loads here
    from gz_experiments.tracking.recorder import recording
    out_path = writable_output(out)   # before any image: a bad path must not cost a whole prediction
    store = open_images(images)   # before the model: a wrong path fails in a second
    predictor = load_predictor(model_uri)
    predictor.batch_size = batch_size
    with recording("predict", {"approach": "predict"}) as rec:
        rec.params({"model_uri": model_uri, "images": str(images), "tta": tta,
                    "batch_size": batch_size, "skip_bad_images": skip_bad_images})
        result = predict_store(predictor, store, tta=tta, batch_size=batch_size,
                               skip_bad_images=skip_bad_images, progress=progress)
        rec.results({"n_images": len(store.ids), "n_predicted": len(result.ids), "n_bad_images": len(result.bad)})
        try:
            errors_path = write_submission(result, store, out_path, skip_bad_images)
        finally:
            if result.bad:
                rec.file(out_path.with_name(f"{out_path.name}.errors.csv"))
        rec.file(out_path)
        print(f"wrote {len(result.ids)} predictions to {out_path}" + (f"; unreadable: {errors_path}" if errors_path else ""))
        return result.frame()
