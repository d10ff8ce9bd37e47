"""The report step: ``grades.csv`` for the LMS and a class report for TAs.

``write_report(course_root, assignment)`` reads nbgrader's gradebook (the one
source of truth for points) and the grade step's results, and writes to
``reports/<assignment>/``:

``grades.csv``
    One row per student, sorted by id, with the columns::

        student_id, status, <grade_id (points)> ..., total, max_score, reason

    The question columns follow the master notebook's order. Students who were
    not graded ("not submitted", "failed to grade") have blank question cells
    and a blank total (never 0: a blank must not look like a score), and the
    ``reason`` column says why. A graded student whose written answers still
    await a human grader keeps the provisional total, and ``reason`` names the
    pending cells. UTF-8 without a byte-order mark, comma separated, CRLF line
    ends (RFC 4180), numbers without needless decimals (``2``, ``1.5``).

    Importing into an LMS: map ``student_id`` to the LMS's student identifier
    and ``total`` to the grade item; ignore the other columns. In Moodle's
    "Import grades from CSV" choose comma as separator and UTF-8, map
    ``student_id`` to the user field holding the nbgrader ids (e.g. ID number)
    and ``total`` to the assignment's grade item. Canvas's gradebook import
    expects Canvas's own layout (its exported gradebook CSV) and treats unknown
    columns as new assignments, so copy ``total`` into the assignment's column
    of a Canvas export, matched on ``student_id``, rather than uploading this
    file as it is: :mod:`coursekit.steps.lms` does that, and writes Moodle's own bulk
    formats, from the same totals.

``class_report.html``
    One self-contained page (inline CSS, plots as base64 PNG, no scripts, no
    external resources): counts per status, the score histogram, the pass rate
    per question, the mean per part, the hardest tests, why tests fail (a
    collapsed section per test, :mod:`coursekit.insight.failures`), similar
    submissions (:mod:`coursekit.insight.similarity`), and the students who could not
    be graded, with reasons.

``test_failures.csv``
    One row per group of failures of a test: the test, its part and points,
    how many lost them, the group's size, exception, message pattern, an
    example message, its students and those of them with grading incidents.

``similarity.csv`` and ``similarity/pair-NNN.html``
    The pairs of students whose answers are similar (at least the threshold),
    highest first, with code and written scores, and one side-by-side page
    per pair (file names never hold a student id).

Every file depends only on the gradebook, the results and the graded
notebooks: the same data gives the same bytes (the date shown is when ``gradebook.db`` last changed, never the
current time). The gradebook itself is never written: it is read from a private
snapshot.
"""

from __future__ import annotations

import base64
import csv
import io
import logging
import math
import re
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.style
import nbformat
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter
from nbgrader.api import Gradebook, MissingEntry

from coursekit.common import notebooks
from coursekit.common.errors import CourseError
from coursekit.common.files import write_atomically
from coursekit.common.results import FAILED, GRADED, NOT_SUBMITTED, STATUSES, full_marks, load_results, status_path
from coursekit.insight import similarity
from coursekit.insight.failures import failures_by_test
from coursekit.pages.render import render

log = logging.getLogger(__name__)

GRADES_CSV = "grades.csv"
CLASS_REPORT = "class_report.html"
FAILURES_CSV = "test_failures.csv"
SIMILARITY_CSV = "similarity.csv"
#: The side-by-side pages of similar pairs: ``similarity/pair-001.html``, ... (names never hold a student id).
PAIR_FOLDER, PAIR_PAGE = "similarity", "pair-{:03d}.html"

#: A level-1 heading that opens a part, e.g. "# Part 1. The $k$-means algorithm" -> "Part 1".
PART_HEADING = re.compile(r"^#[ \t]+(Part[ \t]+[^\s.:]+)", re.MULTILINE)
#: The part of the cells before the first part heading (name, ID, setup).
FIRST_PART = "Part 0"

#: Fixed resolution and no "Software" tag: the PNG bytes depend on the data only.
PLOT_DPI = 100
PNG_METADATA = {"Software": None}
AUTOGRADED_COLOUR, WRITTEN_COLOUR = "#1f77b4", "#ff7f0e"

DEFAULT_REASONS = {
    NOT_SUBMITTED: "no submission was found",
    FAILED: "grading failed (no reason was recorded)",
}
#: Spreadsheets run a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: How the date of the data (when the gradebook last changed) is written; always UTC.
GRADEBOOK_DATE_FORMAT = "%Y-%m-%d %H:%M UTC"



