"""A TA's first day, the three commands of the TAs' guide (docs/tas/index.md) run as written.

In a copy of the repository (:func:`conftest.scratch_repository`), the guide's
block is taken from the page and run line by line with bash: a course folder
for the term, ``make course COURSE="terms/2027 spring"`` (a path with a space);
a Moodle download with Moodle's own kind of name, put where the guide says
(``downloads/LA101-Clustering lab-4242.zip``), graded with ``make grade-all``;
the feedback pages, ``grades.csv``, the class report and Moodle's files come
out; ``make formgrader`` starts on that course folder (as root, as the grading
account is here) and serves formgrader. Along the way, a step run on a folder
that is not a course says what to do.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import (
    doc_shell_block,
    ordinary_account,
    ordinary_repository,
    scratch_repository,
    without_slow_demonstrations,
)

from coursekit.steps import demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ASSIGNMENT = "clustering"
#: The TAs' guide's three commands, as typed there: make course, make grade-all, make formgrader.
GUIDE = "docs/tas/index.md"
MAKE_COURSE, GRADE_ALL, FORMGRADER = doc_shell_block(GUIDE, "make course").splitlines()


def run(line, repository, environment, timeout=300, **kw):
    """One command line as typed, run by bash in the copy of the repository; the finished process."""
    return subprocess.run(["bash", "-e", "-c", line], cwd=repository, env=environment, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def make(*arguments, repository, environment, timeout=300, **variables):
    """``make`` in the copy of the repository, with ``VARIABLE=value`` arguments; the finished process."""
    command = ["make", "--no-print-directory", *arguments, *(f"{name}={value}" for name, value in variables.items())]
    return subprocess.run(command, cwd=repository, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def term(tmp_path_factory, master_notebook, release_notebook):
    """(course folder, download, repository copy, environment): the guide's ``make course`` run, the download in place."""
    repository = tmp_path_factory.mktemp("first day") / "a course repository"
    repository.mkdir()
    environment = scratch_repository(repository)
    made = run(MAKE_COURSE, repository, environment)
    assert made.returncode == 0, made.stderr
    course = repository / "terms" / "2027 spring"
    assert (course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert "next: make grade-all" in made.stderr

    download = repository / "downloads" / "LA101-Clustering lab-4242.zip"
    download.parent.mkdir()
    solved = without_slow_demonstrations(demo.with_student(master_notebook, "Ada Lovelace", "20260001"))
    blank = demo.with_student(release_notebook, "Bo Blank", "20260002")
    with zipfile.ZipFile(download, "w") as archive:
        for folder, nb in {"Ada Lovelace_101_assignsubmission_file_": solved,
                           "Bo Blank_102_assignsubmission_file_": blank}.items():
            archive.writestr(f"{folder}/{ASSIGNMENT}.ipynb", nbformat.writes(nb))
    return course, download, repository, environment


def test_a_second_course_folder_by_the_same_name_is_refused_saying_why(term):
    _, _, repository, environment = term
    again = run(MAKE_COURSE, repository, environment)
    assert again.returncode != 0
    assert "already exists and is not an empty folder" in again.stderr


def test_a_folder_that_is_not_a_course_says_how_to_make_one(term, tmp_path):
    _, _, repository, environment = term
    graded = make("grade", repository=repository, environment=environment, COURSE=tmp_path / "no course")
    assert graded.returncode != 0
    assert "not a course folder" in graded.stderr and "make course COURSE=" in graded.stderr


def test_the_moodle_download_is_graded_returned_and_reported_in_the_term_s_folder(term):
    course, _, repository, environment = term
    done = run(GRADE_ALL, repository, environment)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "graded against its own copy of the master" in done.stderr
    # What the TA reads is the course's own lines: no configuration noise for every notebook (it was 62 lines).
    assert "not recognized by" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
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


def _jupyter_uids(session):
    """The user ids of the Jupyter processes in the process group ``session``."""
    uids = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            command = (status.parent / "cmdline").read_bytes()
            group = os.getpgid(int(status.parent.name))
        except OSError:
            continue  # a process that has ended
        if group == session and b"jupyter" in command:
            uids.add(int(fields["Uid"].split()[0]))
    return uids


def _formgrader_listing(command, repository, environment, jupyter_folder):
    """Start formgrader with ``command`` (a list) in ``repository``.

    Returns (formgrader's list of assignments, its output, the user ids its Jupyter processes run as).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**environment, "JUPYTER_PORT": str(port), "JUPYTER_TOKEN": "first-day",
           "JUPYTER_CONFIG_DIR": str(jupyter_folder / "cfg"), "JUPYTER_DATA_DIR": str(jupyter_folder / "data"),
           "JUPYTER_RUNTIME_DIR": str(jupyter_folder / "run")}
    process = subprocess.Popen(command, cwd=repository, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
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
        return listing, "".join(seen), _jupyter_uids(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_formgrader_starts_on_the_term_s_folder(term):
    """``make formgrader COURSE=...`` as root: Jupyter needs --allow-root there, and the target adds it."""
    course, _, repository, environment = term
    listing, output, _ = _formgrader_listing(["bash", "-e", "-c", FORMGRADER], repository, environment, course.parent)
    assert ASSIGNMENT in listing, listing[:500]
    assert "Running as root is not recommended" not in output


#: The ordinary account the TA works in, and its own install of the course (tools/ensure_ta_venv.sh, run by make test).
def test_formgrader_starts_for_an_ordinary_account_with_its_own_install(term):
    """The same command as a TA's account: its own copy of the repository, its own .venv (the distribution's Python)."""
    account = ordinary_account()
    course, _, _, _ = term
    base = Path(tempfile.mkdtemp(prefix="coursekit first day ", dir="/tmp"))  # not under root's private pytest folder
    try:
        repository, environment = ordinary_repository(base)
        shutil.copytree(course, repository / "terms" / "2027 spring", symlinks=True)  # the graded term
        (base / "jupyter").mkdir()
        subprocess.run(["chown", "-R", f"{account}:", str(repository), str(base / "jupyter")], check=True)
        listing, output, uids = _formgrader_listing(["runuser", "-u", account, "--", "bash", "-e", "-c", FORMGRADER],
                                                    repository, environment, base / "jupyter")
        assert ASSIGNMENT in listing, listing[:500]
        assert uids == {pwd.getpwnam(account).pw_uid}, uids  # served by the TA's account, not root
        assert "Permission denied" not in output and "Running as root" not in output, output[-2000:]
    finally:
        shutil.rmtree(base, ignore_errors=True)
