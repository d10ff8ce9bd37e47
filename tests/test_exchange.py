"""nbgrader's exchange, the JupyterHub route, end to end with the course's own steps.

release_assignment -> two students fetch_assignment and submit (one solved,
one partial) -> collect -> ``coursekit grade`` -> ``coursekit feedback`` ->
release_feedback -> each student fetch_feedback gets their own page, and only it.

The exchange is a local folder (``Exchange.root``). nbgrader names a student
after the process's user, except for the user ``jovyan`` (the user of the
Jupyter Docker stacks behind JupyterHub), where ``JUPYTERHUB_USER`` names
them: the students' commands run that way, with a home folder each.
"""

import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from coursekit.demo import partial_submission, with_student
from coursekit.feedback import exchange_receipts, generate_feedback
from coursekit.grade import grade
from coursekit.paths import ROOT
from coursekit.results import GRADED

ASSIGNMENT = "clustering"
COURSE_ID = "clustering-lab"  # nbgrader_config.py
# A student's nbgrader as JupyterHub runs it: the user is jovyan, JUPYTERHUB_USER says who.
AS_HUB_USER = ("import sys, nbgrader.utils; nbgrader.utils.get_osusername = lambda: 'jovyan'; "
               "from nbgrader.apps.nbgraderapp import main; sys.argv[0] = 'nbgrader'; main()")


def _run(command, cwd, env=None):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def instructor(*args, course, exchange):
    """``nbgrader <args>`` in the repository (its nbgrader_config.py), on the scratch course."""
    return _run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}",
                 f"--Exchange.root={exchange}"], cwd=ROOT)


def student(name, home, *args, exchange):
    """``nbgrader <args>`` as JupyterHub user ``name``, in their home folder."""
    env = {**os.environ, "HOME": str(home), "JUPYTERHUB_USER": name}
    env.pop("JUPYTER_DATA_DIR", None)
    return _run([sys.executable, "-c", AS_HUB_USER, *args, f"--course={COURSE_ID}", f"--Exchange.root={exchange}"],
                cwd=home, env=env)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, copy_course, master_notebook, release_notebook):
    """The whole round trip, once; returns the students' homes and the grade results."""
    base = tmp_path_factory.mktemp("hub")
    course = copy_course(base / "course")
    shutil.copytree(ROOT / "release" / ASSIGNMENT, course / "release" / ASSIGNMENT)  # as `make build` made it
    exchange = base / "exchange"
    exchange.mkdir()
    instructor("release_assignment", ASSIGNMENT, course=course, exchange=exchange)

    answers = {"ann": with_student(master_notebook, "Ann Able", "20260011"),
               "bob": with_student(partial_submission(master_notebook, release_notebook), "Bob Busy", "20260012")}
    homes = {}
    for name, notebook in answers.items():
        homes[name] = base / "home" / name
        homes[name].mkdir(parents=True)
        student(name, homes[name], "fetch_assignment", ASSIGNMENT, exchange=exchange)
        fetched = homes[name] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert fetched.is_file() and (homes[name] / ASSIGNMENT / "KmeansAnimate2D.py").is_file()
        nbformat.write(notebook, fetched)  # the student's work
        student(name, homes[name], "submit", ASSIGNMENT, exchange=exchange)

    instructor("collect", ASSIGNMENT, course=course, exchange=exchange)
    results = {r.student: r for r in grade(course, ASSIGNMENT, workers=2, progress=False)}
    pages = generate_feedback(course, ASSIGNMENT)
    instructor("release_feedback", ASSIGNMENT, course=course, exchange=exchange)
    for name, home in homes.items():
        student(name, home, "fetch_feedback", ASSIGNMENT, exchange=exchange)
    return dict(course=course, homes=homes, results=results, pages=pages)


@pytest.mark.slow
def test_collected_submissions_are_graded(hub):
    results = hub["results"]
    assert sorted(results) == ["ann", "bob"]
    assert (results["ann"].status, results["ann"].score) == (GRADED, 23)
    assert (results["bob"].status, results["bob"].score) == (GRADED, 5)


@pytest.mark.slow
def test_the_feedback_folder_holds_the_page_and_what_release_feedback_needs(hub):
    for name in ("ann", "bob"):
        folder = hub["course"] / "feedback" / name / ASSIGNMENT
        assert sorted(p.name for p in folder.iterdir()) == [f"{ASSIGNMENT}.html", "submission_secret.txt",
                                                            "timestamp.txt"]


@pytest.mark.slow
def test_each_student_fetches_their_own_page_and_nothing_else(hub):
    pages = {}
    for name, home in hub["homes"].items():
        fetched = [p for p in (home / ASSIGNMENT / "feedback").rglob("*") if p.is_file()]
        assert [p.name for p in fetched] == [f"{ASSIGNMENT}.html"], fetched
        pages[name] = fetched[0].read_text(encoding="utf-8")
        assert pages[name] == hub["pages"][name].read_text(encoding="utf-8"), "the page the course made"
    assert re.search(r"Your score: <strong>23</strong>", pages["ann"]) and "Ann Able" in pages["ann"]
    assert re.search(r"Your score: <strong>5</strong>", pages["bob"]) and "Bob Busy" in pages["bob"]
    assert "Bob Busy" not in pages["ann"] and "Ann Able" not in pages["bob"]


# --------------------------------------------------------------------------
# The receipts come from the student's side: only sound ones are passed on
# --------------------------------------------------------------------------
TIMESTAMP = b"2026-11-30 16:09:57.524456 UTC"
SECRET = b"0123456789abcdef" * 8


def _submission(tmp_path, files):
    folder = tmp_path / "submitted" / "ann" / ASSIGNMENT
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_receipts_as_nbgrader_writes_them_are_passed_on(tmp_path):
    _submission(tmp_path, {"timestamp.txt": TIMESTAMP, "submission_secret.txt": SECRET})
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"timestamp.txt": TIMESTAMP,
                                                              "submission_secret.txt": SECRET}


def test_a_submission_from_elsewhere_has_none(tmp_path):
    _submission(tmp_path, {})
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {}


@pytest.mark.parametrize("secret", [b"<script>alert(1)</script>", b"ab" * 400, b"\xff\xfe", b"0" * 8])
def test_a_secret_that_is_not_what_nbgrader_writes_stays_behind(tmp_path, secret, log_lines):
    _submission(tmp_path, {"timestamp.txt": TIMESTAMP, "submission_secret.txt": secret})
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"timestamp.txt": TIMESTAMP}
    assert any(line.startswith("warning: ") and "submission_secret.txt" in line for line in log_lines)


def test_a_linked_receipt_is_not_followed(tmp_path):
    folder = _submission(tmp_path, {"timestamp.txt": TIMESTAMP})
    (tmp_path / "elsewhere.txt").write_bytes(SECRET)
    (folder / "submission_secret.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"timestamp.txt": TIMESTAMP}
