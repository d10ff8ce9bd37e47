"""Grading many students at once: worker processes, interrupts, shards, and gradebook merges.

nbgrader's gradebook is one SQLite file, and nbgrader writes to it while it
grades. Rather than have several processes fight over that file, every worker
grades into a private copy of the gradebook, reads the student's submission
back as plain data (:func:`~coursekit.grading.gradebook.export_submission`) and hands it to the main
process with the result; the main process writes it into the course gradebook
(:func:`~coursekit.grading.gradebook.import_submission`, through nbgrader's own API) and then adds the
student to the status file, as each student finishes. The same export and
import merge the gradebooks of shards graded on separate machines
(``coursekit grade --shard i/N`` then ``coursekit merge``,
:func:`~coursekit.grading.gradebook.merge_gradebooks`).

A batch keeps what it finished:

- a worker that crashes (a segfault, an OOM kill) loses nothing already
  graded; the students that were being graded when it broke the pool are
  graded again later, each in a fresh worker of its own, so that a
  submission that kills its worker fails only itself, and the rest of the
  batch goes on with the same number of workers;
- workers die with their batch: each asks the kernel to kill it when the
  main process dies (``PR_SET_PDEATHSIG``) and watches its parent besides, so
  after ``kill -9`` of the main process no worker (and so no sandboxed
  kernel) is left grading into a copy that nobody will merge; the rerun
  grades only what is left, and clears the worker folders of dead batches;
- Ctrl-C (SIGINT) and SIGTERM (``timeout``, Slurm's time limit, a Kubernetes
  eviction) stop the batch cleanly (:class:`StopOnSignals`): no more work is
  handed out, the workers end (their sandboxed kernels die with them), and
  :class:`~coursekit.common.errors.GradingInterrupted` is raised. A student is
  in the status file as graded only once their scores are in the gradebook,
  and a rerun grades only what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from nbgrader.api import Gradebook
from sqlalchemy import event
from sqlalchemy.engine import Engine

from coursekit.common.errors import GradingInterrupted
from coursekit.common.results import FAILED, GRADED, GradeResult, load_results, save_results, shard_status_files, status_path
from coursekit.grading.gradebook import (
    db_url,
    export_submission,
    import_submission,
    max_score,
    merge_gradebooks,
    register_assignment,
    submitted_students,
)
from coursekit.grading.socket_folders import remove_stale_folders

#: Where workers keep their private gradebook copies: a folder per batch inside it, so that batches
#: running at the same time in one course folder (shards on the nodes of a cluster) never share one.
WORKER_DIR = ".grading"
#: Seconds between two looks at the finished students and the signals while a pool runs.
POLL_SECONDS = 0.2
#: Seconds a worker has to end after SIGTERM before it is killed.
KILL_AFTER_SECONDS = 5


def parse_shard(text):
    """'2/3' -> (2, 3): the 2nd of 3 shards (1-based)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (for example 2/3); got {text!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"--shard {text}: i must be between 1 and N")
    return index, count


def shard_of(students, index, count):
    """The students of shard ``index`` of ``count``: every count-th of the sorted list."""
    return [s for position, s in enumerate(sorted(students)) if position % count == index - 1]


