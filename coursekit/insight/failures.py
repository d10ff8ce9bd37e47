"""Why tests fail: each autograded test's failure messages, grouped, for the class report.

For every test cell (a graded code cell of the master) and every graded
student who did not get its full points, the error the cell raised in the
student's graded notebook (``autograded/<student>/<assignment>/``) is read and
reduced to a *pattern*: its exception type and message with numbers and array
contents replaced (``got 2.0`` and ``got 3.5`` both become ``got <n>``;
``[0 1 2 0]`` and ``[[1., 2.]]`` both become ``[...]``). Students whose
messages share a pattern form a :class:`FailureGroup`, most common first.

Each test also lists the students among those who lost points whose notebook
had *grading incidents* (a cell stopped by a time limit, a restarted kernel,
output cut short, a repaired notebook: the grade step's notes), since their
failure may come from the incident rather than from their answer.

Everything here is read from files the student's code wrote into; messages are
cut to :data:`MAX_MESSAGE_CHARS` before they are looked at, and a notebook that
cannot be read is reported as such for its student, never as a crash.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass

from coursekit.common import notebooks
from coursekit.common.files import UnsafeFile
from coursekit.common.results import GRADED, full_marks

log = logging.getLogger(__name__)

#: How much of a message is looked at and kept (a student's code chooses its length).
MAX_MESSAGE_CHARS = 2000
#: How much of the example message a report shows.
EXAMPLE_CHARS = 300
#: The exception name reported when a failed test cell holds no error output.
NO_ERROR = "(no error)"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: An array or list of numbers as NumPy or Python print it, nested or not: "[0 1 2]", "[[1., 2.],\n [3., 4.]]".
_NUMBER_LIST = re.compile(r"\[[\[\]\s\d.,eE+\-naif()]*\d[\[\]\s\d.,eE+\-naif()]*\]")
#: A number standing alone (not part of a name such as uint8 or x_1).
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?(?!\w|\.\w)|\b(?:nan|inf)\b")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class FailureGroup:
    """Students whose test failed with the same kind of message.

    Attributes
    ----------
    exception : str
        The exception's type name, e.g. ``"AssertionError"``.
    pattern : str
        The message with numbers as ``<n>`` and number lists as ``[...]``.
    example : str
        One student's message as it was (the first student's in id order), cut to EXAMPLE_CHARS.
    students : tuple of str
        The students in the group, sorted.
    """

    exception: str
    pattern: str
    example: str
    students: tuple


@dataclass(frozen=True)
class Failures:
    """One autograded test: who lost points on it and why.

    Attributes
    ----------
    grade_id, part : str
    points : float
    graded : int
        Number of graded students.
    groups : tuple of FailureGroup
        Largest group first; ties in the order of their first student.
    incidents : tuple of (str, tuple of str)
        (student, the grade step's notes) for the students who lost points on
        this test and whose notebook had grading incidents.
    """

    grade_id: str
    part: str
    points: float
    graded: int
    groups: tuple
    incidents: tuple

    @property
    def failed(self):
        return sum(len(group.students) for group in self.groups)


def clean_message(text):
    """``text`` cut to MAX_MESSAGE_CHARS, without terminal colour codes, spaces collapsed."""
    return _SPACE.sub(" ", _ANSI.sub("", str(text)[:MAX_MESSAGE_CHARS])).strip()


def message_pattern(text):
    """The message with number lists as ``[...]`` and numbers as ``<n>``, for grouping.

    >>> message_pattern("expected groups [0, 1, 2, 0], got [0 0 2 1]")
    'expected groups [...], got [...]'
    >>> message_pattern("wrong J_clust for N=500: 2.5 != 3.25e-1")
    'wrong J_clust for N=<n>: <n> != <n>'
    """
    text = clean_message(text)
    text = _NUMBER_LIST.sub("[...]", text)
    return _NUMBER.sub("<n>", text)[:MAX_MESSAGE_CHARS]


def cell_error(cell):
    """(exception name, message) of the first error output of a graded code cell, or (NO_ERROR, "")."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return clean_message(output.get("ename", "")) or "Error", clean_message(output.get("evalue", ""))
    return NO_ERROR, ""


def _errors_in_notebook(course_root, assignment, student, wanted):
    """{grade_id: (exception, message)} for the cells ``wanted`` of the student's graded notebook."""
    try:
        nb = notebooks.read_graded_notebook(course_root, assignment, student)
    except (OSError, UnsafeFile, ValueError) as error:
        log.warning(f"{student}: the graded notebook cannot be read for the failure report: {error}")
        reason = clean_message(error)[:EXAMPLE_CHARS]
        return {grade_id: ("(graded notebook unreadable)", reason) for grade_id in wanted}
    found = {}
    for cell in nb.cells:
        grade_id = notebooks.grade_id(cell)
        if cell.get("cell_type") == "code" and grade_id in wanted and grade_id not in found:
            found[grade_id] = cell_error(cell)
    return {grade_id: found.get(grade_id, ("(test cell missing)", "")) for grade_id in wanted}


def _groups(messages):
    """FailureGroups from {student: (exception, message)}."""
    members = defaultdict(list)
    for student in sorted(messages):
        exception, message = messages[student]
        members[(exception, message_pattern(message))].append((student, message))
    groups = [FailureGroup(exception, pattern, found[0][1][:EXAMPLE_CHARS], tuple(s for s, _ in found))
              for (exception, pattern), found in members.items()]
    return tuple(sorted(groups, key=lambda g: (-len(g.students), g.students[0], g.exception, g.pattern)))


def failures_by_test(course_root, assignment, sheet, results):
    """The failures of every autograded test, in notebook order.

    Parameters
    ----------
    course_root : path-like
        The course folder (``autograded/`` is read).
    assignment : str
    sheet : coursekit.steps.report.Gradesheet
        The questions and each graded student's points (from the gradebook).
    results : list of coursekit.common.results.GradeResult
        The grade step's results; their ``notes`` are the incidents.

    Returns
    -------
    list of Failures
    """
    tests = [q for q in sheet.questions if q.autograded]
    graded = sheet.graded
    lost = {row.student: [q.grade_id for q in tests if not full_marks(row.scores.get(q.grade_id, 0.0), q.points)]
            for row in graded}
    errors = {student: _errors_in_notebook(course_root, assignment, student, set(ids))
              for student, ids in lost.items() if ids}
    notes = {r.student: tuple(r.notes) for r in results if r.status == GRADED and r.notes}
    table = []
    for question in tests:
        failed = {student: found[question.grade_id] for student, found in errors.items() if question.grade_id in found}
        table.append(Failures(
            grade_id=question.grade_id, part=question.part, points=question.points, graded=len(graded),
            groups=_groups(failed),
            incidents=tuple((student, notes[student]) for student in sorted(failed) if student in notes),
        ))
    return table
