"""The course gradebook: where it is, what it holds, and moving submissions between gradebooks.

nbgrader's gradebook (SQLite, or a database server) is the single source of
truth for points. This module knows its URL (:func:`gradebook_url`), puts the
master's cells into it (:func:`register_assignment`), lists the class
(:func:`find_roster`), reads scores back (:func:`read_score`), and carries a
student's autograde results from one gradebook to another as plain data
(:func:`export_submission`, :func:`import_submission`): that is how a grading
worker hands each student back, and how shards are merged
(:func:`merge_gradebooks`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import nbgrader.api
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from nbgrader import dbutil
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning

from coursekit.common import course
from coursekit.common.paths import ROOT

log = logging.getLogger(__name__)

_alembic_head = {}


def alembic_head():
    """The newest revision of nbgrader's gradebook schema, read in this process (once).

    nbgrader stamps every gradebook it creates with it, and finds it by
    running ``alembic heads`` in a new process (``nbgrader.api.get_alembic_version``):
    1.5 to 3 s of CPU for a Python that imports SQLAlchemy and alembic, each
    time a course, a test or a benchmark round starts a gradebook. The answer
    is a constant of the installed nbgrader; alembic's own API reads it from
    the same migration scripts in about 0.2 s.
    """
    if "head" not in _alembic_head:
        config = AlembicConfig()
        config.set_main_option("script_location", dbutil.ALEMBIC_DIR)
        _alembic_head["head"] = ScriptDirectory.from_config(config).get_current_head()
    return _alembic_head["head"]


# nbgrader.api.Gradebook looks the function up at each call: from now on it gets the answer in-process.
nbgrader.api.get_alembic_version = alembic_head


def ensure_tools_on_path():
    """Put this Python's ``bin`` on PATH: nbgrader runs ``alembic`` from there to create or upgrade a gradebook."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def nbgrader_api(course_root, config=None, allow_unsandboxed=False):
    """nbgrader's Python API for the course at ``course_root`` (settings: ``nbgrader_config.py``)."""
    config = config or course.load_course_config(ROOT)
    config.CourseDirectory.root = str(course_root)
    if allow_unsandboxed:
        config.Sandbox.allow_unsandboxed = True
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def db_url(course_root):
    return f"sqlite:///{Path(course_root).resolve() / 'gradebook.db'}"


def gradebook_url(course_root, config, gradebook=None):
    """The gradebook to grade into: a given file, else ``c.CourseDirectory.db_url``, else gradebook.db."""
    if gradebook:
        return f"sqlite:///{Path(gradebook).resolve()}"
    if "db_url" in config.get("CourseDirectory", {}) and config.CourseDirectory.db_url:
        return config.CourseDirectory.db_url
    return db_url(course_root)


