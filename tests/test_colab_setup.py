"""The release notebook's Colab setup cell, run offline.

Colab is simulated with a fake ``google.colab`` package on PYTHONPATH, and
the course repository with a local HTTP server on 127.0.0.1 serving the
release folder.
"""

import hashlib
import re
import subprocess
import sys

import nbformat
import pytest

from coursekit.common import notebooks
from coursekit.common.paths import ROOT

RELEASE_DIR = ROOT / "release" / "clustering"


@pytest.fixture(scope="module")
def setup_source():
    nb = nbformat.read(RELEASE_DIR / "clustering.ipynb", as_version=4)
    cell = next(c for c in nb.cells if notebooks.grade_id(c) == "colab_setup")
    assert notebooks.nbgrader_meta(cell)["locked"], "the setup cell must be read-only"
    return cell.source


def _listed_files(source):
    return dict(re.findall(r'^\s+"([^"]+)": "([0-9a-f]{64})",$', source, flags=re.MULTILINE))


def _run_cell(source, workdir, base_url, fake_colab_dir=None):
    source = re.sub(r"^COURSE_BASE_URL = .*$", f'COURSE_BASE_URL = "{base_url}"', source, count=1, flags=re.MULTILINE)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake_colab_dir or "")}
    return subprocess.run([sys.executable, "-c", source], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def fake_colab(tmp_path):
    package = tmp_path / "fake" / "google" / "colab"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("# stands in for Colab's module\n")
    return tmp_path / "fake"


def _serve_release(http_server, corrupt=None):
    for path in RELEASE_DIR.iterdir():
        body = path.read_bytes()
        if path.name == corrupt:
            body = body[:-1] + bytes([body[-1] ^ 1])
        http_server.serve(f"/release/{path.name}", body)
    return http_server.url("/release/")


HELPER_MODULES = {"KmeansAnimate2D.py", "kmeans_animation.py", "_kmeans_checks.py", "_kmeans_fast.py"}


def test_setup_cell_lists_the_helper_and_every_data_file_with_its_hash(setup_source):
    listed = _listed_files(setup_source)
    assert set(listed) == HELPER_MODULES | {"cat.png", "mnist.npz", "number4.jpg", "number4_paper.jpg"}
    for name, digest in listed.items():
        assert hashlib.sha256((RELEASE_DIR / name).read_bytes()).hexdigest() == digest


def test_in_colab_it_downloads_and_verifies_every_file(setup_source, http_server, fake_colab, tmp_path):
    workdir = tmp_path / "content"
    workdir.mkdir()
    result = _run_cell(setup_source, workdir, _serve_release(http_server), fake_colab)
    assert result.returncode == 0, result.stderr
    for name in _listed_files(setup_source):
        assert (workdir / name).read_bytes() == (RELEASE_DIR / name).read_bytes()
        assert f"downloaded {name}" in result.stdout
    # Running the cell again downloads nothing: the files are there and intact.
    again = _run_cell(setup_source, workdir, _serve_release(http_server), fake_colab)
    assert again.returncode == 0 and again.stdout == ""
    # The downloaded files are all the helper needs: it imports and animates.
    script = ("import numpy as np, KmeansAnimate2D as animate; "
              "run = animate.KmeansAnimate2D(k=2, data=np.array([[0.0, 0], [0, 1], [5, 5], [5, 6]]), random_state=0); "
              "print(run.to_jshtml().count('data:image/png'), run.n_iter_)")
    helper = subprocess.run([sys.executable, "-c", script], cwd=workdir, env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
                            capture_output=True, text=True, timeout=120)
    assert helper.returncode == 0, helper.stderr
    frames, iterations = map(int, helper.stdout.split())
    assert frames == 1 + 2 * iterations


def test_in_colab_a_file_with_the_wrong_hash_is_refused(setup_source, http_server, fake_colab, tmp_path):
    workdir = tmp_path / "content"
    workdir.mkdir()
    result = _run_cell(setup_source, workdir, _serve_release(http_server, corrupt="mnist.npz"), fake_colab)
    assert result.returncode != 0
    assert "mnist.npz: the downloaded file has SHA-256" in result.stderr and "It was not saved" in result.stderr
    assert not (workdir / "mnist.npz").exists() and not (workdir / "mnist.npz.part").exists()


def test_outside_colab_it_does_nothing(setup_source, closed_port, tmp_path):
    # The base URL points at a closed port: any download attempt would fail.
    result = _run_cell(setup_source, tmp_path, f"http://127.0.0.1:{closed_port}/")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert list(tmp_path.iterdir()) == []