# -- interrupts ----------------------------------------------------------------------------
class StopOnSignals:
    """While entered, SIGINT and SIGTERM ask the batch to stop instead of killing the process.

    The batch looks at ``signum`` between students (:meth:`check`); only
    inside :meth:`interruptible` (grading in this very process) does a signal
    raise :class:`~coursekit.common.errors.GradingInterrupted` at once. A signal ignored before
    (``nohup``) stays ignored, the earlier handlers come back on exit, and
    outside the main thread (where Python cannot install handlers) it does
    nothing. A worker forked meanwhile, before it sets its own handlers,
    ends on SIGTERM and ignores SIGINT, as it does afterwards.

    Attributes
    ----------
    signum : int or None
        The first signal received, None while there was none.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._owner = os.getpid()
        self._raise_now = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        return False

    def _on_signal(self, signum, frame):
        if os.getpid() != self._owner:
            _worker_signals()
            signal.raise_signal(signum)
            return
        self.signum = self.signum or signum
        if self._raise_now:
            self._raise_now = False  # once: the cleanup nbgrader does on the way out is not cut short
            raise GradingInterrupted(self.signum)

    def check(self):
        """Raise :class:`~coursekit.common.errors.GradingInterrupted` if a signal came."""
        if self.signum:
            raise GradingInterrupted(self.signum)

    @contextlib.contextmanager
    def interruptible(self):
        """A block in which a signal raises :class:`~coursekit.common.errors.GradingInterrupted` at once."""
        self.check()
        self._raise_now = True
        try:
            yield
        finally:
            self._raise_now = False


def _worker_signals():
    """A worker ends on SIGTERM and leaves Ctrl-C to the main process.

    Ctrl-C gets a handler that does nothing rather than SIG_IGN, which the
    kernels the worker starts would inherit.
    """
    signal.signal(signal.SIGINT, _ignore_signal)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ignore_signal(signum, frame):
    pass


# -- worker processes ----------------------------------------------------------------------
_worker = {}


def _sqlite_path(url):
    return Path(url.removeprefix("sqlite:///"))


def _copy_sqlite(source, target):
    """A consistent copy of a SQLite file, also while another process writes to it."""
    with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def without_waiting_for_the_disk(path):
    """Connections this process opens to the SQLite file ``path`` commit without waiting for the disk.

    For a worker's private copy of the gradebook, which is scratch: each
    student's results go from it to the course gradebook as soon as that
    student is graded, and the copy of a batch that dies is
    thrown away. nbgrader commits after nearly every cell it records (about 50
    commits a submission), and each commit waited for the disk (``fsync``, 2 to
    9 ms here) with the worker's core idle. ``PRAGMA synchronous = OFF`` leaves
    the writing to the operating system; the course gradebook keeps SQLite's
    default.
    """
    target = os.path.realpath(path)

    @event.listens_for(Engine, "connect")
    def _connected(connection, _record):
        if isinstance(connection, sqlite3.Connection) and \
                any(os.path.realpath(row[2]) == target for row in connection.execute("PRAGMA database_list") if row[2]):
            connection.execute("PRAGMA synchronous = OFF")


#: Linux's prctl option: a signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent):
    """End this worker when the process ``parent`` is gone, even after ``kill -9`` of it.

    Linux sends SIGKILL at once (``PR_SET_PDEATHSIG``); a thread that looks at
    the parent every second covers other systems and the case where the
    parent died before the request was made.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)

    def watch():
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(1)  # the batch is gone: nobody would merge what this worker grades

    threading.Thread(target=watch, name="coursekit-parent-watch", daemon=True).start()


def _start_worker(course_root, worker_dir, main_db, config, grade_one, make_api, allow_unsandboxed, parent):
    """Pool initializer: signals, death with the batch, a private gradebook copy and an nbgrader API.

    A database server (PostgreSQL) takes concurrent writers itself: then the
    workers share it and nothing is copied.
    """
    _worker_signals()
    _die_with_parent(parent)
    db = main_db
    if main_db.startswith("sqlite:///"):
        copy = Path(worker_dir) / f"worker-{os.getpid()}.db"
        _copy_sqlite(_sqlite_path(main_db), copy)
        without_waiting_for_the_disk(copy)
        db = f"sqlite:///{copy}"
    config.CourseDirectory.db_url = db
    _worker.update(course_root=Path(course_root), worker_dir=Path(worker_dir), db=db, main_db=main_db, grade_one=grade_one,
                   api=make_api(course_root, config, allow_unsandboxed))


def _started_marker(worker_dir, pid):
    """The file in which worker ``pid`` names the student it is grading."""
    return Path(worker_dir) / f"grading-{pid}.txt"


def _grade_in_worker(assignment, student):
    """(GradeResult, the student's submission as plain data, or None when the gradebook is shared).

    While it grades, the worker names the student in its marker file: if the
    worker dies, the main process knows whose submission it was on.
    """
    marker = _started_marker(_worker["worker_dir"], os.getpid())
    marker.write_text(student)
    result = _worker["grade_one"](_worker["api"], _worker["course_root"], assignment, student, db=_worker["db"])
    private = _worker["db"] != _worker["main_db"]
    data = export_submission(_worker["db"], assignment, student) if private else None
    marker.unlink(missing_ok=True)
    return result, data


