"""The synthetic data set: competition layout, tree-consistent labels, determinism, reuse, realism."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gz_experiments import synthetic, tree
from gz_experiments.data.source import TEST_IMAGES, TRAIN_IMAGES, image_name

N_IMAGES, N_TEST_IMAGES, SEED = 60, 4, 3


@pytest.fixture(scope="module")
def data_set(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("synthetic") / "gz", N_IMAGES, seed=SEED,
                              n_test=N_TEST_IMAGES, progress=False)


@pytest.fixture(scope="module")
def table(data_set) -> pd.DataFrame:
    return pd.read_csv(data_set / synthetic.LABELS_FILE)


@pytest.fixture(scope="module")
def many_labels() -> np.ndarray:
    """Labels of 3000 galaxies straight from the latent model: enough for stable averages, no images."""
    rows = []
    for index in range(3000):
        rng = np.random.default_rng([123, index])
        rows.append(synthetic.volunteer_labels(synthetic.sample_galaxy(rng), rng))
    return np.array(rows)


def test_layout_matches_the_competition(data_set, table):
    header = (data_set / synthetic.LABELS_FILE).read_text().splitlines()[0]
    assert tuple(header.split(",")) == tree.LABELS_HEADER
    assert len(table) == N_IMAGES
    ids = table[tree.ID_COLUMN]
    assert ids.dtype.kind == "i" and ids.is_unique
    assert ids.between(synthetic.FIRST_ID, synthetic.LAST_ID).all()
    for galaxy_id in ids:
        with Image.open(data_set / TRAIN_IMAGES / image_name(galaxy_id)) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (424, 424))
    test_files = sorted((data_set / TEST_IMAGES).glob("*.jpg"))
    test_ids = {int(f.stem) for f in test_files}
    assert len(test_ids) == N_TEST_IMAGES and not test_ids & set(ids)


def test_labels_are_fractions_that_respect_the_tree(table):
    labels = table[list(tree.CLASS_COLUMNS)].to_numpy()
    assert labels.min() >= 0 and labels.max() <= 1
    assert tree.constraint_violation(labels).max() < 1e-5


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = synthetic.generate(tmp_path / "a", 6, seed=5, progress=False)
    second = synthetic.generate(tmp_path / "b", 6, seed=5, progress=False)
    other = synthetic.generate(tmp_path / "c", 6, seed=6, progress=False)
    csv = synthetic.LABELS_FILE
    assert (first / csv).read_bytes() == (second / csv).read_bytes()
    assert (first / csv).read_bytes() != (other / csv).read_bytes()
    image = sorted((first / TRAIN_IMAGES).iterdir())[0].name
    assert (first / TRAIN_IMAGES / image).read_bytes() == (second / TRAIN_IMAGES / image).read_bytes()
    other_image = sorted((other / TRAIN_IMAGES).iterdir())[0]
    assert other_image.read_bytes() != (first / TRAIN_IMAGES / image).read_bytes()


def test_every_question_is_reached_and_answers_vary(table, many_labels):
    labels = table[list(tree.CLASS_COLUMNS)].to_numpy()
    reached = tree.reach_fractions(labels) > 0
    assert reached[:, :7].mean(axis=0).min() > 0.3  # Q1-Q7 reach most galaxies
    assert reached.mean(axis=0).min() > 0.05  # even the deep questions (arms, odd features)
    assert (many_labels.std(axis=0) > 0.02).all()  # no answer is a constant


def test_class_shares_resemble_the_real_data(many_labels):
    smooth, features, star = many_labels[:, :3].mean(axis=0)
    assert 0.35 < smooth < 0.6 and 0.35 < features < 0.6 and 0.01 < star < 0.1
    odd = many_labels[:, tree.column_index("Class6.1")].mean()
    assert 0.1 < odd < 0.35


def _elongation(image: np.ndarray) -> float:
    """1 - minor/major axis of the bright light in the central 200 pixels (second moments)."""
    centre = image[112:312, 112:312].astype(np.float64).mean(axis=2)
    weight = np.clip(centre - 40, 0, None)
    y, x = np.mgrid[:200, :200]
    total = weight.sum() + 1e-9
    my, mx = (weight * y).sum() / total, (weight * x).sum() / total
    cov = np.cov(np.stack([(y - my).ravel(), (x - mx).ravel()]), aweights=weight.ravel() + 1e-12)
    small, large = np.linalg.eigvalsh(cov)
    return 1 - np.sqrt(max(small, 0) / large)


def _blueness(image: np.ndarray) -> float:
    """Blue over red light in the centre: disks are bluer than ellipticals."""
    centre = image[162:262, 162:262].astype(np.float64)
    return centre[..., 2].sum() / (centre[..., 0].sum() + 1e-9)


def test_labels_follow_what_the_image_shows(data_set, table):
    images = [np.asarray(Image.open(data_set / TRAIN_IMAGES / image_name(g))) for g in table[tree.ID_COLUMN]]
    elongation = [_elongation(image) for image in images]
    elongated_votes = table["Class7.3"] + table["Class2.1"] + table["Class7.2"]
    assert np.corrcoef(elongation, elongated_votes)[0, 1] > 0.3
    blueness = [_blueness(image) for image in images]
    assert np.corrcoef(blueness, table["Class1.2"])[0, 1] > 0.3


def test_a_complete_data_set_is_reused_not_rewritten(data_set):
    csv = data_set / synthetic.LABELS_FILE
    before = csv.stat().st_mtime_ns
    again = synthetic.generate(data_set, N_IMAGES, seed=SEED, n_test=N_TEST_IMAGES, progress=False)
    assert again == data_set and csv.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="made with"):
        synthetic.generate(data_set, N_IMAGES + 1, seed=SEED, n_test=N_TEST_IMAGES, progress=False)


def test_a_data_set_from_an_older_generator_is_rebuilt(tmp_path):
    root = synthetic.generate(tmp_path / "gz", 3, seed=1, progress=False)
    marker = root / synthetic.MARKER
    marker.write_text(marker.read_text().replace(f'"format": {synthetic.FORMAT_VERSION}', '"format": 0'))
    (root / synthetic.LABELS_FILE).write_text("stale")
    assert synthetic.generate(root, 3, seed=1, progress=False) == root
    assert (root / synthetic.LABELS_FILE).read_text().startswith(tree.ID_COLUMN)
    assert f'"format": {synthetic.FORMAT_VERSION}' in marker.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["gz"]  # no staging or stale copy left behind


def test_foreign_directory_is_refused(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("not a data set")
    with pytest.raises(ValueError, match="not a complete"):
        synthetic.generate(tmp_path / "busy", 4, progress=False)


def test_interrupted_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return np.zeros((424, 424, 3), np.uint8)

    monkeypatch.setattr(synthetic, "render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(tmp_path / "gz", 10, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the staging directory remains
