"""The data layer: competition layout (folder or zips), validation with one clear error per problem,
skipping bad images on request, seeded splits, and the real sample's labels against the tree."""
from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gz_experiments import tree
from gz_experiments.config import DataConfig
from gz_experiments.data.dataset import prepare
from gz_experiments.data.source import DataError, open_source
from gz_experiments.data.split import split_ids

N = 160   # galaxies in the conftest synthetic set
LABELS = "training_solutions_rev1.csv"
IMAGES = "images_training_rev1"


def small(data_dir, **fields) -> DataConfig:
    fields = {"n_train": None, "n_val": 20, "n_test": 20, **fields}
    return DataConfig(data_dir=str(data_dir), image_size=48, augment=None, **fields)


def edit_labels(root: Path, edit) -> None:
    """Rewrite the labels CSV through `edit(frame)`, keeping every cell's text as it was."""
    path = root / LABELS
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = edit(frame)
    frame.to_csv(path, index=False)


def first_ids(root: Path, k: int) -> list[int]:
    return [int(i) for i in pd.read_csv(root / LABELS, usecols=["GalaxyID"])["GalaxyID"][:k]]


def image_path(root: Path, galaxy_id: int) -> Path:
    return root / IMAGES / f"{galaxy_id}.jpg"


def one_error(data_dir, **fields) -> str:
    with pytest.raises(DataError) as error:
        prepare(small(data_dir, **fields), progress=False)
    return str(error.value)


# ---- labels -------------------------------------------------------------------------------------

def test_valid_synthetic_set_opens(synthetic_dir):
    source = open_source(synthetic_dir)
    assert source.labels.shape == (N, 37)
    assert list(source.labels.columns) == list(tree.CLASS_COLUMNS)
    assert source.labels.index.dtype == np.int64
    assert source.labels.to_numpy().dtype == np.float32


def test_missing_columns(data_copy):
    edit_labels(data_copy, lambda f: f.drop(columns=["Class1.1", "Class11.6"]))
    message = one_error(data_copy)
    assert str(data_copy / LABELS) in message
    assert "missing 2 (Class1.1, Class11.6)" in message and "unexpected 0" in message


def test_extra_columns(data_copy):
    edit_labels(data_copy, lambda f: f.assign(Class12_1="0.5", Notes="x"))
    message = one_error(data_copy)
    assert str(data_copy / LABELS) in message
    assert "missing 0" in message and "unexpected 2 (Class12_1, Notes)" in message


@pytest.mark.parametrize("bad_values", [("abc", "0.1.2"), ("", "NaN"), ("inf", "")])
def test_non_numeric_or_missing_labels(data_copy, bad_values):
    def damage(frame):
        frame.loc[4, "Class3.1"], frame.loc[9, "Class7.2"] = bad_values
        return frame
    edit_labels(data_copy, damage)
    message = one_error(data_copy)
    # CSV row numbers count the header as row 1.
    assert re.search(r"2 rows have non-numeric or missing labels: row 6, row 11\b", message), message
    assert str(data_copy / LABELS) in message


def test_values_outside_unit_interval(data_copy):
    def damage(frame):
        frame.loc[0, "Class1.1"], frame.loc[2, "Class6.2"], frame.loc[3, "Class9.3"] = "1.5", "-0.1", "1.0000001"
        return frame
    edit_labels(data_copy, damage)
    message = one_error(data_copy)
    assert "3 rows have vote fractions outside [0, 1]: row 2, row 4, row 5" in message


def test_duplicate_galaxy_ids(data_copy):
    ids = first_ids(data_copy, 8)

    def damage(frame):
        frame.loc[3, "GalaxyID"] = str(ids[7])
        return frame
    edit_labels(data_copy, damage)
    message = one_error(data_copy)
    assert f"1 GalaxyIDs appear more than once: {ids[7]}" in message


def test_non_integer_galaxy_ids_are_rejected_never_used_as_paths(data_copy):
    # A decoy image where "../decoy" would resolve if the ID were joined into a path unchecked.
    shutil.copy(image_path(data_copy, first_ids(data_copy, 1)[0]), data_copy / "decoy.jpg")

    def damage(frame):
        frame.loc[0, "GalaxyID"], frame.loc[1, "GalaxyID"] = "../decoy", "../etc/passwd"
        frame.loc[5, "GalaxyID"], frame.loc[6, "GalaxyID"] = "12a", "1.5"
        return frame
    edit_labels(data_copy, damage)
    message = one_error(data_copy)
    assert "4 GalaxyIDs are not positive integers" in message
    for row, value in [(2, "../decoy"), (3, "../etc/passwd"), (7, "12a"), (8, "1.5")]:
        assert f"row {row} ({value!r})" in message


