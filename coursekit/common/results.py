"""What grading found for each student, shared by the grade, feedback and report steps.

The grade step writes ``reports/<assignment>/grading_status.json``, adding each
student as soon as their grade is in the gradebook (so an interrupted batch
keeps what it finished); feedback and report read it, so a TA can rerun them
without regrading. Scores themselves live in nbgrader's gradebook, the single
source of truth for points.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coursekit.common.files import write_atomically

GRADED = "graded"
FAILED = "failed to grade"
NOT_SUBMITTED = "not submitted"
STATUSES = (GRADED, FAILED, NOT_SUBMITTED)


@dataclass(frozen=True)
class GradeResult:
    """The outcome of grading one student's submission.

    Attributes
    ----------
    student : str
        The nbgrader student id.
    status : str
        One of ``"graded"``, ``"failed to grade"`` or ``"not submitted"``.
    score : float or None
        Points from the gradebook (autograded and any manual grades); None
        unless graded.
    max_score : float
        Points available.
    reason : str
        Why grading failed, in words for a person ("" otherwise).
    notes : list of str
        Things the grader did that the student should know (e.g. a restored
        cell, a cell stopped by the time limit).
    fingerprint : str
        Hash of the submission and the master it was graded against; a rerun
        skips a student whose fingerprint has not changed.
    """

    student: str
    status: str
    score: float | None = None
    max_score: float = 0.0
    reason: str = ""
    notes: list = field(default_factory=list)
    fingerprint: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {self.status!r}")


def full_marks(score, points):
    """Whether ``score`` is all of ``points`` (a test passed, for the report's pass rates)."""
    return score >= points


def status_path(course_root, assignment, shard=None):
    """The status file of a grading run: the class's, or shard ``(i, N)``'s own (merged into the class's)."""
    path = Path(course_root) / "reports" / assignment / "grading_status.json"
    return path.with_name(f"grading_status-shard-{shard[0]}-of-{shard[1]}.json") if shard else path


_SHARD_STATUS = re.compile(r"grading_status-shard-(\d+)-of-(\d+)\.json")


def shard_status_files(course_root, assignment):
    """{(i, N): path} of the shards' status files in the course, sorted."""
    folder = status_path(course_root, assignment).parent
    found = {}
    for path in sorted(folder.glob("grading_status-shard-*.json")):
        match = _SHARD_STATUS.fullmatch(path.name)
        if match:
            found[(int(match.group(1)), int(match.group(2)))] = path
    return found


def save_results(path, results):
    """Write results as JSON (atomically), sorted by student id."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps([asdict(r) for r in sorted(results, key=lambda r: r.student)], indent=2) + "\n")


class StatusFile:
    """A status file kept up to date while a batch runs: rewritten (atomically) as each result comes in.

    Parameters
    ----------
    path : path-like
        The file, written at once with ``results``.
    results : iterable of GradeResult
        What the file holds before the batch (earlier results still valid).
    """

    def __init__(self, path, results=()):
        self.path = Path(path)
        self.results = {r.student: r for r in results}
        save_results(self.path, self.results.values())

    def add(self, result):
        """Record ``result`` (replacing any earlier one of that student) and rewrite the file."""
        self.results[result.student] = result
        save_results(self.path, self.results.values())


def load_results(path):
    """Read results written by :func:`save_results`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no grading results yet; run the grade step first")
    return [GradeResult(**entry) for entry in json.loads(path.read_text())]
