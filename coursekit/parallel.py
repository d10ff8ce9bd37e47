"""Grading many students at once: worker processes, shards, and gradebook merges.

nbgrader's gradebook is one SQLite file, and nbgrader writes to it while it
grades. Rather than have several processes fight over that file, every worker
grades into a private copy of the gradebook, and the copies are merged into
the course gradebook at the end by :func:`merge_gradebooks`, through nbgrader's
own API. The same merge combines the gradebooks of shards graded on separate
machines (``coursekit grade --shard i/N`` then ``coursekit merge``).

A worker that crashes loses nothing already graded: each student is committed
to the worker's gradebook as soon as it is graded, and the students that were
not finished are graded again, each in a fresh worker of its own, so that a
submission that kills its worker fails only itself.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from .results import FAILED, GradeResult

WORKER_DIR = ".grading"


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


# -- merging -------------------------------------------------------------------------------
def merge_gradebooks(target_url, source_urls, assignment, students=None):
    """Copy every autograded submission of ``assignment`` from ``source_urls`` into ``target_url``.

    Autograde results (auto scores, whether a cell needs manual grading, auto
    comments, flags, timestamps) are copied; manual grades already in the
    target are kept. A student graded in several sources takes the last one.

    Returns
    -------
    list of str
        The student ids merged.
    """
    merged = []
    with Gradebook(target_url) as target:
        for url in source_urls:
            with Gradebook(url) as source:
                try:
                    submissions = source.assignment_submissions(assignment)
                except MissingEntry:
                    continue
                for submission in submissions:
                    if students is not None and submission.student.id not in students:
                        continue
                    _copy_submission(source, target, assignment, submission)
                    merged.append(submission.student.id)
        target.db.commit()
    return merged


def _copy_submission(source, target, assignment, submission):
    student = submission.student
    target.update_or_create_student(
        student.id, first_name=student.first_name, last_name=student.last_name, email=student.email,
        lms_user_id=student.lms_user_id,
    )
    copy = target.update_or_create_submission(assignment, student.id, timestamp=submission.timestamp)
    copy.extension = submission.extension
    for notebook in submission.notebooks:
        twin = target.find_submission_notebook(notebook.notebook.name, assignment, student.id)
        twin.flagged = notebook.flagged
        for grade in notebook.grades:
            mine = target.find_grade(grade.cell.name, notebook.notebook.name, assignment, student.id)
            mine.auto_score = grade.auto_score
            mine.needs_manual_grade = grade.needs_manual_grade if mine.manual_score is None else mine.needs_manual_grade
        for comment in notebook.comments:
            mine = target.find_comment(comment.cell.name, notebook.notebook.name, assignment, student.id)
            mine.auto_comment = comment.auto_comment
    target.db.commit()


# -- worker processes ----------------------------------------------------------------------
_worker = {}


def _sqlite_path(url):
    return Path(url.removeprefix("sqlite:///"))


def _start_worker(course_root, main_db, config, allow_unsandboxed):
    """Pool initializer: a private gradebook copy and an nbgrader API for this process.

    A database server (PostgreSQL) takes concurrent writers itself: then the
    workers share it and nothing is copied or merged.
    """
    from .grade import nbgrader_api

    db = main_db
    if main_db.startswith("sqlite:///"):
        folder = Path(course_root) / WORKER_DIR
        folder.mkdir(exist_ok=True)
        copy = folder / f"worker-{os.getpid()}.db"
        shutil.copyfile(_sqlite_path(main_db), copy)
        db = f"sqlite:///{copy}"
    config.CourseDirectory.db_url = db
    _worker.update(course_root=Path(course_root), db=db, api=nbgrader_api(course_root, config, allow_unsandboxed))


def _grade_in_worker(assignment, student):
    from .grade import grade_student

    return grade_student(_worker["api"], _worker["course_root"], assignment, student, db=_worker["db"])


def grade_in_parallel(course_root, assignment, students, workers, config, main_db, allow_unsandboxed=False,
                      on_done=None):
    """Grade ``students`` with ``workers`` processes; return their GradeResults.

    Every worker grades into its own copy of the gradebook ``main_db`` (a
    sqlite URL); the copies are merged into it at the end, also after a crash.
    """
    course_root = Path(course_root)
    results = _run_pool(course_root, assignment, students, workers, config, main_db, allow_unsandboxed, on_done)
    # A crashed worker breaks the whole pool: grade what is left one student per
    # fresh process, so a submission that kills its worker only fails itself.
    for student in [s for s in students if s not in results]:
        results.update(_run_pool(course_root, assignment, [student], 1, config, main_db, allow_unsandboxed, on_done))
        if student not in results:
            from .grade import max_score

            best = max_score(main_db, assignment)
            results[student] = GradeResult(student, FAILED, None, best, "the grading worker process crashed on it")
            if on_done:
                on_done(results[student])
    return [results[s] for s in students]


def _run_pool(course_root, assignment, students, workers, config, main_db, allow_unsandboxed, on_done):
    """Grade ``students`` in a pool of ``workers``; return the results of those that finished."""
    results = {}
    context = multiprocessing.get_context("fork")
    start = (course_root, main_db, config, allow_unsandboxed)
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=start) as pool:
            futures = {pool.submit(_grade_in_worker, assignment, s): s for s in students}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    continue
                results[futures[future]] = result
                if on_done:
                    on_done(result)
    except BrokenProcessPool:
        pass
    finally:
        _merge_worker_dbs(course_root, assignment, students, main_db)
    return results


def _merge_worker_dbs(course_root, assignment, students, main_db):
    folder = Path(course_root) / WORKER_DIR
    dbs = sorted(folder.glob("worker-*.db")) if folder.is_dir() else []
    if dbs:
        merge_gradebooks(main_db, [f"sqlite:///{db}" for db in dbs], assignment, set(students))
    shutil.rmtree(folder, ignore_errors=True)


def merge_shards(course_root, assignment, gradebooks, target_db=None):
    """Merge shard gradebooks into the course gradebook, and their status files into one.

    ``target_db`` is a database URL (default: the course's gradebook.db).

    Returns
    -------
    list of str
        The students merged.
    """
    from .grade import db_url, register_assignment
    from .results import load_results, save_results, status_path

    course_root = Path(course_root)
    for path in gradebooks:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such shard gradebook")
    target_db = target_db or db_url(course_root)
    register_assignment(course_root, assignment, db=target_db, log=lambda message: None)
    merged = merge_gradebooks(target_db, [f"sqlite:///{Path(p).resolve()}" for p in gradebooks], assignment)
    status = status_path(course_root, assignment)
    results = {}
    for shard_file in sorted(status.parent.glob("grading_status-shard-*.json")):
        results.update({r.student: r for r in load_results(shard_file)})
    if results:
        save_results(status, list(results.values()))
    return merged