def test_unreadable_labels_file(data_copy):
    (data_copy / LABELS).write_bytes(b"")
    assert f"{data_copy / LABELS}: cannot be read as CSV" in one_error(data_copy)


def test_label_rows_without_an_image(data_copy):
    ids = first_ids(data_copy, 3)
    for galaxy_id in ids[1:]:
        image_path(data_copy, galaxy_id).unlink()
    message = one_error(data_copy)
    assert f"2 of {N} label rows have no image in {data_copy / IMAGES}" in message
    assert all(str(i) in message for i in ids[1:])


def test_missing_data_dir_labels_or_images(tmp_path, data_copy):
    message = one_error(tmp_path / "nowhere")
    assert f"data_dir {str(tmp_path / 'nowhere')!r} is not a folder" in message
    shutil.rmtree(data_copy / IMAGES)
    assert f"no images: neither {data_copy / IMAGES} nor" in one_error(data_copy)
    (data_copy / LABELS).unlink()
    assert f"no labels: neither {data_copy / LABELS} nor" in one_error(data_copy)


# ---- images -------------------------------------------------------------------------------------

def _reencoded(jpeg: bytes, **kind) -> bytes:
    image = Image.open(io.BytesIO(jpeg))
    if "size" in kind:
        image = image.resize(kind["size"])
    if "mode" in kind:
        image = image.convert(kind["mode"])
    out = io.BytesIO()
    image.save(out, format=kind.get("format", "JPEG"))
    return out.getvalue()


