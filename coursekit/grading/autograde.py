"""Autograding one student's submission through nbgrader's Python API.

:func:`grade_student` autogrades one submission with nbgrader's API for the
course (:func:`coursekit.grading.gradebook.nbgrader_api`: its settings from
``nbgrader_config.py``, which switch on the course's preprocessors: repair,
sandboxed and guarded execution) and returns a
:class:`coursekit.common.results.GradeResult`, never raising for a bad submission;
:func:`submission_problem` says in one line why a notebook cannot be graded
at all (before nbgrader sees it: too big, not UTF-8, not JSON, nested too
deep, an old format, cells of no known type), :func:`failure_reason` turns
nbgrader's log of a failed run into one line for a person; :func:`fingerprint` is what a grade depends on, so an unchanged
submission need not be graded again.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from coursekit.common import course
from coursekit.common.files import UnsafeFile, read_regular_file
from coursekit.common.notebooks import MAX_SUBMISSION_BYTES, why_unreadable
from coursekit.common.results import FAILED, GRADED, GradeResult
from coursekit.grading.execute import read_incidents
from coursekit.grading.gradebook import db_url, max_score, read_score
from coursekit.grading.timing import CELL_TIMES


def failure_reason(result):
    """The most telling line of a failed nbgrader run, in words for a person."""
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    patterns = [
        (r"(NotJSONError|JSONDecodeError|Notebook does not appear to be JSON)[^\n]*", "not a readable notebook (invalid JSON)"),
        (r"DeadKernelError[^\n]*|Kernel died[^\n]*", "the kernel died while running the notebook"),
        (r"CellTimeoutError[^\n]*|Timeout waiting for execute reply[^\n]*", "a cell ran past the time limit"),
        (r"does not look like the assignment's notebook[^\n]*", None),
        (r"the nbgrader metadata may be corrupted: (cell \d+[^\n]*)", "invalid nbgrader metadata in {0}"),
        (r"use an old version", "nbgrader metadata with an outdated or empty schema version (a cell copied or "
                                "edited by hand?)"),
        (r"SandboxUnavailable: [^\n]*", None),
    ]
    for pattern, reason in patterns:
        match = re.search(pattern, text)
        if match:
            return reason.format(*match.groups()) if reason else match.group(0)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # An exception's own line ("ValueError: ...") says more than nbgrader's "[ERROR] Please see the above
    # traceback" around it.
    raised = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b:?", line)]
    if raised:
        return f"nbgrader failed: {raised[-1]}"[:300]
    errors = [line for line in lines if ("Error" in line or "ERROR" in line) and "see the above traceback" not in line]
    return (errors[-1] if errors else lines[-1] if lines else "nbgrader failed without a message")[:300]


def submission_problem(course_root, assignment, student):
    """Why the student's notebook cannot be graded at all, in one line, or None (see :func:`~coursekit.common.notebooks.why_unreadable`)."""
    path = Path(course_root) / "submitted" / student / assignment / f"{assignment}.ipynb"
    if not path.exists() and not path.is_symlink():
        return None  # nbgrader itself says "not submitted"
    try:
        data = read_regular_file(path, MAX_SUBMISSION_BYTES)
    except UnsafeFile as error:
        return str(error).replace(str(path), f"{assignment}.ipynb")
    return why_unreadable(data)


#: The configuration sections whose settings change a grade (time limits, output bounds, the sandbox's limits).
GRADING_SECTIONS = ("TimeLimits", "Execute", "GuardedExecute", "Sandbox", "SandboxedKernelManager")
#: Settings of those sections that do not change a grade (how many workers share the machine, what the
#: kernels' warm parent has imported for them).
_NOT_GRADING = {("SandboxedKernelManager", "workers"), ("GuardedExecute", "workers"),
                ("SandboxedKernelManager", "kernel_log"), ("Sandbox", "preload")}


def grading_settings(config):
    """The settings of ``config`` that change a grade, as stable text (for :func:`fingerprint`)."""
    if config is None:
        return ""
    chosen = {section: {key: repr(value) for key, value in sorted(config[section].items())
                        if (section, key) not in _NOT_GRADING}
              for section in GRADING_SECTIONS if section in config}
    return json.dumps({section: values for section, values in chosen.items() if values}, sort_keys=True)


def fingerprint(course_root, assignment, student, settings=""):
    """Hash of what a grade depends on: the submission, its timestamp, the master, the helper's modules, the
    calibrated time limits, and the grading settings (:func:`grading_settings`)."""
    digest = hashlib.sha256()
    digest.update(settings.encode())
    folder = Path(course_root) / "submitted" / student / assignment
    source = Path(course_root) / "source" / assignment
    for path in [folder / f"{assignment}.ipynb", folder / "timestamp.txt", source / f"{assignment}.ipynb",
                 *(source / name for name in course.HELPER_MODULES), source / CELL_TIMES]:
        try:  # the student's files: never through a link, never a pipe, never unbounded
            content = read_regular_file(path, MAX_SUBMISSION_BYTES)
        except UnsafeFile:
            content = b"-"
        digest.update(path.name.encode() + content)
    return digest.hexdigest()


def grade_student(api, course_root, assignment, student, db=None):
    """Autograde one student's submission; never raises for a bad submission."""
    db = db or db_url(course_root)
    stamp = fingerprint(course_root, assignment, student, grading_settings(getattr(api, "config", None)))
    problem = submission_problem(course_root, assignment, student)
    if problem:
        return GradeResult(student, FAILED, None, max_score(db, assignment), problem, fingerprint=stamp)
    result = api.autograde(assignment, student, force=True, create=True)
    if not result["success"]:
        return GradeResult(student, FAILED, None, max_score(db, assignment), failure_reason(result), fingerprint=stamp)
    score, best = read_score(db, assignment, student)
    incidents = read_incidents(Path(course_root) / "autograded" / student / assignment)
    notes = [(f"cell {i['cell']}" + (f" ({i['grade_id']})" if i["grade_id"] else "") + ": "
              if i["cell"] is not None else "") + i["what"] for i in incidents]
    return GradeResult(student, GRADED, score, best, notes=notes, fingerprint=stamp)