@dataclass
class _Batch:
    """What the pools of one batch share."""

    course_root: Path
    worker_dir: Path
    assignment: str
    config: object
    main_db: str
    grade_one: Callable
    make_api: Callable
    allow_unsandboxed: bool
    on_done: Callable | None
    stop: StopOnSignals | None

    def check_stop(self):
        if self.stop:
            self.stop.check()


def grade_in_parallel(course_root, assignment, students, workers, config, main_db, grade_one, make_api,
                      allow_unsandboxed=False, on_done=None, stop=None):
    """Grade ``students`` with ``workers`` processes, saving each as it finishes; return their GradeResults.

    Parameters
    ----------
    course_root : path-like
        The course folder.
    assignment : str
        The assignment.
    students : list of str
        Who to grade.
    workers : int
        Processes grading at the same time.
    config : traitlets.config.Config
        nbgrader settings.
    main_db : str
        URL of the course gradebook. Each worker grades into its own copy (of a
        SQLite file); a student's results are written into ``main_db`` as soon
        as that student is graded, before ``on_done`` hears of it.
    grade_one : callable
        ``grade_one(api, course_root, assignment, student, db=...)`` grades one
        student in a worker and returns a GradeResult
        (:func:`coursekit.grading.autograde.grade_student`).
    make_api : callable
        ``make_api(course_root, config, allow_unsandboxed)`` makes the nbgrader
        API a worker grades with (:func:`coursekit.grading.gradebook.nbgrader_api`).
    allow_unsandboxed : bool
        Grade even where no sandbox can be made.
    on_done : callable, optional
        Called with each GradeResult once it is in the gradebook.
    stop : StopOnSignals, optional
        When it has a signal, the workers are ended and GradingInterrupted is
        raised; everything finished before is saved.

    Returns
    -------
    list of GradeResult
        In the order of ``students``.
    """
    (Path(course_root) / WORKER_DIR).mkdir(exist_ok=True)
    worker_dir = Path(tempfile.mkdtemp(prefix=f"batch-{os.getpid()}-", dir=Path(course_root) / WORKER_DIR))
    batch = _Batch(Path(course_root), worker_dir, assignment, config, main_db, grade_one, make_api, allow_unsandboxed,
                   on_done, stop)
    try:
        # A crashed worker breaks the whole pool. The students its workers were on
        # are suspects, graded at the end one per fresh process, so that a
        # submission that kills its worker fails only itself; the others go on
        # in a new pool of the same size.
        results, suspects, left = {}, [], list(students)
        while left:
            finished, on_it = _run_pool(batch, left, workers)
            results.update(finished)
            suspects += [s for s in on_it if s not in suspects]
            unfinished = [s for s in left if s not in results and s not in suspects]
            if unfinished == left:  # no progress and no suspect (a worker that cannot start): one at a time
                suspects += unfinished
                break
            left = unfinished
        for student in suspects:
            finished, _ = _run_pool(batch, [student], 1)
            results.update(finished)
            if student not in results:
                best = max_score(main_db, assignment)
                crashed = GradeResult(student, FAILED, None, best, "the grading worker process crashed on it")
                results[student] = _save(batch, crashed, None)
    finally:
        shutil.rmtree(worker_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            worker_dir.parent.rmdir()  # unless another batch still uses it
        remove_stale_folders()  # the socket folders of workers ended before they could remove them
    return [results[s] for s in students]


def remove_dead_batches(course_root):
    """Remove the worker folders of batches whose main process is gone (``kill -9``, a power cut).

    Batches of other processes still running (shards in the same course
    folder) keep theirs; ``.grading`` itself goes when it is left empty.
    """
    folder = Path(course_root) / WORKER_DIR
    for path in folder.glob("batch-*-*"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _run_pool(batch, students, workers):
    """Grade ``students`` in a pool of ``workers``.

    Each result is saved as it comes in (:func:`_save`). A crashed worker
    breaks the pool: the students not finished are left out. On a signal the
    workers are ended and GradingInterrupted is raised.

    Returns
    -------
    (dict, list)
        The results of the students that finished, and the students the
        workers were on when the pool broke (none if it did not).
    """
    batch.check_stop()
    results = {}
    context = multiprocessing.get_context("fork")
    for stale in batch.worker_dir.glob("grading-*.txt"):
        stale.unlink()
    start = (batch.course_root, batch.worker_dir, batch.main_db, batch.config, batch.grade_one, batch.make_api,
             batch.allow_unsandboxed, os.getpid())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=start)
    try:
        pending = {pool.submit(_grade_in_worker, batch.assignment, s): s for s in students}
        while pending:
            done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                student = pending.pop(future)
                try:
                    result, data = future.result()
                except BrokenProcessPool:
                    continue
                results[student] = _save(batch, result, data)
            batch.check_stop()
    except BrokenProcessPool:
        pass
    except BaseException:
        _end_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    on_it = []
    for marker in sorted(batch.worker_dir.glob("grading-*.txt")):
        student = marker.read_text()
        if student in students and student not in results:
            on_it.append(student)
        marker.unlink()
    return results, on_it


def _save(batch, result, data):
    """Put a worker's result into the course gradebook, then pass it on (so the scores are in first).

    The score is read back from the course gradebook: it holds any manual
    grades, and it is the single source of truth for points.
    """
    if data is not None:
        with Gradebook(batch.main_db) as gradebook:
            import_submission(gradebook, batch.assignment, data)
            if result.status == GRADED:
                submission = gradebook.find_submission(batch.assignment, result.student)
                result = replace(result, score=float(submission.score), max_score=float(submission.max_score))
    if batch.on_done:
        batch.on_done(result)
    return result


def _end_workers(pool):
    """End the pool's workers now (SIGTERM, then SIGKILL); their sandboxed kernels die with them."""
    processes = list((pool._processes or {}).values())  # the only handle on them before Python 3.14
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(KILL_AFTER_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


def merge_shards(course_root, assignment, gradebooks, target_db=None):
    """Merge shard gradebooks into the course gradebook, and their status files into one.

    ``target_db`` is a database URL (default: the course's gradebook.db).

    Returns
    -------
    list of str
        The students merged.
    """
    course_root = Path(course_root)
    for path in gradebooks:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such shard gradebook")
    target_db = target_db or db_url(course_root)
    register_assignment(course_root, assignment, db=target_db)
    merged = merge_gradebooks(target_db, [f"sqlite:///{Path(p).resolve()}" for p in gradebooks], assignment)
    status = status_path(course_root, assignment)
    results = {}
    for shard_file in shard_status_files(course_root, assignment).values():
        results.update({r.student: r for r in load_results(shard_file)})
    if results:
        save_results(status, list(results.values()))
    return merged


def ungraded_after_merge(course_root, assignment, gradebooks):
    """The submitted students that no shard has a result for, after :func:`merge_shards`.

    A shard whose task was cancelled, or never ran, leaves its remaining
    students without a result. Each comes with the shard it belongs to,
    ``(i, N)``, found as ``coursekit grade --shard i/N`` finds it (every N-th
    student of the sorted roster: the submission folders and the students
    the shard gradebooks know), or None when the shards' status files do not
    agree on N.

    Returns
    -------
    list of (str, (int, int) or None)
    """
    course_root = Path(course_root)
    status = status_path(course_root, assignment)
    done = {r.student for r in load_results(status)} if status.is_file() else set()
    submitted = submitted_students(course_root, assignment)
    known = set(submitted)
    for path in gradebooks:
        with Gradebook(f"sqlite:///{Path(path).resolve()}") as gradebook:
            known.update(student.id for student in gradebook.students)
    counts = {count for _, count in shard_status_files(course_root, assignment)}
    count = counts.pop() if len(counts) == 1 else None
    shard = {}
    if count:
        for index in range(1, count + 1):
            shard.update(dict.fromkeys(shard_of(known, index, count), (index, count)))
    return [(student, shard.get(student)) for student in submitted if student not in done]