class ReportError(CourseError):
    """The report cannot be written from this gradebook, master or results; nothing was written."""


@dataclass(frozen=True)
class Question:
    """A graded cell of the master notebook: one column of ``grades.csv``."""

    grade_id: str
    part: str
    points: float
    autograded: bool  # a test cell; otherwise a written or hand-graded answer


@dataclass(frozen=True)
class StudentRow:
    """One student's line: per-question points and total from the gradebook, or why there are none."""

    student: str
    status: str
    scores: dict | None  # grade_id -> points; None unless graded
    total: float | None
    reason: str
    pending: tuple = ()  # grade_ids still awaiting a human grader


@dataclass(frozen=True)
class Gradesheet:
    """Everything both outputs are made from, read once."""

    assignment: str
    questions: tuple
    rows: tuple
    max_score: float
    data_date: str

    @property
    def graded(self):
        return [row for row in self.rows if row.status == GRADED]


# --- Reading the master notebook ---------------------------------------------------


def is_scored(cell):
    """A cell with points in the gradebook: a grade cell or a task."""
    meta = notebooks.nbgrader_meta(cell)
    return bool(meta.get("grade") or meta.get("task"))


def questions_in_order(nb):
    """The scored cells of ``nb`` in notebook order, each with its part.

    A cell belongs to the latest level-1 heading starting with "# Part" before
    it (or in it); cells before any such heading belong to "Part 0".

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The master notebook.

    Returns
    -------
    list of Question
    """
    part, questions = FIRST_PART, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = PART_HEADING.findall(cell.source)
            if headings:
                part = re.sub(r"\s+", " ", headings[-1])
        if is_scored(cell):
            questions.append(Question(
                grade_id=notebooks.grade_id(cell),
                part=part,
                points=float(notebooks.nbgrader_meta(cell).get("points", 0)),
                autograded=notebooks.is_test_cell(cell),
            ))
    return questions


def read_master(course_root, assignment):
    """Read ``source/<assignment>/<assignment>.ipynb`` of ``course_root``.

    Returns
    -------
    (pathlib.Path, nbformat.NotebookNode)
    """
    path = Path(course_root) / "source" / assignment / f"{assignment}.ipynb"
    if not path.is_file():
        raise ReportError(f"{path}: the master notebook is missing; the report takes the questions' order and parts from it")
    return path, nbformat.read(path, as_version=4)


# --- Reading the gradebook ------------------------------------------------------------


def gradebook_date(db_path):
    """When the gradebook last changed, in UTC to the minute: the date of the data."""
    changed = datetime.fromtimestamp(Path(db_path).stat().st_mtime, tz=timezone.utc)
    return changed.strftime(GRADEBOOK_DATE_FORMAT)


@contextmanager
def gradebook_snapshot(db_path):
    """Open a private copy of the gradebook.

    nbgrader's ``Gradebook`` may write when it opens a database (it registers
    its course id if that is new), and the grade step may be writing at the
    same moment; SQLite's backup API gives a consistent copy, and the report
    never touches the original.

    Yields
    ------
    nbgrader.api.Gradebook
    """
    db_path = Path(db_path)
    if not db_path.is_file():
        raise ReportError(f"{db_path}: no gradebook; run the grade step first")
    with tempfile.TemporaryDirectory(prefix="coursekit-report-") as scratch:
        copy = Path(scratch) / "gradebook.db"
        source = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        except sqlite3.DatabaseError as error:
            raise ReportError(f"{db_path}: cannot read the gradebook: {error}") from error
        finally:
            source.close()
            target.close()
        with Gradebook(f"sqlite:///{copy}") as gradebook:
            yield gradebook


def gradebook_questions(gradebook, assignment, db_path):
    """{grade_id: max points} of the assignment's notebook in the gradebook.

    Raises
    ------
    ReportError
        When the assignment is unknown or has notebooks other than ``<assignment>.ipynb``.
    """
    try:
        stored = gradebook.find_assignment(assignment)
    except MissingEntry:
        raise ReportError(f"{db_path}: no assignment {assignment!r} in the gradebook; run the grade step first") from None
    names = sorted(nb.name for nb in stored.notebooks)
    if names != [assignment]:
        raise ReportError(f"{db_path}: assignment {assignment!r} has notebooks {names}; the report handles one, {assignment}.ipynb")
    notebook = gradebook.find_notebook(assignment, assignment)
    return {cell.name: float(cell.max_score) for cell in [*notebook.grade_cells, *notebook.task_cells]}


