"""The feedback step: one HTML page per graded student, without hidden tests.

``python -m coursekit feedback [STUDENT ...]`` runs nbgrader's
``generate_feedback`` for every student the grade step graded; the course's
:class:`coursekit.preprocessors.HideHiddenTests` (configured in
``nbgrader_config.py``) removes hidden-test code and the traceback lines that
quote it, while each test's points and error message stay.

As a last line of defence every page is scanned for the master's hidden-test
and solution lines before it is kept: a page that would leak is deleted and
reported, never handed out.
"""

from __future__ import annotations

import html
from pathlib import Path

import nbformat

from . import notebooks
from .grade import nbgrader_api, ensure_tools_on_path
from .paths import ROOT
from .results import GRADED, load_results, status_path


class FeedbackError(Exception):
    """Feedback could not be produced safely for some students."""


def secret_lines(master):
    """The hidden-test lines of the master: never shown to students.

    Solution lines are not included: a student may well write the same code.
    """
    return notebooks.secret_lines(master, include_solutions=False)


def leaked_lines(page_text, secrets):
    """The secret lines that appear in an HTML page (compared after unescaping)."""
    text = html.unescape(page_text)
    return sorted(line for line in secrets if line in text)


def feedback_path(course_root, assignment, student):
    return Path(course_root) / "feedback" / student / assignment / f"{assignment}.html"


def generate_feedback(course_root=ROOT, assignment="clustering", students=None, log=print):
    """Write ``feedback/<student>/<assignment>/<assignment>.html`` for graded students.

    Parameters
    ----------
    course_root : path-like
        The course folder.
    assignment : str
        The assignment.
    students : list of str, optional
        Only these students (default: every student the grade step graded).

    Returns
    -------
    dict
        {student id: path of the feedback page}.

    Raises
    ------
    FeedbackError
        After trying every student, naming those whose feedback failed or would
        have leaked hidden tests.
    """
    ensure_tools_on_path()
    course_root = Path(course_root)
    results = load_results(status_path(course_root, assignment))
    graded = [r.student for r in results if r.status == GRADED and (not students or r.student in students)]
    master = nbformat.read(course_root / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    secrets = secret_lines(master)
    api = nbgrader_api(course_root)
    written, problems = {}, []
    for student in graded:
        outcome = api.generate_feedback(assignment, student, force=True)
        page = feedback_path(course_root, assignment, student)
        if not outcome["success"] or not page.is_file():
            problems.append(f"{student}: nbgrader could not make feedback ({(outcome.get('error') or '').strip().splitlines()[-1:]})")
            continue
        leaks = leaked_lines(page.read_text(encoding="utf-8"), secrets)
        if leaks:
            page.unlink()
            problems.append(f"{student}: feedback withheld, it would show hidden tests ({leaks[0]!r} ...)")
            continue
        written[student] = page
    for student, page in sorted(written.items()):
        log(f"feedback for {student}: {page}")
    if problems:
        raise FeedbackError("feedback failed for some students:\n  " + "\n  ".join(problems))
    return written