DAMAGE = {
    "random bytes": (lambda b: np.random.default_rng(0).bytes(len(b)), "not a readable image"),
    "truncated": (lambda b: b[: len(b) // 2], "corrupt or truncated"),
    "300x300": (lambda b: _reencoded(b, size=(300, 300)), "300×300 RGB; expected 424×424 RGB"),
    "grayscale": (lambda b: _reencoded(b, mode="L"), "424×424 L; expected 424×424 RGB"),
    "png renamed": (lambda b: _reencoded(b, format="PNG"), "is PNG, not JPEG"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_bad_image_gives_one_error_naming_the_file(data_copy, kind):
    damage, why = DAMAGE[kind]
    galaxy_id = first_ids(data_copy, 5)[4]
    path = image_path(data_copy, galaxy_id)
    path.write_bytes(damage(path.read_bytes()))
    message = one_error(data_copy)
    assert f"1 of {N} images are unusable: {path} (" in message
    assert why in message
    assert "skip_bad_images=true" in message


def test_skip_bad_images_drops_them_with_a_warning(data_copy):
    bad_ids = first_ids(data_copy, 9)[::3]
    for galaxy_id, kind in zip(bad_ids, ["random bytes", "truncated", "grayscale"]):
        path = image_path(data_copy, galaxy_id)
        path.write_bytes(DAMAGE[kind][0](path.read_bytes()))
    with pytest.warns(UserWarning, match="skipping 3 unusable images"):
        data = prepare(small(data_copy, skip_bad_images=True), progress=False)
    assert sorted(data.bad) == sorted(bad_ids)          # what train.py logs as n_bad_images
    used = np.concatenate([data.train.ids, data.val.ids, data.test.ids])
    assert len(used) == N - 3 and not set(bad_ids) & set(used.tolist())
    for split in (data.train, data.val, data.test):
        assert len(split.images) == len(split.labels) == len(split.ids)
        assert split.images.reshape(len(split), -1).max(axis=1).min() > 0   # no blank stand-ins
        np.testing.assert_array_equal(split.labels, data.source.labels.loc[split.ids].to_numpy())


# ---- the competition's zip files ----------------------------------------------------------------

def zip_layout(folder: Path, out: Path) -> Path:
    """The two zips as Kaggle serves them: the CSV, and the images under their folder name."""
    out.mkdir()
    with zipfile.ZipFile(out / "training_solutions_rev1.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(folder / LABELS, LABELS)
    with zipfile.ZipFile(out / "images_training_rev1.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted((folder / IMAGES).iterdir()):
            z.write(path, f"{IMAGES}/{path.name}")
    return out


def test_zip_layout_reads_the_same_data_and_split_as_the_folder(synthetic_dir, tmp_path):
    zipped = zip_layout(synthetic_dir, tmp_path / "zipped")
    from_folder = prepare(small(synthetic_dir, n_train=100), progress=False)
    from_zips = prepare(small(zipped, n_train=100), progress=False)
    pd.testing.assert_frame_equal(from_folder.source.labels, from_zips.source.labels)
    for name in ("train", "val", "test"):
        a, b = getattr(from_folder, name), getattr(from_zips, name)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))


def test_bad_image_inside_the_zip_is_named_by_zip_and_member(data_copy, tmp_path):
    galaxy_id = first_ids(data_copy, 1)[0]
    image_path(data_copy, galaxy_id).write_bytes(b"not a jpeg")
    zipped = zip_layout(data_copy, tmp_path / "zipped")
    message = one_error(zipped)
    assert f"1 of {N} images are unusable: {zipped / 'images_training_rev1.zip'}:{IMAGES}/{galaxy_id}.jpg" in message


def test_labels_zip_must_hold_one_csv(synthetic_dir, tmp_path):
    zipped = zip_layout(synthetic_dir, tmp_path / "zipped")
    with zipfile.ZipFile(zipped / "training_solutions_rev1.zip", "a") as z:
        z.writestr("other.csv", "GalaxyID\n")
    assert "should hold exactly one CSV" in one_error(zipped)


# ---- splits -------------------------------------------------------------------------------------

IDS = np.arange(100_000, 100_500)


def test_split_is_seeded_disjoint_and_sized():
    a, b = split_ids(IDS, 300, 100, 50, seed=1), split_ids(IDS[::-1], 300, 100, 50, seed=1)
    for name, size in [("train", 300), ("val", 100), ("test", 50)]:
        np.testing.assert_array_equal(a[name], b[name])   # same seed, any input order: same ids
        assert len(a[name]) == size
    assert len(set(np.concatenate(list(a.values())).tolist())) == 450
    c = split_ids(IDS, 300, 100, 50, seed=2)
    assert set(c["test"].tolist()) != set(a["test"].tolist())
    assert set(c["train"].tolist()) != set(a["train"].tolist())


def test_test_and_val_do_not_move_when_n_train_changes():
    small_train, big_train, everything = (split_ids(IDS, n, 100, 50, seed=7) for n in (10, 300, None))
    for other in (big_train, everything):
        np.testing.assert_array_equal(small_train["test"], other["test"])
        np.testing.assert_array_equal(small_train["val"], other["val"])
    assert set(small_train["train"].tolist()) <= set(big_train["train"].tolist())
    assert len(everything["train"]) == 350


def test_too_few_galaxies_names_the_numbers(synthetic_dir):
    message = one_error(synthetic_dir, n_train=150)
    assert f"{synthetic_dir} has {N} galaxies, too few for n_train=150 + n_val=20 + n_test=20 = 190" in message
    assert "at most 120 left for training" in message and "n_train=all" in message
    message = one_error(synthetic_dir, n_train=None, n_val=100, n_test=100)
    assert f"has {N} galaxies, too few for n_train=all (at least 1) + n_val=100 + n_test=100 = 201" in message


def test_n_train_all_uses_every_remaining_galaxy(synthetic_dir):
    data = prepare(small(synthetic_dir, n_train=None), progress=False)
    assert (len(data.train), len(data.val), len(data.test)) == (N - 40, 20, 20)
    frame = data.split_frame()
    assert frame["GalaxyID"].is_unique and set(frame["GalaxyID"]) == set(data.source.labels.index)
    again = prepare(small(synthetic_dir, n_train=None), progress=False)
    np.testing.assert_array_equal(again.split_frame().to_numpy(), frame.to_numpy())


# ---- the real sample ----------------------------------------------------------------------------

def test_tree_columns_match_the_real_header(real_data_dir):
    header = (real_data_dir / LABELS).open().readline().strip().split(",")
    assert tuple(header) == tree.LABELS_HEADER


def test_real_labels_obey_the_decision_tree(real_data_dir):
    labels = open_source(real_data_dir).labels.to_numpy(np.float64)
    worst = tree.constraint_violation(labels).max(axis=1)
    # The CSV has 6 decimals: rounding up to 7 answers and a parent costs at most 8 × 5e-7 = 4e-6.
    # Measured on the 7,866-row sample: max 1.9e-6, so 1e-5 holds for every row.
    assert (worst <= 1e-5).mean() >= 0.999
    assert worst.max() < 0.01
