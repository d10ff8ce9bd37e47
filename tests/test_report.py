"""The report step on a tiny course graded by real nbgrader.

The course has two parts, three autograded tests and one written answer.
alice hands in the master (and gets 1.5 of 2 points by hand for her written
answer), bob a partial solution with an answer nobody has graded yet, carol
the untouched release; one student failed to grade and one did not submit.
"""

import csv
import io
import re
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from coursekit.common.paths import ROOT
from coursekit.common.results import FAILED, GRADED, NOT_SUBMITTED, GradeResult, save_results, status_path
from coursekit.steps import build, report

ASSIGNMENT = "tiny"
MASTER_ORDER = ["square_test", "cube_test", "half_test", "explain"]
POINTS = {"square_test": 2, "cube_test": 1, "half_test": 2, "explain": 2}
MALICIOUS = "<script>alert('x')</script>"
RESULTS = [
    GradeResult("carol", GRADED),
    GradeResult("alice", GRADED),
    GradeResult("bob", GRADED),
    GradeResult(MALICIOUS, FAILED, reason="the kernel died in <b>cell 3</b> & was restarted"),
    GradeResult("dave", NOT_SUBMITTED),
]
IMG_TAG = '<img src="data:image/png;base64,'


def meta(grade_id, grade=False, solution=False, locked=False, points=None):
    fields = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id}
    if points is not None:
        fields["points"] = points
    return {"nbgrader": fields}


def answer(grade_id, body):
    return new_code_cell(f"def {grade_id}(x):\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION",
                         metadata=meta(grade_id, solution=True))


def checks(grade_id, source):
    return new_code_cell(source, metadata=meta(grade_id, grade=True, locked=True, points=POINTS[grade_id]))