def check_master_matches_gradebook(questions, stored, master_path, db_path):
    """Refuse a master whose graded cells or points differ from what was graded."""
    in_master = {q.grade_id: q.points for q in questions}
    if in_master == stored:
        return
    problems = [f"{gid} is only in the master" for gid in sorted(in_master.keys() - stored.keys())]
    problems += [f"{gid} is only in the gradebook" for gid in sorted(stored.keys() - in_master.keys())]
    problems += [
        f"{gid} has {in_master[gid]:g} points in the master, {stored[gid]:g} in the gradebook"
        for gid in sorted(in_master.keys() & stored.keys()) if in_master[gid] != stored[gid]
    ]
    raise ReportError(
        f"{master_path} does not match {db_path} (was the master edited after grading? regrade first):\n  "
        + "\n  ".join(problems)
    )


def pending_manual_grades(grades):
    """Names of the cells a human still has to grade (nbgrader counts them as 0 meanwhile)."""
    return sorted(g.name for g in grades if g.needs_manual_grade and g.manual_score is None)


def graded_row(gradebook, assignment, result, db_path):
    """The row of a graded student: every cell's ``Grade.score`` and the submission's score.

    ``Grade.score`` is nbgrader's: the manual score if a grader set one, else
    the autograder's, plus any extra credit.
    """
    try:
        submission = gradebook.find_submission(assignment, result.student)
        notebook = gradebook.find_submission_notebook(assignment, assignment, result.student)
    except MissingEntry:
        raise ReportError(
            f"{db_path}: no graded submission of {assignment!r} by {result.student!r}, "
            "though the grading results say 'graded'; rerun the grade step"
        ) from None
    pending = pending_manual_grades(notebook.grades)
    reason = f"awaiting manual grading: {', '.join(pending)}" if pending else ""
    scores = {grade.name: float(grade.score) for grade in notebook.grades}
    return StudentRow(result.student, GRADED, scores, float(submission.score), reason, tuple(pending))


def ungraded_row(result):
    """The row of a student without scores: blanks, and the reason."""
    return StudentRow(result.student, result.status, None, None, result.reason or DEFAULT_REASONS[result.status])


def check_results(results):
    """Refuse results that list a student twice (GradeResult itself checks the status)."""
    seen = set()
    for result in results:
        if result.student in seen:
            raise ReportError(f"grading results: student {result.student!r} appears more than once")
        seen.add(result.student)


def read_gradesheet(course_root, assignment, results):
    """Read the master, the gradebook and the results into one :class:`Gradesheet`.

    Parameters
    ----------
    course_root : path-like
        The course folder holding ``gradebook.db`` and ``source/<assignment>/``.
    assignment : str
        The assignment (and notebook) name.
    results : list of coursekit.common.results.GradeResult
        One per student to report.

    Returns
    -------
    Gradesheet
    """
    check_results(results)
    master_path, master = read_master(course_root, assignment)
    questions = questions_in_order(master)
    db_path = Path(course_root) / "gradebook.db"
    with gradebook_snapshot(db_path) as gradebook:
        check_master_matches_gradebook(questions, gradebook_questions(gradebook, assignment, db_path), master_path, db_path)
        max_score = float(gradebook.find_assignment(assignment).max_score)
        rows = [
            graded_row(gradebook, assignment, result, db_path) if result.status == GRADED else ungraded_row(result)
            for result in sorted(results, key=lambda r: r.student)
        ]
    return Gradesheet(assignment, tuple(questions), tuple(rows), max_score, gradebook_date(db_path))


# --- grades.csv -----------------------------------------------------------------------


def format_number(value, ndigits=6):
    """A number as a person writes it: 2 not 2.0, 1.5 as is, float noise rounded away; None -> ""."""
    if value is None:
        return ""
    value = round(float(value), ndigits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return str(int(value)) if value.is_integer() else repr(value)


def spreadsheet_safe(text):
    """Free text that a spreadsheet will not run as a formula when the CSV is opened."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_header(questions):
    return ["student_id", "status", *(f"{q.grade_id} ({format_number(q.points)})" for q in questions),
            "total", "max_score", "reason"]


def csv_row(row, questions, max_score):
    scores = row.scores or {}
    return [row.student, row.status, *(format_number(scores.get(q.grade_id)) for q in questions),
            format_number(row.total), format_number(max_score), spreadsheet_safe(row.reason)]


def grades_csv_text(sheet):
    """The contents of ``grades.csv`` (see the module docstring)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)  # excel dialect: commas, minimal quoting, CRLF
    writer.writerow(csv_header(sheet.questions))
    writer.writerows(csv_row(row, sheet.questions, sheet.max_score) for row in sheet.rows)
    return buffer.getvalue()


