"""A TA's first day, through ``make`` as the TAs' guide types it (docs/tas/index.md).

A course folder for the term is made with ``make course COURSE=...`` in a path
with a space in it; a Moodle download with Moodle's own kind of name
(``LA101-Clustering lab-4242.zip``) is graded with ``make grade-all``; the
feedback pages, ``grades.csv``, the class report and Moodle's files come out;
``make formgrader`` starts on that course folder (as root, as the grading
account is here) and serves formgrader. Along the way, a step run on a folder
that is not a course says what to do.
"""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
import zipfile

import nbformat
import pytest
from conftest import without_slow_demonstrations

from coursekit.common.paths import ROOT
from coursekit.steps import demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ASSIGNMENT = "clustering"


def make(*arguments, timeout=300, **variables):
    """``make`` as typed in the repository, with ``VARIABLE=value`` arguments; the finished process."""
    command = ["make", "--no-print-directory", *arguments, *(f"{name}={value}" for name, value in variables.items())]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def term(tmp_path_factory, master_notebook, release_notebook):
    """A course folder made by ``make course`` and a Moodle download of two students beside it."""
    base = tmp_path_factory.mktemp("first day")
    course = base / "LA101 autumn"
    made = make("course", COURSE=course)
    assert made.returncode == 0, made.stderr
    assert (course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert "next: make grade-all" in made.stderr

    download = base / "LA101-Clustering lab-4242.zip"
    solved = without_slow_demonstrations(demo.with_student(master_notebook, "Ada Lovelace", "20260001"))
    blank = demo.with_student(release_notebook, "Bo Blank", "20260002")
    with zipfile.ZipFile(download, "w") as archive:
        for folder, nb in {"Ada Lovelace_101_assignsubmission_file_": solved,
                           "Bo Blank_102_assignsubmission_file_": blank}.items():
            archive.writestr(f"{folder}/{ASSIGNMENT}.ipynb", nbformat.writes(nb))
    return course, download


def test_a_second_course_folder_by_the_same_name_is_refused_saying_why(term):
    course, _ = term
    again = make("course", COURSE=course)
    assert again.returncode != 0
    assert "already exists and is not an empty folder" in again.stderr


def test_a_folder_that_is_not_a_course_says_how_to_make_one(tmp_path):
    graded = make("grade", COURSE=tmp_path / "no course")
    assert graded.returncode != 0
    assert "not a course folder" in graded.stderr and "make course COURSE=" in graded.stderr


def test_the_moodle_download_is_graded_returned_and_reported_in_the_term_s_folder(term):
    course, download = term
    done = make("grade-all", COURSE=course, SUBMISSIONS=download)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "graded against its own copy of the master" in done.stderr
    # Moodle's participant ids name the students; the repository's own folders are untouched.
    for student in ("101", "102"):
        assert (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file(), student
    grades = (course / "reports" / ASSIGNMENT / "grades.csv").read_text()
    assert re.search(r"^101,graded,.*,23,27,", grades, re.M) and re.search(r"^102,graded,.*,1,27,", grades, re.M), grades
    assert (course / "reports" / ASSIGNMENT / "class_report.html").is_file()
    with zipfile.ZipFile(course / "reports" / ASSIGNMENT / "lms" / "moodle_feedback_files.zip") as archive:
        names = archive.namelist()
    assert any(name.startswith("Ada Lovelace_101_") and name.endswith(".html") for name in names), names
    assert (course / "reports" / ASSIGNMENT / "lms" / "moodle_grading_worksheet.csv").is_file()


def test_formgrader_starts_on_the_term_s_folder(term):
    """``make formgrader COURSE=...`` as root: Jupyter needs --allow-root there, and the target adds it."""
    course, _ = term
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "JUPYTER_PORT": str(port), "JUPYTER_TOKEN": "first-day", "JUPYTER_CONFIG_DIR": str(course.parent / "cfg"),
           "JUPYTER_DATA_DIR": str(course.parent / "data"), "JUPYTER_RUNTIME_DIR": str(course.parent / "run")}
    process = subprocess.Popen(["make", "--no-print-directory", "formgrader", f"COURSE={course}"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url, seen = None, []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            url = f"http://127.0.0.1:{port}" if f"http://127.0.0.1:{port}/" in line else None
        assert url, "".join(seen)[-3000:]
        listing, deadline = None, time.monotonic() + 60
        while listing is None:
            try:
                with urllib.request.urlopen(f"{url}/formgrader/api/assignments?token=first-day", timeout=30) as response:
                    listing = response.read().decode()
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.25)
        assert ASSIGNMENT in listing, listing[:500]
        assert "Running as root is not recommended" not in "".join(seen)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
