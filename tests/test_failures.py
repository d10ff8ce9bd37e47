"""Why tests fail: grouping the failure messages of a synthetic class (coursekit.insight.failures).

A class of graded notebooks is written directly (no kernel): each student's
test cells hold the error output chosen here, and the gradebook's view of the
class is a hand-made Gradesheet. The groups, their order, the incidents, the
CSV and the class report's section must come out as a TA would read them.
"""

import csv
import io
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from coursekit.common.results import FAILED, GRADED, GradeResult
from coursekit.insight import failures
from coursekit.steps import report
from coursekit.steps.report import Gradesheet, Question, StudentRow

ASSIGNMENT = "tiny"
TESTS = [Question("square_test", "Part 1", 2.0, True), Question("cube_test", "Part 1", 1.0, True),
         Question("essay", "Part 2", 2.0, False)]


def _test_cell(grade_id, error=None):
    cell = new_code_cell("assert ...", metadata={"nbgrader": {"grade_id": grade_id, "grade": True, "points": 1}})
    if error:
        ename, evalue = error
        cell.outputs = [new_output("error", ename=ename, evalue=evalue, traceback=[f"\x1b[31m{ename}\x1b[0m"])]
    return cell


def _graded_notebook(course, student, errors):
    folder = course / "autograded" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    cells = [_test_cell(q.grade_id, errors.get(q.grade_id)) for q in TESTS if q.autograded]
    nbformat.write(new_notebook(cells=cells), folder / f"{ASSIGNMENT}.ipynb")
    return folder


#: student -> ({test: (ename, evalue)}, score on square_test, score on cube_test)
CLASS = {
    "s01": ({"square_test": ("AssertionError", "expected [1, 4, 9], got [1 4 8]")}, 0, 1),
    "s02": ({"square_test": ("AssertionError", "expected [1, 4, 9], got [2.5 4. 9.]")}, 0, 1),
    "s03": ({"square_test": ("AssertionError", "expected [1, 4, 9], got [0 0 0]"),
             "cube_test": ("NotImplementedError", "Exercise 1.2 is not done yet")}, 0, 0),
    "s04": ({"square_test": ("NameError", "name 'np' is not defined"),
             "cube_test": ("AssertionError", "cube(2) should be 8; got 6.0.")}, 0, 0),
    "s05": ({"cube_test": ("AssertionError", "cube(3) should be 27; got 9.")}, 2, 0),
    "s06": ({}, 2, 1),
    # A failed test without an error output (e.g. partial credit printed by the test).
    "s07": ({}, 1, 1),
}


@pytest.fixture
def graded_class(tmp_path):
    course = tmp_path / "course"
    rows, results = [], []
    for student, (errors, square, cube) in CLASS.items():
        _graded_notebook(course, student, errors)
        scores = {"square_test": float(square), "cube_test": float(cube), "essay": 0.0}
        rows.append(StudentRow(student, GRADED, scores, float(square + cube), ""))
        notes = ["cell 3 (square_test): stopped: ran past the time limit of 10 s"] if student == "s03" else []
        results.append(GradeResult(student, GRADED, float(square + cube), 5.0, notes=notes))
    rows.append(StudentRow("s08", FAILED, None, None, "not a readable notebook"))
    results.append(GradeResult("s08", FAILED, None, 5.0, "not a readable notebook"))
    sheet = Gradesheet(ASSIGNMENT, tuple(TESTS), tuple(rows), 5.0, "2026-11-30 12:00 UTC")
    return course, sheet, results


@pytest.mark.parametrize("message, pattern", [
    ("expected [1, 4, 9], got [1 4 8]", "expected [...], got [...]"),
    ("got array([[1., 2.],\n       [3., 4.]])", "got array([...])"),
    ("cube(2) should be 8; got 6.0.", "cube(<n>) should be <n>; got <n>."),
    ("wrong shape (4,) for N=50, n=-3, tol 1e-09", "wrong shape (<n>,) for N=<n>, n=<n>, tol <n>"),
    ("values nan and inf", "values <n> and <n>"),
    # Numbers inside names are kept: they say which thing, not which value.
    ("x_1 must be uint8, not float32 (Exercise 1.1)", "x_<n> must be uint8, not float32 (Exercise <n>)".replace("x_<n>", "x_1")),
    ("\x1b[31mred\x1b[0m   and\n\n spaced", "red and spaced"),
])
def test_a_message_pattern_hides_numbers_and_array_contents_only(message, pattern):
    assert failures.message_pattern(message) == pattern


