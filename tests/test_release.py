"""The master notebook and its generated student release (release/, notebooks/).

Whether the committed release/ and companion notebook are what the build makes
now is checked where the docs' ``make build`` runs, in a copy of the
repository (``tests/test_doc_commands.py``): one build of the master for both.
"""

import copy
import filecmp
import re

import nbformat
import pytest

from coursekit.common import notebooks
from coursekit.common.files import sha256_file
from coursekit.common.paths import ROOT
from coursekit.steps import build
from coursekit.steps.data import DATA_FILES

ASSIGNMENT = "clustering"
MASTER_PATH = ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE_DIR = ROOT / "release" / ASSIGNMENT
COMPANION = ROOT / "notebooks" / f"{ASSIGNMENT}_solution.ipynb"


@pytest.fixture(scope="module")
def master():
    return nbformat.read(MASTER_PATH, as_version=4)


@pytest.fixture(scope="module")
def release():
    return nbformat.read(RELEASE_DIR / f"{ASSIGNMENT}.ipynb", as_version=4)


def test_master_has_valid_nbgrader_structure(master):
    assert notebooks.check_master(master, "master") == []


def test_points_follow_the_design(master):
    points = notebooks.graded_cells(master)
    autograded = {gid: p for gid, p in points.items() if gid.endswith("_test")}
    written = {gid: p for gid, p in points.items() if gid.startswith("question")}
    assert sum(autograded.values()) == 23 and sum(written.values()) == 4
    assert points["student_info_test"] == 1
    assert sum(points[g] for g in ("assign_clusters_test", "update_representatives_test", "clustering_objective_test", "kmeans_test")) == 8
    assert sum(points[g] for g in ("preprocess_img_test", "image_compression_test", "compression_ratio_test", "palette_png_test")) == 5


def test_each_exercise_has_a_test_cell_with_visible_and_hidden_tests(master):
    cells = master.cells
    for index, cell in enumerate(cells):
        if notebooks.is_solution_cell(cell) and cell.cell_type == "code":
            following = next(c for c in cells[index + 1:] if notebooks.is_test_cell(c))
            visible = following.source.split(notebooks.HIDDEN_BEGIN)[0]
            assert "assert" in visible, f"{notebooks.grade_id(cell)} has no visible test"
            assert notebooks.HIDDEN_BEGIN in following.source, f"{notebooks.grade_id(cell)} has no hidden test"


def test_release_leaks_no_solution_hidden_test_or_model_answer(master, release):
    assert notebooks.find_leaks(master, release) == []
    for cell in release.cells:
        assert "### BEGIN" not in cell.source and "### END" not in cell.source
        if notebooks.is_solution_cell(cell):
            expected = "YOUR ANSWER HERE" if cell.cell_type == "markdown" else r'raise NotImplementedError\("Exercise \d\.\d is not done yet"\)'
            assert re.search(expected, cell.source), notebooks.grade_id(cell)
    for path in RELEASE_DIR.iterdir():
        if path.suffix == ".py":
            assert not any(marker in path.read_text() for marker in notebooks.MARKERS)


@pytest.mark.parametrize(
    "inject",
    [
        "    squared_distances = ((X[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)",
        "        assert np.array_equal(c, reference.assign_clusters(X, Z)), f\"wrong labels for N={n}, k={k}, n={d}\"",
        "### BEGIN HIDDEN TESTS",
    ],
)
def test_leak_check_catches_a_leak(master, release, inject):
    leaky = copy.deepcopy(release)
    leaky.cells[-3].source += "\n" + inject
    assert notebooks.find_leaks(master, leaky)


def test_leak_check_catches_a_model_answer_and_outputs(master, release):
    leaky = copy.deepcopy(release)
    answer = next(c for c in master.cells if notebooks.grade_id(c) == "question1")
    target = next(c for c in leaky.cells if notebooks.grade_id(c) == "question1")
    target.source = answer.source
    code_cell = next(c for c in leaky.cells if c.cell_type == "code")
    code_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="J_clust = 0.1741")]
    leaks = notebooks.find_leaks(master, leaky)
    assert any("model answer" in leak for leak in leaks) and any("outputs" in leak for leak in leaks)


def test_every_nbgrader_cell_is_in_the_release_with_its_metadata(master, release):
    released = {notebooks.grade_id(c): c for c in release.cells if notebooks.grade_id(c)}
    for cell in master.cells:
        gid = notebooks.grade_id(cell)
        if not gid:
            continue
        assert gid in released, f"{gid} is missing from the release"
        ours, theirs = notebooks.nbgrader_meta(cell), notebooks.nbgrader_meta(released[gid])
        for key in ("grade", "solution", "locked", "points", "schema_version"):
            assert ours.get(key) == theirs.get(key), f"{gid}: {key} differs ({ours.get(key)} vs {theirs.get(key)})"
        assert cell.cell_type == released[gid].cell_type


def test_release_starts_with_blank_student_info(release):
    info = next(c for c in release.cells if c.cell_type == "code" and c.source.startswith("NAME"))
    assert info.source == 'NAME = ""\nSTUDENT_ID = ""'


def test_release_is_self_contained():
    files = build.course_files()  # the helper modules and the data files
    assert build.HELPER in files and set(DATA_FILES) <= set(files)
    assert {p.name for p in RELEASE_DIR.iterdir()} == {f"{ASSIGNMENT}.ipynb", *files}
    for name, origin in files.items():
        assert filecmp.cmp(RELEASE_DIR / name, origin, shallow=False), f"release/{name} differs from {origin}"


def test_colab_manifest_in_master_is_current(master):
    settings = build.CourseBuild(config=build.load_course_config())
    cell = next(c for c in master.cells if notebooks.grade_id(c) == "colab_setup")
    hashes = {name: sha256_file(path) for name, path in build.course_files().items()}
    assert build.colab_manifest_source(cell.source, settings.colab_base_url, hashes) == cell.source, (
        "the Colab setup cell lists old hashes or another URL: run `make build`"
    )


def test_companion_notebook_is_the_executed_solution(master):
    companion = nbformat.read(COMPANION, as_version=4)
    assert [c.source for c in companion.cells] == [c.source for c in master.cells]
    code_cells = [c for c in companion.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells), "every code cell of the companion notebook ran"
    assert not any(o.output_type == "error" for c in code_cells for o in c.outputs)
    figures = sum(1 for c in code_cells for o in c.outputs if "image/png" in o.get("data", {}))
    assert figures >= 8, f"expected the lab's figures in the companion notebook, found {figures}"

