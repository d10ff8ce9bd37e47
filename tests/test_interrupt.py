"""An interrupted grading batch keeps its work.

A scratch class of cheap submissions (the release of the small assignment,
``conftest.small_assignment``, with a name filled in, 1 point; one without a
valid student id, 0 points) and one that hangs (an
answer cell ending in a loop that never ends; it sleeps, so that it does not
hold a core while the test waits) is graded by ``python -m coursekit
grade --workers 2`` in a subprocess, with the course's own settings, so the
hanging student is still running when the batch is stopped: by SIGTERM
(what ``timeout``, Slurm and Kubernetes send), by Ctrl-C (SIGINT to the whole
process group, as a terminal sends it), or by SIGKILLing one worker. After
each, every student the status file lists as graded has its scores in the
gradebook, and a rerun grades only the rest (the hanging student's loop is
stopped at its cell's calibrated time limit) and ends where an uninterrupted
run would.
"""

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import signal_state
from nbgrader.api import Gradebook

from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.common.results import GRADED, load_results, status_path
from coursekit.grading import socket_folders
from coursekit.grading.parallel import GradingInterrupted, StopOnSignals
from coursekit.steps import build, demo
from coursekit.steps.grade import grade

ASSIGNMENT = "clustering"
# What an uninterrupted run gives each student (the hanging answer only costs
# tests that a blank notebook fails anyway).
SCORES = {"ann": 1.0, "ben": 0.0, "cat": 1.0, "hung": 1.0}
WAIT = 120  # seconds any one thing may take before a test gives up


def _hang(nb):
    nb = copy.deepcopy(nb)
    cell = next(c for c in nb.cells if notebooks.grade_id(c) == "assign_clusters")
    cell.source += "\n\nimport time\nwhile True:\n    time.sleep(0.01)"
    return nb


@pytest.fixture(scope="module")
def template(tmp_path_factory, copy_small_course, small_release):
    """A registered scratch course with the class submitted (copied by each test)."""
    blank = demo.with_student(small_release, "Ann", "20260001")
    submissions = {"ann": blank, "ben": demo.with_student(small_release, "Ben", "not an id"),
                   "cat": blank, "hung": _hang(blank)}
    return copy_small_course(tmp_path_factory.mktemp("template") / "course", submissions)


def _course(template, tmp_path, students):
    """A copy of the template course holding only ``students``' submissions."""
    course = tmp_path / "course"
    shutil.copytree(template, course)
    for folder in (course / "submitted").iterdir():
        if folder.name not in students:
            shutil.rmtree(folder)
    return course


