"""Grading a class in parallel and in shards gives exactly the serial result."""

import copy
import os
import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursekit import autograde, demo
from coursekit.feedback import generate_feedback
from coursekit.grade import grade
from coursekit.parallel import merge_shards, parse_shard, shard_of
from coursekit.paths import ROOT
from coursekit.results import FAILED, GRADED

pytestmark = pytest.mark.slow
ASSIGNMENT = "clustering"
QUIET = dict(progress=False, log=lambda message: None)


def _class(master, release):
    stripped = demo.colab_saved(demo.with_student(master, "Casey", "20260004"))
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    return {
        "ada": demo.with_student(master, "Ada", "20260001"),
        "bo": demo.with_student(release, "Bo", "20260002"),
        "pat": demo.partial_submission(master, release),
        "casey": stripped,
    }


def _course(path, submissions):
    demo.prepare_demo_course(path)
    for student, nb in submissions.items():
        folder = path / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
    return path


def _gradebook_contents(course):
    """Everything autograde wrote, per student and cell."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        contents = {}
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            for nb in submission.notebooks:
                for g in nb.grades:
                    contents[(submission.student.id, g.cell.name)] = (g.auto_score, g.needs_manual_grade)
                for c in nb.comments:
                    contents[(submission.student.id, c.cell.name, "comment")] = c.auto_comment
        return contents


@pytest.fixture(scope="module")
def submissions():
    master = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    return _class(master, release)


@pytest.fixture(scope="module")
def serial(tmp_path_factory, submissions):
    course = _course(tmp_path_factory.mktemp("serial") / "course", submissions)
    results = grade(course, ASSIGNMENT, workers=1, **QUIET)
    pages = generate_feedback(course, ASSIGNMENT, log=lambda m: None)
    return course, results, pages


def test_serial_scores(serial):
    _, results, _ = serial
    assert {r.student: r.score for r in results} == {"ada": 23, "bo": 1, "pat": 5, "casey": 23}


def test_two_workers_give_identical_gradebook_and_feedback(tmp_path, submissions, serial):
    serial_course, serial_results, serial_pages = serial
    course = _course(tmp_path / "course", submissions)
    results = grade(course, ASSIGNMENT, workers=2, **QUIET)
    assert [(r.student, r.status, r.score) for r in results] == [(r.student, r.status, r.score) for r in serial_results]
    assert _gradebook_contents(course) == _gradebook_contents(serial_course)
    assert not (course / ".grading").exists(), "worker gradebooks are merged and removed"
    pages = generate_feedback(course, ASSIGNMENT, log=lambda m: None)
    for student, page in pages.items():
        assert page.read_bytes() == serial_pages[student].read_bytes(), student


def test_three_shards_merged_equal_one_run(tmp_path, submissions, serial):
    serial_course, serial_results, _ = serial
    course = _course(tmp_path / "course", submissions)
    shard_dbs = []
    for index in (1, 2, 3):
        db = tmp_path / f"gradebook-shard-{index}.db"
        grade(course, ASSIGNMENT, shard=(index, 3), gradebook=db, **QUIET)
        shard_dbs.append(db)
    merge_shards(course, ASSIGNMENT, shard_dbs)
    assert _gradebook_contents(course) == _gradebook_contents(serial_course)
    from coursekit.results import load_results, status_path

    merged = {r.student: r.score for r in load_results(status_path(course, ASSIGNMENT))}
    assert merged == {r.student: r.score for r in serial_results}


def test_shards_partition_the_class():
    students = [f"s{i:02d}" for i in range(10)]
    parts = [shard_of(students, i, 3) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == students and all(parts)
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError, match="i/N"):
        parse_shard("two")
    with pytest.raises(ValueError, match="between 1 and N"):
        parse_shard("4/3")


def test_a_rerun_grades_only_new_or_changed_submissions(tmp_path, submissions, serial):
    serial_course, _, _ = serial
    course = tmp_path / "course"
    shutil.copytree(serial_course, course)
    ada = course / "autograded" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    before = ada.stat().st_mtime_ns
    better = copy.deepcopy(submissions["ada"])
    nbformat.write(better, course / "submitted" / "bo" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")  # bo resubmits
    messages = []
    results = {r.student: r for r in grade(course, ASSIGNMENT, progress=False, log=messages.append)}
    assert results["bo"].score == 23 and results["ada"].score == 23
    assert any("3 submission(s) unchanged" in m for m in messages)
    assert ada.stat().st_mtime_ns == before, "ada's unchanged submission was graded again"


def test_a_crashed_worker_loses_no_other_students_result(tmp_path, monkeypatch, submissions):
    course = _course(tmp_path / "course", {"bo": submissions["bo"], "crasher": submissions["bo"],
                                           "zoe": submissions["bo"]})
    real = autograde.grade_student

    def crashing(api, course_root, assignment, student, db=None):
        if student == "crasher":
            os._exit(13)  # the worker process dies, as on a segfault or an OOM kill
        return real(api, course_root, assignment, student, db=db)

    monkeypatch.setattr(autograde, "grade_student", crashing)  # grade() hands it to the forked workers
    results = {r.student: r for r in grade(course, ASSIGNMENT, workers=2, **QUIET)}
    assert results["bo"].status == GRADED and results["bo"].score == 1
    assert results["zoe"].status == GRADED and results["zoe"].score == 1
    assert results["crasher"].status == FAILED and "crashed" in results["crasher"].reason
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission(ASSIGNMENT, "zoe").score == 1
