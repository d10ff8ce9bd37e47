"""The real assignment through real nbgrader: generate, submit, autograde.

The executed solution earns every autograded point; the untouched release
earns none and fails only with NotImplementedError (plus the empty NAME); a
student who edits a test cell gets it restored. nbgrader's false checksum
warning for test cells with hidden tests (jupyter/nbgrader#1961) is gone.
"""

import copy
import shutil

import nbformat
import pytest
from conftest import without_slow_demonstrations
from nbgrader.api import Gradebook

from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.steps import build

ASSIGNMENT = "clustering"
AUTOGRADED_POINTS = 23


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory, submit):
    """A scratch course: generate_assignment, three submissions, autograde; returns (course, nbgrader's log)."""
    course = tmp_path_factory.mktemp("course")
    source = course / "source" / ASSIGNMENT
    shutil.copytree(ROOT / "source" / ASSIGNMENT, source)
    build.sync_course_files(source, build.course_files())
    build.run_nbgrader("generate_assignment", ASSIGNMENT, "--force", f"--CourseDirectory.root={course}", cwd=ROOT)

    master = nbformat.read(source / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    # The whole solution is graded end to end in test_pipeline (the demo's perfect student); here the
    # solution and the tampered copy go without their slowest demonstrations, which carry no points.
    lean = without_slow_demonstrations(master)
    tampered = copy.deepcopy(lean)
    edited = next(c for c in tampered.cells if notebooks.grade_id(c) == "kmeans_test")
    edited.source = "assert True  # the student replaced the tests"
    for student, nb in {"solution": lean, "blank": release, "tampered": tampered}.items():
        submit(course, student, nb)
    log = build.run_nbgrader(
        "autograde", ASSIGNMENT, "--create", f"--CourseDirectory.root={course}", cwd=ROOT, fail_on_logged_errors=False
    )
    return course, log


def _score(course, student):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return submission.score, {g.name: g.score for nb in submission.notebooks for g in nb.grades}


@pytest.mark.slow
def test_the_solution_earns_every_autograded_point(graded_course):
    course, _ = graded_course
    score, grades = _score(course, "solution")
    assert score == AUTOGRADED_POINTS, {name: s for name, s in grades.items() if name.endswith("_test")}


@pytest.mark.slow
def test_the_untouched_release_scores_zero_and_fails_only_with_not_implemented(graded_course):
    course, _ = graded_course
    score, _ = _score(course, "blank")
    assert score == 0
    graded = nbformat.read(course / "autograded" / "blank" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for cell in graded.cells:
        if notebooks.is_test_cell(cell):
            errors = [o.ename for o in cell.outputs if o.output_type == "error"]
            expected = "AssertionError" if notebooks.grade_id(cell) == "student_info_test" else "NotImplementedError"
            assert errors == [expected], f"{notebooks.grade_id(cell)} failed with {errors}"


@pytest.mark.slow
def test_an_edited_test_cell_is_restored_and_reported(graded_course):
    course, log = graded_course
    score, _ = _score(course, "tampered")
    assert score == AUTOGRADED_POINTS
    assert "Attribute 'checksum' for cell kmeans_test has changed" in log


@pytest.mark.slow
def test_no_false_checksum_warning_for_hidden_tests(graded_course):
    """jupyter/nbgrader#1961: untouched test cells with hidden tests are not reported as changed."""
    _, log = graded_course
    reported = [line for line in log.splitlines() if "Attribute 'checksum'" in line]
    assert reported == [line for line in reported if "kmeans_test" in line], reported
    assert len(reported) == 1
