"""Downloading the full MNIST: verified, atomic, and clear when it fails.

Everything runs against a local HTTP server on 127.0.0.1; no test touches the
network.
"""

import hashlib
import io

import numpy as np
import pytest

from coursekit import cli
from coursekit.steps import data


def _tiny_mnist_bytes():
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(
        buffer,
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6, dtype=np.uint8),
        x_test=rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        y_test=np.arange(2, dtype=np.uint8),
    )
    return buffer.getvalue()


GOOD = _tiny_mnist_bytes()
GOOD_SHA256 = hashlib.sha256(GOOD).hexdigest()


def _download(url, dest, sha256=GOOD_SHA256):
    return data.download_full_mnist(dest, url=url, sha256=sha256, timeout=5, progress=False)


def test_good_file_is_saved_and_loads(http_server, tmp_path):
    http_server.serve("/mnist.npz", GOOD)
    dest = _download(http_server.url("/mnist.npz"), tmp_path / "mnist_full.npz")
    assert dest.read_bytes() == GOOD
    (x_train, _), (x_test, _) = data.load_mnist_npz(dest)
    assert x_train.shape == (6, 28, 28) and x_test.shape == (2, 28, 28)
    assert list(tmp_path.iterdir()) == [dest]


def test_truncated_transfer_leaves_nothing(http_server, tmp_path):
    http_server.serve("/mnist.npz", GOOD[: len(GOOD) // 2], declared_length=len(GOOD))
    dest = tmp_path / "mnist_full.npz"
    with pytest.raises(data.DownloadError, match="nothing was written"):
        _download(http_server.url("/mnist.npz"), dest)
    assert list(tmp_path.iterdir()) == []


def test_wrong_hash_is_refused_and_keeps_the_old_file(http_server, tmp_path):
    http_server.serve("/mnist.npz", GOOD[:-1] + b"!")
    dest = tmp_path / "mnist_full.npz"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(data.DownloadError, match=f"sha256 mismatch: expected {GOOD_SHA256}"):
        _download(http_server.url("/mnist.npz"), dest)
    assert dest.read_bytes() == b"previous good copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist_full.npz"]


def test_http_error_is_reported(http_server, tmp_path):
    with pytest.raises(data.DownloadError, match="HTTP 404"):
        _download(http_server.url("/missing.npz"), tmp_path / "mnist_full.npz")
    assert list(tmp_path.iterdir()) == []


def test_server_down_says_so(closed_port, tmp_path):
    with pytest.raises(data.DownloadError, match="cannot reach the server"):
        _download(f"http://127.0.0.1:{closed_port}/mnist.npz", tmp_path / "mnist_full.npz")
    assert list(tmp_path.iterdir()) == []


def test_command_line_prints_a_clear_error_and_exits_1(closed_port, tmp_path, capsys):
    status = cli.main(
        ["data", "download-mnist", "--quiet", "--dest", str(tmp_path / "m.npz"), "--url", f"http://127.0.0.1:{closed_port}/m.npz"]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot reach the server" in err


def test_default_hash_is_the_one_keras_publishes():
    # keras.datasets.mnist.load_data() checks this file_hash; a typo here would
    # reject every real download.
    assert data.KERAS_MNIST_SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert data.KERAS_MNIST_URL.endswith("/tf-keras-datasets/mnist.npz")