def test_failures_are_grouped_by_pattern_largest_group_first(graded_class):
    course, sheet, results = graded_class
    by_test = {t.grade_id: t for t in failures.failures_by_test(course, ASSIGNMENT, sheet, results)}
    assert list(by_test) == ["square_test", "cube_test"], "the autograded tests, in notebook order"

    square = by_test["square_test"]
    assert (square.failed, square.graded) == (5, 7)
    assert [(g.exception, g.pattern, g.students) for g in square.groups] == [
        ("AssertionError", "expected [...], got [...]", ("s01", "s02", "s03")),
        ("NameError", "name 'np' is not defined", ("s04",)),
        (failures.NO_ERROR, "", ("s07",)),
    ]
    assert square.groups[0].example == "expected [1, 4, 9], got [1 4 8]", "the first student's message, as it was"
    assert square.incidents == (("s03", ("cell 3 (square_test): stopped: ran past the time limit of 10 s",)),)

    cube = by_test["cube_test"]
    assert [(g.pattern, g.students) for g in cube.groups] == [
        ("cube(<n>) should be <n>; got <n>.", ("s04", "s05")),
        ("Exercise <n> is not done yet", ("s03",)),
    ]


def test_an_unreadable_or_huge_graded_notebook_is_reported_not_fatal(graded_class):
    course, sheet, results = graded_class
    path = course / "autograded" / "s04" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.write_text('{"cells": [')  # cut off
    link = course / "autograded" / "s05" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    link.unlink()
    os.symlink("/etc/passwd", link)
    by_test = {t.grade_id: t for t in failures.failures_by_test(course, ASSIGNMENT, sheet, results)}
    unreadable = [g for g in by_test["cube_test"].groups if g.exception == "(graded notebook unreadable)"]
    assert sum(len(g.students) for g in unreadable) == 2 and {"s04", "s05"} <= {s for g in unreadable for s in g.students}
    assert any("regular file" in g.example for g in unreadable), "a link is never followed"


def test_a_long_message_is_cut_before_it_is_looked_at(tmp_path):
    course = tmp_path / "course"
    _graded_notebook(course, "s01", {"square_test": ("AssertionError", "got 1 " + "x" * 10_000_000)})
    sheet = Gradesheet(ASSIGNMENT, tuple(TESTS), (StudentRow("s01", GRADED, {"square_test": 0.0, "cube_test": 1.0,
                                                                             "essay": 0.0}, 1.0, ""),), 5.0, "")
    (square, _) = failures.failures_by_test(course, ASSIGNMENT, sheet, [GradeResult("s01", GRADED, 1.0, 5.0)])
    group = square.groups[0]
    assert len(group.pattern) <= failures.MAX_MESSAGE_CHARS and len(group.example) == failures.EXAMPLE_CHARS


def test_the_csv_has_a_row_per_group_and_cannot_run_formulas(graded_class):
    course, sheet, results = graded_class
    (course / "autograded" / "s05" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").unlink()
    _graded_notebook(course / "again", "s05", {})  # keep the folder layout simple: rewrite s05 below
    nb = nbformat.read(course / "again" / "autograded" / "s05" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nb.cells[1].outputs = [new_output("error", ename="AssertionError", evalue="=HYPERLINK(\"http://x\")", traceback=[])]
    nbformat.write(nb, course / "autograded" / "s05" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")

    text = report.failures_csv_text(failures.failures_by_test(course, ASSIGNMENT, sheet, results))
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["test"], r["group_size"], r["exception"]) for r in rows][:3] == [
        ("square_test", "3", "AssertionError"), ("square_test", "1", "NameError"), ("square_test", "1", failures.NO_ERROR)]
    first = rows[0]
    assert first["students"] == "s01 s02 s03" and first["students_with_grading_incidents"] == "s03"
    assert first["lost_points"] == "5" and first["graded"] == "7" and first["points"] == "2"
    formula = next(r for r in rows if "HYPERLINK" in r["example_message"])
    assert formula["example_message"].startswith("'=") and formula["message_pattern"].startswith("'=")


def test_the_class_report_has_a_collapsed_section_per_failed_test(graded_class):
    course, sheet, results = graded_class
    page = report.class_report_html(sheet, [], failures.failures_by_test(course, ASSIGNMENT, sheet, results))
    section = page[page.index('id="failures"'):page.index('id="similarity"')]
    assert section.count("<details") == 2 and "<details open" not in section
    assert "<strong>square_test</strong> (Part 1, 2 points): 5 of 7 lost points; 3 kinds of failure" in section
    assert "<strong>cube_test</strong> (Part 1, 1 point): 3 of 7 lost points; 2 kinds of failure" in section
    assert "expected [...], got [...]" in section and "s01 s02 s03" in section
    assert "name &#x27;np&#x27; is not defined" in section, "messages are escaped"
    assert "ran past the time limit of 10 s" in section