def csv_text(header, rows):
    """RFC 4180 CSV (commas, CRLF) of ``rows`` under ``header``; free text made spreadsheet-safe."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(v) if isinstance(v, str) else v for v in row] for row in rows)
    return buffer.getvalue()


def failures_csv_text(failures):
    """``test_failures.csv``: one row per group of failures of a test, tests in notebook order."""
    header = ["test", "part", "points", "graded", "lost_points", "group_size", "exception", "message_pattern",
              "example_message", "students", "students_with_grading_incidents"]
    rows = []
    for test in failures:
        with_incidents = {student for student, _ in test.incidents}
        for group in test.groups:
            rows.append([test.grade_id, test.part, format_number(test.points), test.graded, test.failed,
                         len(group.students), group.exception, group.pattern, group.example,
                         " ".join(group.students), " ".join(s for s in group.students if s in with_incidents)])
    return csv_text(header, rows)


def similarity_csv_text(pairs):
    """``similarity.csv``: one row per reported pair, highest score first, with its page."""
    header = ["first", "second", "score", "code_score", "written_score", "page"]
    rows = [[p.first, p.second, format_number(p.score, 3), format_number(p.code_score, 3),
             format_number(p.written_score, 3), f"{PAIR_FOLDER}/{PAIR_PAGE.format(n)}"]
            for n, p in enumerate(pairs, start=1)]
    return csv_text(header, rows)


# --- Statistics -------------------------------------------------------------------------


def question_rate(question, graded):
    """Autograded test: share of graded students with full points. Otherwise: mean share of points."""
    if question.autograded:
        return sum(full_marks(row.scores[question.grade_id], question.points) for row in graded) / len(graded)
    return float(np.mean([row.scores[question.grade_id] / question.points for row in graded]))


def parts_in_order(questions):
    """{part: points of the part}, parts in notebook order."""
    parts = {}
    for question in questions:
        parts[question.part] = parts.get(question.part, 0.0) + question.points
    return parts


def part_means(sheet):
    """{part: mean over graded students of the part's score as a share of its points}."""
    means = {}
    for part, points in parts_in_order(sheet.questions).items():
        ids = [q.grade_id for q in sheet.questions if q.part == part]
        means[part] = float(np.mean([sum(row.scores[i] for i in ids) / points for row in sheet.graded]))
    return means


def hardest_tests(sheet):
    """The autograded tests, lowest pass rate first, ties in notebook order.

    Returns
    -------
    list of (Question, pass rate, number of students who lost points)
    """
    graded = sheet.graded
    table = []
    for index, question in enumerate(sheet.questions):
        if question.autograded:
            passed = sum(full_marks(row.scores[question.grade_id], question.points) for row in graded)
            # Sorting on the count (not the float rate) keeps ties exact.
            table.append((passed, index, question, passed / len(graded), len(graded) - passed))
    return [(question, rate, lost) for _, _, question, rate, lost in sorted(table, key=lambda t: t[:2])]


# --- Plots ------------------------------------------------------------------------------


def png_bytes(fig):
    """Render ``fig`` with Agg to PNG bytes that depend only on its content."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PLOT_DPI, metadata=PNG_METADATA)
    return buffer.getvalue()


def histogram_edges(max_score):
    """Bins centred on the scores: half a point wide up to 30 points (so 6.5 is not drawn as 7), wider beyond."""
    width = 0.5 if max_score <= 30 else math.ceil(max_score / 30)
    return np.arange(-width / 2, max_score + width, width)


def score_histogram_figure(sheet):
    totals = [row.total for row in sheet.graded]
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    ax.hist(totals, bins=histogram_edges(sheet.max_score), color=AUTOGRADED_COLOUR, edgecolor="white")
    ax.set_xlim(-0.5, sheet.max_score + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"total score (of {format_number(sheet.max_score)}; autograded + manual)")
    ax.set_ylabel("students")
    ax.set_title(f"Score distribution of the {len(totals)} graded students")
    fig.tight_layout()
    return fig


def pass_rate_figure(sheet):
    questions = sheet.questions
    rates = [question_rate(q, sheet.graded) for q in questions]
    fig = Figure(figsize=(7, 1.2 + 0.28 * len(questions)))
    ax = fig.add_subplot()
    colours = [AUTOGRADED_COLOUR if q.autograded else WRITTEN_COLOUR for q in questions]
    ax.barh(range(len(questions)), rates, color=colours)
    ax.set_yticks(range(len(questions)), [f"{q.grade_id} ({q.part})" for q in questions])
    ax.invert_yaxis()  # notebook order from the top
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(
        [Line2D([], [], color=c, linewidth=8) for c in (AUTOGRADED_COLOUR, WRITTEN_COLOUR)],
        ["test: share of students with full points", "written/manual: mean share of points"],
        loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1, frameon=False, fontsize="small",
    )
    fig.tight_layout()
    return fig


def part_means_figure(sheet):
    means = part_means(sheet)
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    bars = ax.bar(list(means), list(means.values()), color=AUTOGRADED_COLOUR)
    ax.bar_label(bars, labels=[f"{100 * m:.0f}%" for m in means.values()])
    ax.set_ylim(0, 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("mean share of the part's points")
    fig.tight_layout()
    return fig


def plot_images(sheet):
    """[(title, PNG bytes)] of the three plots; empty when nobody was graded."""
    if not sheet.graded:
        return []
    makers = [("Score histogram", score_histogram_figure), ("Pass rate per question", pass_rate_figure),
              ("Mean per part", part_means_figure)]
    # The default style, whatever the user's matplotlibrc says, so every machine draws the same.
    with matplotlib.style.context("default"):
        # Bare Figure objects (no pyplot): nothing is registered globally, so nothing stays open.
        return [(title, png_bytes(make(sheet))) for title, make in makers]


# --- class_report.html -------------------------------------------------------------------


def percent(share):
    return f"{100 * share:.0f}%"


def _totals(graded):
    if not graded:
        return None
    totals = [row.total for row in graded]
    return {"mean": format_number(np.mean(totals), 2), "median": format_number(np.median(totals), 2),
            "lowest": format_number(min(totals)), "highest": format_number(max(totals))}


def failure_sections(failures):
    """What the template shows of each test that someone failed (see :mod:`coursekit.insight.failures`)."""
    return [{
        "grade_id": test.grade_id, "part": test.part,
        "points": format_number(test.points) + (" point" if test.points == 1 else " points"),
        "failed": test.failed, "graded": test.graded,
        "groups": [(len(g.students), g.exception, g.pattern, g.example, " ".join(g.students)) for g in test.groups],
        "incidents": [(student, "; ".join(notes)) for student, notes in test.incidents],
    } for test in failures if test.failed]


def pair_rows(pairs):
    return [{"number": n, "first": p.first, "second": p.second, "score": percent(p.score),
             "code": percent(p.code_score), "written": percent(p.written_score),
             "page": f"{PAIR_FOLDER}/{PAIR_PAGE.format(n)}"} for n, p in enumerate(pairs, start=1)]


def class_report_html(sheet, images, failures=(), pairs=(), threshold=similarity.DEFAULT_THRESHOLD):
    """The whole page, from the gradesheet, the ``plot_images`` PNGs, the failures and the similar pairs.

    Template ``class_report.html.j2``.
    """
    graded = sheet.graded
    means = part_means(sheet) if images else {}
    return render(
        "class_report.html.j2",
        title=f"Class report: {sheet.assignment}",
        data_date=sheet.data_date,
        students=len(sheet.rows),
        max_score=format_number(sheet.max_score),
        status_counts=[(status, sum(row.status == status for row in sheet.rows)) for status in STATUSES],
        totals=_totals(graded),
        pending=sum(bool(row.pending) for row in graded),
        plots=[{"title": title, "data": base64.b64encode(png).decode("ascii")} for title, png in images],
        parts=[(part, format_number(points), percent(means[part]))
               for part, points in parts_in_order(sheet.questions).items()] if images else [],
        hardest=[(q.grade_id, q.part, format_number(q.points), percent(rate), f"{lost} of {len(graded)}")
                 for q, rate, lost in hardest_tests(sheet)] if images else [],
        not_graded=[(row.student, row.status, row.reason) for row in sheet.rows if row.status != GRADED],
        failures=failure_sections(failures),
        failures_csv=FAILURES_CSV,
        pairs=pair_rows(pairs),
        threshold=percent(threshold),
        similarity_csv=SIMILARITY_CSV,
        compared=len(graded),
    )


def pair_page_html(assignment, number, pair, threshold, templates):
    """The side-by-side page of one similar pair (template ``similar_pair.html.j2``)."""
    sections = []
    for kind, documents, slices, score in ((similarity.CODE, pair.code, pair.code_slices, pair.code_score),
                                            (similarity.WRITTEN, pair.written, pair.written_slices, pair.written_score)):
        if not documents:
            continue
        left = similarity.highlighted_segments(documents[0], slices[0] if slices else (), templates)
        right = similarity.highlighted_segments(documents[1], slices[1] if slices else (), templates)
        cells = [(grade_id, a, b) for (grade_id, a), (_, b) in zip(left, right) if a or b]
        sections.append({"kind": kind, "score": percent(score), "cells": cells})
    return render("similar_pair.html.j2", title=f"Similar answers, pair {number}: {assignment}",
                  first=pair.first, second=pair.second, score=percent(pair.score),
                  threshold=percent(threshold), sections=sections)


# --- The step ------------------------------------------------------------------------------


def write_report(course_root, assignment="clustering", results=None, out_dir=None,
                 similarity_threshold=similarity.DEFAULT_THRESHOLD):
    """Write ``grades.csv`` and ``class_report.html`` for one assignment.

    Parameters
    ----------
    course_root : path-like
        The course folder with ``gradebook.db`` and ``source/<assignment>/<assignment>.ipynb``.
    assignment : str
        The assignment (and master notebook) name.
    results : list of coursekit.common.results.GradeResult, optional
        The students to report; default: the grade step's
        ``reports/<assignment>/grading_status.json``.
    out_dir : path-like, optional
        Where to write; default ``course_root/reports/<assignment>/``.
    similarity_threshold : float, default=similarity.DEFAULT_THRESHOLD
        Score (0..1) from which a pair of students is listed as similar.

    Returns
    -------
    dict
        ``{"grades_csv": Path, "class_report": Path, "failures_csv": Path,
        "similarity_csv": Path, "pair_pages": Path}`` (the last is the folder
        of the side-by-side pages, ``similarity/``).

    Raises
    ------
    ReportError
        When the gradebook, the master or the results are missing or disagree;
        nothing is written then.
    """
    course_root = Path(course_root)
    if results is None:
        results = load_results(status_path(course_root, assignment))
    out_dir = Path(out_dir) if out_dir is not None else course_root / "reports" / assignment
    if not 0 < similarity_threshold <= 1:
        raise ReportError(f"the similarity threshold must be between 0 and 1; got {similarity_threshold}")
    sheet = read_gradesheet(course_root, assignment, results)
    failures = failures_by_test(course_root, assignment, sheet, results)
    _, master = read_master(course_root, assignment)
    templates = similarity.templates_from(master)
    answers = similarity.read_class_answers(course_root, assignment, [row.student for row in sheet.graded], templates)
    pairs = similarity.similar_pairs(answers, templates, similarity_threshold)
    pages = {PAIR_PAGE.format(n): pair_page_html(assignment, n, pair, similarity_threshold, templates)
             for n, pair in enumerate(pairs, start=1)}
    files = {
        GRADES_CSV: grades_csv_text(sheet),
        CLASS_REPORT: class_report_html(sheet, plot_images(sheet), failures, pairs, similarity_threshold),
        FAILURES_CSV: failures_csv_text(failures),
        SIMILARITY_CSV: similarity_csv_text(pairs),
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_atomically(out_dir / name, text)
    pair_dir = out_dir / PAIR_FOLDER
    pair_dir.mkdir(exist_ok=True)
    for old in pair_dir.glob("pair-*.html"):  # pages of an earlier run's pairs
        if old.name not in pages:
            old.unlink()
    for name, text in pages.items():
        write_atomically(pair_dir / name, text)
    paths = {"grades_csv": out_dir / GRADES_CSV, "class_report": out_dir / CLASS_REPORT,
             "failures_csv": out_dir / FAILURES_CSV, "similarity_csv": out_dir / SIMILARITY_CSV,
             "pair_pages": pair_dir}
    log.info(f"wrote {paths['grades_csv']} ({len(sheet.rows)} students, {len(sheet.graded)} graded)")
    log.info(f"wrote {paths['class_report']}, {FAILURES_CSV} and {SIMILARITY_CSV} "
             f"({len(pairs)} similar pair(s) of {len(answers)} compared, threshold {percent(similarity_threshold)})")
    return paths