def _master_hash(course_root, assignment):
    source = Path(course_root) / "source" / assignment
    digest = hashlib.sha256()
    for path in sorted(source.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _registration_marker(course_root, db):
    """Where we note which master a gradebook holds (beside a SQLite file; in the course otherwise)."""
    if db.startswith("sqlite:///"):
        return Path(db.removeprefix("sqlite:///") + ".registered")
    return Path(course_root) / (".gradebook-" + hashlib.sha256(db.encode()).hexdigest()[:12] + ".registered")


def register_assignment(course_root, assignment, db=None):
    """Make sure the gradebook knows the master's cells (needed by autograde).

    Runs nbgrader's ``generate_assignment`` (its Python API, in this process)
    against the gradebook (``db``, a URL; default the course's) with the
    release directory pointed at a scratch folder. Skipped (it costs about
    3 s) when the gradebook already holds this very master, helper and data.

    Raises
    ------
    coursekit.common.course.BuildError
        When nbgrader fails or logs an error, with its log.
    """
    db = db or db_url(course_root)
    source_dir = Path(course_root) / "source" / assignment
    course.sync_course_files(source_dir, course.course_files(ROOT))
    marker, wanted = _registration_marker(course_root, db), f"{assignment} {_master_hash(course_root, assignment)}"
    if marker.is_file() and wanted in marker.read_text().splitlines() and _knows(db, assignment):
        return
    ensure_tools_on_path()
    with tempfile.TemporaryDirectory(prefix="coursekit-release-") as scratch:
        config = course.load_course_config(ROOT)
        config.CourseDirectory.release_directory = scratch
        config.CourseDirectory.db_url = db
        outcome = nbgrader_api(course_root, config=config).generate_assignment(assignment, force=True)
    # Like the command line, nbgrader logs some failures and still reports success.
    if not outcome["success"] or "[ERROR]" in (outcome.get("log") or ""):
        raise course.BuildError(f"nbgrader generate_assignment {assignment} (registering it in {db}) failed:\n"
                               f"{((outcome.get('log') or '') + (outcome.get('error') or ''))[-4000:]}")
    others = [line for line in (marker.read_text().splitlines() if marker.is_file() else [])
              if not line.startswith(f"{assignment} ")]
    marker.write_text("\n".join(others + [wanted]) + "\n")
    log.info(f"registered {assignment} in {db}")


def _knows(db, assignment):
    with Gradebook(db) as gradebook:
        try:
            return bool(gradebook.find_assignment(assignment).notebooks)
        except MissingEntry:
            return False


def submitted_students(course_root, assignment):
    """The student ids with a submission folder of ``assignment``, sorted."""
    submitted_dir = Path(course_root) / "submitted"
    return sorted(
        p.name for p in submitted_dir.glob("*") if (p / assignment).is_dir() and not p.name.startswith(".")
    ) if submitted_dir.is_dir() else []


def known_students(db):
    """The ids of every student in the gradebook at URL ``db``."""
    with Gradebook(db) as gradebook:
        return {student.id for student in gradebook.students}


def find_roster(course_root, assignment, students=None, db=None):
    """(submitted, missing): student ids with a submission folder, and known students without one."""
    submitted = submitted_students(course_root, assignment)
    missing = sorted(known_students(db or db_url(course_root)) - set(submitted))
    if students:
        wanted = set(students)
        submitted = [s for s in submitted if s in wanted]
        missing = sorted(wanted - set(submitted))
    return submitted, missing


#: formgrader's first name for a student whose name nobody gave (their id is the last name): it lists
#: "20260005, (no name found)" rather than "None, None".
NO_NAME = "(no name found)"


def set_student_names(db, names, students=()):
    """Give students their names in the gradebook at URL ``db`` (formgrader lists "Last, First").

    ``names`` is {student id: full name}; the last word is the last name.
    Each of ``students`` that no name is known for, here or already in the
    gradebook, gets its id as last name and :data:`NO_NAME` as first name.
    Students are created when missing, as autograde would create them.
    """
    with Gradebook(db) as gradebook:
        for student, name in names.items():
            first, _, last = name.rpartition(" ")
            gradebook.update_or_create_student(student, first_name=first or None, last_name=last)
        for student in students:
            if student not in names:
                known = gradebook.update_or_create_student(student)
                if not known.first_name and not known.last_name:
                    gradebook.update_or_create_student(student, first_name=NO_NAME, last_name=student)


def read_score(db, assignment, student):
    """(score, max_score) of a student's submission from the gradebook at URL ``db``."""
    with Gradebook(db) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        return float(submission.score), float(submission.max_score)


def max_score(db, assignment):
    with Gradebook(db) as gradebook:
        try:
            return float(gradebook.find_assignment(assignment).max_score)
        except MissingEntry:
            return 0.0


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
    # nbgrader's own session handling trips SQLAlchemy's autoflush warning; it is harmless noise.
    with Gradebook(target_url) as target, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        for url in source_urls:
            for data in _exported_submissions(url, assignment, students):
                import_submission(target, assignment, data)
                merged.append(data["student"]["id"])
    return merged


def _exported_submissions(url, assignment, students=None):
    """:func:`submission_data` of every submission of ``assignment`` in the gradebook at ``url`` (of ``students``)."""
    with Gradebook(url) as source:
        try:
            submissions = source.assignment_submissions(assignment)
        except MissingEntry:
            return []
        return [submission_data(s) for s in submissions if students is None or s.student.id in students]


def export_submission(url, assignment, student):
    """What autograde wrote for ``student`` in the gradebook at ``url``, as plain data (None if nothing).

    See :func:`submission_data`.
    """
    with Gradebook(url) as source:
        try:
            return submission_data(source.find_submission(assignment, student))
        except MissingEntry:
            return None


def submission_data(submission):
    """An nbgrader submission as plain data (picklable, independent of any database session).

    Parameters
    ----------
    submission : nbgrader.api.SubmittedAssignment

    Returns
    -------
    dict
        ``student`` (id, names, email, LMS id), ``timestamp``, ``extension``
        and ``notebooks``: per notebook its ``name``, ``flagged``, ``grades``
        (``cell``, ``auto_score``, ``needs_manual_grade``) and ``comments``
        (``cell``, ``auto_comment``).
    """
    student = submission.student
    return {
        "student": {"id": student.id, "first_name": student.first_name, "last_name": student.last_name,
                    "email": student.email, "lms_user_id": student.lms_user_id},
        "timestamp": submission.timestamp,
        "extension": submission.extension,
        "notebooks": [
            {
                "name": notebook.notebook.name,
                "flagged": notebook.flagged,
                "grades": [{"cell": g.cell.name, "auto_score": g.auto_score, "needs_manual_grade": g.needs_manual_grade}
                           for g in notebook.grades],
                "comments": [{"cell": c.cell.name, "auto_comment": c.auto_comment} for c in notebook.comments],
            }
            for notebook in submission.notebooks
        ],
    }


def import_submission(target, assignment, data):
    """Write a submission exported by :func:`submission_data` into the open gradebook ``target``.

    The autograde results replace the target's; manual grades already in the
    target are kept (and so is whether such a cell needs manual grading).
    """
    student = dict(data["student"])
    student_id = student.pop("id")
    target.update_or_create_student(student_id, **student)
    copy = target.update_or_create_submission(assignment, student_id, timestamp=data["timestamp"])
    copy.extension = data["extension"]
    for notebook in data["notebooks"]:
        twin = target.find_submission_notebook(notebook["name"], assignment, student_id)
        twin.flagged = notebook["flagged"]
        for grade in notebook["grades"]:
            mine = target.find_grade(grade["cell"], notebook["name"], assignment, student_id)
            mine.auto_score = grade["auto_score"]
            if mine.manual_score is None:
                mine.needs_manual_grade = grade["needs_manual_grade"]
        for comment in notebook["comments"]:
            mine = target.find_comment(comment["cell"], notebook["name"], assignment, student_id)
            mine.auto_comment = comment["auto_comment"]
    target.db.commit()