def _as_started_from_a_shell():
    """In the child before it runs Python: SIGINT and SIGTERM as a shell leaves them (default, not blocked).

    A child inherits ignored and blocked signals from whatever started it;
    the test's own process (a pytest-xdist worker, after other modules ran in
    it) is not a shell, and a grading process that inherited an ignored
    SIGINT rightly keeps ignoring it (as under nohup).
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM])


@pytest.fixture
def shell_signals():
    """This process's SIGINT and SIGTERM as in a fresh Python started from a shell, for the test; restored after."""
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT, signal.SIGTERM])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@pytest.fixture
def start():
    """``start(course)``: ``python -m coursekit grade --workers 2`` on ``course``, in a process group of its own.

    Started as from a shell (:func:`_as_started_from_a_shell`), whatever the
    test process's own signal state. Its output goes to files beside the
    course (a full pipe would stall it; see :func:`_output`); whatever is left
    running at the end of the test is killed.
    """
    started, folders = [], []

    def start(course):
        # A temporary folder of its own, whose leftovers are checked (_temporary_folder); short, as /tmp is:
        # the kernels' socket paths under it must fit in 107 bytes.
        folders.append(tempfile.mkdtemp(prefix="ck-test-"))
        (course.parent / "TMPDIR").write_text(folders[-1])
        with open(course.parent / "grade.out", "w") as out, open(course.parent / "grade.err", "w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "coursekit", "grade", "--root", str(course), "--workers", "2"],
                cwd=ROOT, stdout=out, stderr=err, start_new_session=True, preexec_fn=_as_started_from_a_shell,
                env={**os.environ, "TMPDIR": folders[-1]},
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _temporary_folder(course):
    """The temporary folder of the grading process started on ``course``."""
    return Path((course.parent / "TMPDIR").read_text())


def _output(course):
    """(stdout, stderr) of the grading process started on ``course``."""
    return (course.parent / "grade.out").read_text(), (course.parent / "grade.err").read_text()


def _saved(course):
    """{student: score} of the students the status file lists as graded."""
    try:
        entries = json.loads(status_path(course, ASSIGNMENT).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {e["student"]: e["score"] for e in entries if e["status"] == GRADED}


def _poll(condition, process, course, what):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"grading ended ({process.returncode}) before {what}:\n{_output(course)[1][-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"no {what} within {WAIT} s")


def _children(pid):
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _assert_consistent(course):
    """Every student the status file lists as graded has its scores in the gradebook; return {student: score}."""
    saved = _saved(course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student, score in saved.items():
            submission = gradebook.find_submission(ASSIGNMENT, student)
            assert submission.score == score == SCORES[student], student
            grades = [g for nb in submission.notebooks for g in nb.grades]
            assert all(g.auto_score is not None for g in grades if not g.needs_manual_grade), student
    return saved


def _rerun(course):
    """Grade again in this process, with the same settings (others would regrade everyone); results by student.

    The hanging student's loop is stopped at its cell's calibrated limit.
    """
    results = grade(course, ASSIGNMENT, workers=2, progress=False)
    return {r.student: r for r in results}


def _stop_batch(template, tmp_path, start, signum):
    """Start a batch of ann, ben and hung, send ``signum`` to its process group once a student is saved.

    Checks what any stop must leave: the exit status, no traceback, no worker
    folder, a consistent gradebook, an empty temporary folder; returns (course, {student: score} saved).
    """
    course = _course(template, tmp_path, ["ann", "ben", "hung"])
    process = start(course)
    _poll(lambda: _saved(course), process, course, "a graded student in the status file")
    os.killpg(process.pid, signum)  # the whole group, as a terminal's Ctrl-C; workers leave it to the main process
    process.wait(timeout=WAIT)
    _, err = _output(course)

    assert process.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert not (course / ".grading").exists(), "worker gradebooks are removed"
    saved = _assert_consistent(course)
    assert saved and "hung" not in saved
    assert f"warning: interrupted: {len(saved)} of 3 graded and saved" in err
    # Nothing left in the temporary folder: no kernel's or warm parent's sockets (the warm parent is out of
    # the process group, so Ctrl-C does not kill it under the workers, which then started their own).
    assert not list(_temporary_folder(course).iterdir())
    return course, saved


@pytest.mark.slow
def test_ctrl_c_stops_the_batch_and_keeps_what_it_graded(template, tmp_path, start):
    """SIGINT to the process group, as a terminal's Ctrl-C; the rerun after it is the SIGTERM test's."""
    _stop_batch(template, tmp_path, start, signal.SIGINT)


@pytest.mark.slow
def test_a_stopped_batch_keeps_what_it_graded_and_the_rerun_does_the_rest(template, tmp_path, start, log_lines):
    """SIGTERM, what ``timeout``, Slurm and Kubernetes send; then a rerun grades only the rest."""
    course, saved = _stop_batch(template, tmp_path, start, signal.SIGTERM)
    untouched = {s: (course / "autograded" / s / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").stat().st_mtime_ns for s in saved}

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    results = _rerun(course)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers, "handlers restored"
    assert f"{len(saved)} submission(s) unchanged since they were graded: kept (use --force to regrade)" in log_lines
    for student, mtime in untouched.items():
        assert (course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").stat().st_mtime_ns == mtime
    assert {s: (r.status, r.score) for s, r in results.items()} == {
        s: (GRADED, SCORES[s]) for s in ["ann", "ben", "hung"]}
    assert {r.student: r.score for r in load_results(status_path(course, ASSIGNMENT))} == {
        s: SCORES[s] for s in results}
    _assert_consistent(course)


@pytest.mark.slow
def test_a_killed_worker_leaves_gradebook_and_status_consistent_and_the_batch_completes(template, tmp_path, start):
    course = _course(template, tmp_path, ["ann", "ben", "cat"])
    process = start(course)
    _poll(lambda: _saved(course), process, course, "a graded student in the status file")
    # A worker while the class is graded: one student is saved, the others are being graded.
    busy = _poll(lambda: _workers(process.pid), process, course, "a worker")
    os.kill(busy[0], signal.SIGKILL)
    _assert_consistent(course)
    process.wait(timeout=WAIT)

    assert process.returncode == 0, _output(course)[1][-3000:]
    assert not (course / ".grading").exists()
    assert _assert_consistent(course) == {s: SCORES[s] for s in ["ann", "ben", "cat"]}


def _workers(pid):
    """The grading process ``pid``'s workers: its forks, with its command line.

    The warm parent of the kernels (``bwrap``) is a child too, and not one of
    them; a warm kernel is the warm parent's child, not its worker's.
    """
    return [child for child in _children(pid) if _command_line(child) == _command_line(pid)]


def _descendants(pid):
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def _running(pid):
    """Whether ``pid`` is a process that still runs (a zombie waiting for its parent does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_a_batch_killed_with_sigkill_leaves_no_process_and_the_rerun_does_the_rest(template, tmp_path, start):
    course = _course(template, tmp_path, ["ann", "ben", "hung"])
    process = start(course)
    _poll(lambda: _saved(course), process, course, "a graded student in the status file")
    # The workers in the middle of the class, with their kernels, as the main process is killed.
    _poll(lambda: _workers(process.pid), process, course, "a worker")
    batch = _descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=WAIT)
    # 20 s: on two busy cores (the suite's other worker grading beside this one) a process
    # whose parent is gone once took more than 10 s to be gone as well.
    deadline = time.monotonic() + 20
    while [p for p in batch if _running(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = {p: _command_line(p) for p in batch if _running(p)}
    assert survivors == {}, f"processes of the batch outlived it by 20 s: {survivors}"
    # Its warm parent's folder stays (kill -9 gives no chance to remove it); the next warm parent clears it.
    left = sorted(str(path) for path in _temporary_folder(course).iterdir())
    assert left and sorted(socket_folders.remove_stale_folders(_temporary_folder(course))) == left
    saved = _assert_consistent(course)
    assert saved and "hung" not in saved

    results = _rerun(course)
    assert {s: (r.status, r.score) for s, r in results.items()} == {
        s: (GRADED, SCORES[s]) for s in ["ann", "ben", "hung"]}
    assert not (course / ".grading").exists(), "the dead batch's worker folder is cleared by the rerun"
    _assert_consistent(course)


def test_signals_stop_the_batch_only_while_it_runs(shell_signals):
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignals() as stop:
        stop.check()
        os.kill(os.getpid(), signal.SIGTERM)  # noted, not raised: the batch looks between students
        deadline = time.monotonic() + 5
        while stop.signum is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(GradingInterrupted) as stopped:
            stop.check()
        assert stopped.value.exit_code == 143 and isinstance(stopped.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before

    with StopOnSignals() as stop:  # grading in this process: stopped at once
        started = time.monotonic()
        with pytest.raises(GradingInterrupted) as stopped:
            with stop.interruptible():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(10)
        assert stopped.value.exit_code == 130 and time.monotonic() - started < 5

    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup
    try:
        with StopOnSignals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, ignored)


@pytest.mark.slow
def test_stop_on_signals_still_works_after_jupyter_and_nbgrader_ran_in_this_process(
        tmp_path, copy_small_course, shell_signals):
    """What grading does in-process (nbgrader's generate_assignment, the trial kernel in the sandbox) leaves
    SIGINT and SIGTERM as it found them, so Ctrl-C still stops a batch afterwards. (Every test of the suite
    is also checked for this, conftest.signals_left_as_found, among them those that autograde in-process.)"""
    from coursekit.grading.gradebook import register_assignment
    from coursekit.grading.sandbox import check_kernel

    before = signal_state()
    course = copy_small_course(tmp_path / "course")
    (course / "gradebook.db.registered").unlink()  # register again: nbgrader's generate_assignment in-process
    register_assignment(course, ASSIGNMENT)
    check_kernel()
    assert signal_state() == before, "grading left this process's signal handlers or mask changed"
    with StopOnSignals() as stop:
        with pytest.raises(GradingInterrupted):
            with stop.interruptible():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(10)