def tiny_master():
    """Header, "# Part 1" with two tests, "# Part 2" with a test and a written answer; 7 points."""
    return new_notebook(cells=[
        new_markdown_cell("# Tiny lab\n\n**Points:** 7", metadata=meta("header", locked=True)),
        new_markdown_cell("# Part 1. The $k$-means algorithm"),
        answer("square", "return x * x"),
        checks("square_test", "assert square(3) == 9"),
        answer("cube", "return x ** 3"),
        checks("cube_test", "assert cube(2) == 8"),
        new_markdown_cell("# Part 2: Words\n\n## Halving"),
        answer("half", "return x / 2"),
        checks("half_test", "assert half(3) == 1.5"),
        new_markdown_cell("### BEGIN SOLUTION\nBecause squares grow.\n### END SOLUTION",
                          metadata=meta("explain", grade=True, solution=True, points=POINTS["explain"])),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def partial_submission(release):
    """square right, cube wrong, half untouched, a written answer awaiting a grader."""
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "square":
            cell.source = "def square(x):\n    return x * x"
        elif grade_id == "cube":
            cell.source = "def cube(x):\n    return x * 3"
        elif grade_id == "explain":
            cell.source = "Because of reasons."
    return nb


def open_gradebook(course):
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="clustering-lab")


@pytest.fixture(scope="module")
def course(tmp_path_factory, submit):
    """The tiny course generated and autograded by nbgrader, with alice's written answer graded by hand."""
    course = tmp_path_factory.mktemp("tiny_course")
    master = tiny_master()
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(master, source / f"{ASSIGNMENT}.ipynb")
    build.run_nbgrader("generate_assignment", ASSIGNMENT, "--force", f"--CourseDirectory.root={course}", cwd=ROOT)
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    submit(course, "alice", master, assignment=ASSIGNMENT)
    submit(course, "bob", partial_submission(release), assignment=ASSIGNMENT)
    submit(course, "carol", release, assignment=ASSIGNMENT)
    build.run_nbgrader(
        "autograde", ASSIGNMENT, "--create", f"--CourseDirectory.root={course}", cwd=ROOT, fail_on_logged_errors=False
    )
    with open_gradebook(course) as gradebook:
        grade = gradebook.find_grade("explain", ASSIGNMENT, ASSIGNMENT, "alice")
        grade.manual_score = 1.5
        gradebook.db.commit()
    return course


@pytest.fixture(scope="module")
def written(course, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths = report.write_report(course, ASSIGNMENT, results=RESULTS, out_dir=out)
    csv_text = paths["grades_csv"].read_text(encoding="utf-8")
    return {"paths": paths, "rows": list(csv.DictReader(io.StringIO(csv_text))), "csv": csv_text,
            "html": paths["class_report"].read_text(encoding="utf-8")}


def gradebook_scores(course, student):
    with open_gradebook(course) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        grades = {g.name: g.score for nb in submission.notebooks for g in nb.grades}
        return grades, submission.score


@pytest.mark.slow
def test_header_follows_the_master_with_points(written):
    header = written["csv"].splitlines()[0].split(",")
    assert header == ["student_id", "status", *(f"{g} ({POINTS[g]})" for g in MASTER_ORDER),
                      "total", "max_score", "reason"]


@pytest.mark.slow
def test_per_question_csv_equals_the_gradebook(course, written):
    rows = {row["student_id"]: row for row in written["rows"]}
    for student in ("alice", "bob", "carol"):
        grades, total = gradebook_scores(course, student)
        assert set(grades) == set(MASTER_ORDER)
        for grade_id in MASTER_ORDER:
            assert float(rows[student][f"{grade_id} ({POINTS[grade_id]})"]) == grades[grade_id], (student, grade_id)
        assert float(rows[student]["total"]) == total
        assert rows[student]["max_score"] == "7"


@pytest.mark.slow
def test_scores_are_what_the_submissions_earned_including_the_manual_grade(written):
    got = {row["student_id"]: [row[f"{g} ({POINTS[g]})"] for g in MASTER_ORDER] + [row["total"]]
           for row in written["rows"] if row["status"] == GRADED}
    assert got == {
        "alice": ["2", "1", "2", "1.5", "6.5"],  # 1.5 by hand on the written answer
        "bob": ["2", "0", "0", "0", "2"],
        "carol": ["0", "0", "0", "0", "0"],
    }


@pytest.mark.slow
def test_rows_sorted_with_blanks_and_reasons_for_students_not_graded(written):
    rows = written["rows"]
    assert [row["student_id"] for row in rows] == sorted(r.student for r in RESULTS)
    by_id = {row["student_id"]: row for row in rows}
    for student, status in ((MALICIOUS, FAILED), ("dave", NOT_SUBMITTED)):
        row = by_id[student]
        assert row["status"] == status
        assert all(row[f"{g} ({POINTS[g]})"] == "" for g in MASTER_ORDER)
        assert row["total"] == ""
        assert row["reason"]
    assert by_id[MALICIOUS]["reason"] == "the kernel died in <b>cell 3</b> & was restarted"
    assert by_id["bob"]["reason"] == "awaiting manual grading: explain"
    assert by_id["alice"]["reason"] == ""
    # carol left the written answer as released: 0 points, still listed for a grader to confirm.
    assert by_id["carol"]["reason"] == "awaiting manual grading: explain"


@pytest.mark.slow
def test_csv_is_plain_utf8_comma_separated(written):
    raw = written["paths"]["grades_csv"].read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == len(RESULTS) + 1
    assert ".0," not in written["csv"]


@pytest.mark.slow
def test_html_has_three_embedded_plots_and_nothing_external(written):
    page = written["html"]
    assert page.count(IMG_TAG) == 3
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page and "<link" not in page


@pytest.mark.slow
def test_hardest_tests_lowest_pass_rate_first_ties_in_notebook_order(written):
    section = written["html"].split("<h2>Hardest tests</h2>")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(\w+)</td><td>([^<]*)</td>.*?</tr>", section)
    # Among alice, bob, carol: square_test passed by 2, cube_test and half_test by 1.
    assert rows == [("cube_test", "Part 1"), ("half_test", "Part 2"), ("square_test", "Part 1")]
    assert "<td>2 of 3</td>" in section and '<td class="num">33%</td>' in section


@pytest.mark.slow
def test_html_lists_status_counts_parts_and_escapes_student_text(written):
    page = written["html"]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;cell 3&lt;/b&gt; &amp; was restarted" in page
    assert "<b>" not in page
    assert '<tr><td>graded</td><td class="num">3</td></tr>' in page
    # Part 1: (3 + 2 + 0) / 9 = 56%; Part 2: (3.5 + 0 + 0) / 12 = 29%.
    assert '<tr><td>Part 1</td><td class="num">3</td><td class="num">56%</td></tr>' in page
    assert '<tr><td>Part 2</td><td class="num">4</td><td class="num">29%</td></tr>' in page


@pytest.mark.slow
def test_same_data_gives_the_same_bytes_and_leaves_the_gradebook_alone(course, written, tmp_path):
    gradebook = course / "gradebook.db"
    before = gradebook.read_bytes(), gradebook.stat().st_mtime_ns
    again = report.write_report(course, ASSIGNMENT, results=list(reversed(RESULTS)), out_dir=tmp_path)
    for key, path in written["paths"].items():
        if path.is_dir():  # the similarity pages
            assert sorted(p.name for p in again[key].iterdir()) == sorted(p.name for p in path.iterdir()), key
            assert all((again[key] / p.name).read_bytes() == p.read_bytes() for p in path.iterdir()), key
        else:
            assert again[key].read_bytes() == path.read_bytes(), key
    assert (gradebook.read_bytes(), gradebook.stat().st_mtime_ns) == before


@pytest.mark.slow
def test_defaults_read_the_grading_status_and_write_under_reports(course, tmp_path, log_lines):
    scratch = tmp_path / "course"
    shutil.copytree(course / "source", scratch / "source")
    shutil.copy2(course / "gradebook.db", scratch / "gradebook.db")
    save_results(status_path(scratch, ASSIGNMENT), RESULTS)
    paths = report.write_report(scratch, ASSIGNMENT)
    out = scratch / "reports" / ASSIGNMENT
    assert paths == {"grades_csv": out / "grades.csv", "class_report": out / "class_report.html",
                     "failures_csv": out / "test_failures.csv", "similarity_csv": out / "similarity.csv",
                     "pair_pages": out / "similarity"}
    assert all(path.exists() for path in paths.values())
    # Only the gradebook was copied: the graded notebooks the failures and similarity read are missing, and said so.
    warnings = [line for line in log_lines if line.startswith("warning: ")]
    assert len(log_lines) == 2 + len(warnings) and warnings
    assert all("autograded/" in line and "cannot be opened" in line for line in warnings), warnings


@pytest.mark.slow
def test_without_graded_students_there_are_no_plots_but_the_reasons(course, tmp_path):
    results = [r for r in RESULTS if r.status != GRADED]
    paths = report.write_report(course, ASSIGNMENT, results=results, out_dir=tmp_path)
    page = paths["class_report"].read_text(encoding="utf-8")
    assert IMG_TAG not in page and "No student was graded" in page and "no submission was found" in page
    assert len(paths["grades_csv"].read_text(encoding="utf-8").splitlines()) == 3


@pytest.mark.slow
def test_a_graded_student_missing_from_the_gradebook_is_an_error(course, tmp_path):
    with pytest.raises(report.ReportError, match=r"gradebook\.db: no graded submission .* by 'erin'"):
        report.write_report(course, ASSIGNMENT, results=[GradeResult("erin", GRADED)], out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_master_edited_after_grading_is_an_error(course, tmp_path):
    scratch = tmp_path / "course"
    shutil.copytree(course / "source", scratch / "source")
    shutil.copy2(course / "gradebook.db", scratch / "gradebook.db")
    master_path = scratch / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    master = nbformat.read(master_path, as_version=4)
    master.cells[3].metadata.nbgrader.points = 3
    nbformat.write(master, master_path)
    with pytest.raises(report.ReportError, match=r"square_test has 3 points in the master, 2 in the gradebook"):
        report.write_report(scratch, ASSIGNMENT, results=RESULTS, out_dir=tmp_path / "out")


def test_missing_gradebook_names_the_file(tmp_path):
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(tiny_master(), tmp_path / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    with pytest.raises(report.ReportError, match=r"gradebook\.db: no gradebook"):
        report.write_report(tmp_path, ASSIGNMENT, results=RESULTS)


def test_parts_come_from_level_one_part_headings():
    nb = new_notebook(cells=[
        new_code_cell("", metadata=meta("info_test", grade=True, locked=True, points=1)),
        new_markdown_cell("# Part 1. The $k$-means algorithm\n\n## Part 9 is a subheading"),
        new_code_cell("", metadata=meta("a_test", grade=True, locked=True, points=2)),
        new_markdown_cell("Some text\n# Part 3: Digits"),
        new_markdown_cell("", metadata=meta("essay", grade=True, solution=True, points=1.5)),
    ])
    assert report.questions_in_order(nb) == [
        report.Question("info_test", "Part 0", 1.0, True),
        report.Question("a_test", "Part 1", 2.0, True),
        report.Question("essay", "Part 3", 1.5, False),
    ]


@pytest.mark.parametrize("value, text", [(2.0, "2"), (1.5, "1.5"), (0.1 + 0.2, "0.3"), (-0.0, "0"), (None, "")])
def test_numbers_have_no_needless_decimals(value, text):
    assert report.format_number(value) == text
