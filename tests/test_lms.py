"""The LMS files, each checked against the rules of the LMS that imports it.

A tiny course, made without grading anything: a master with two tests and a
written answer, a gradebook filled through nbgrader's API (with a manual grade
and one still pending), students collected by the real collect step from
Moodle (folders before and after Moodle 4.1, and a flat name), Canvas and
plain names, one from nbgrader's exchange (no record), feedback pages with
other files planted beside them, and a Canvas gradebook export written as
Canvas writes it.
"""

import csv
import io
import json
import os
import shutil
import warnings
import zipfile
from datetime import datetime, timezone

import nbformat
import pytest
from conftest import canvas_name_ids, canvas_reupload_match
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from coursekit import cli
from coursekit.common import files
from coursekit.common.results import (
    FAILED,
    GRADED,
    NOT_SUBMITTED,
    GradeResult,
    save_results,
    status_path,
)
from coursekit.grading.gradebook import ensure_tools_on_path
from coursekit.steps import build, lms
from coursekit.steps.collect import collect
from coursekit.steps.report import read_gradesheet

ASSIGNMENT = "tiny"
POINTS = {"square_test": 2, "cube_test": 1, "explain": 2}
#: When the gradebook last changed: "Last modified (grade)" is this, to the minute.
GRADEBOOK_TIME = datetime(2026, 11, 30, 16, 5, 42, tzinfo=timezone.utc)
MOODLE_TIME = "Monday, 30 November 2026, 4:05 PM UTC"

# Where each student's notebook is in the download, and what they scored:
# (square_test, cube_test, explain by hand or None while pending).
DOWNLOAD = {
    "Jane Doe_12345_assignsubmission_file_/tiny.ipynb": "12345",  # Moodle before 4.1
    "José Álvarez_23456_assignsubmission_file/Copy of tiny.ipynb": "23456",  # Moodle 4.1 and later
    "Ann Lee_34567_assignsubmission_file_tiny.ipynb": "34567",  # Moodle without folders
    "doejane_700001_900001_tiny.ipynb": "700001",
    "smithjohn_LATE_700002_900002_tiny.ipynb": "700002",
    "brokenbo_700003_900003_tiny.ipynb": "700003",
    "naomi_700006_900006_tiny (1).ipynb": "700006",
    "20250001.ipynb": "20250001",
    "20250002_tiny.ipynb": "20250002",
}
SCORES = {
    "12345": (2, 1, 1.5),
    "23456": (2, 0, None),
    "700001": (2, 1, 2),
    "700002": (0, 0, 0),
    "700006": (2, 1, 1),
    "20250001": (2, 0, 1),
    "20250002": (0, 1, 0),
    "bob": (2, 0, 0.5),  # handed in through nbgrader's exchange: collect has no record of bob
}
TOTALS = {s: sum(x or 0 for x in scores) for s, scores in SCORES.items()}
RESULTS = [GradeResult(s, GRADED) for s in SCORES] + [
    GradeResult("34567", FAILED, reason="the kernel died in <b>cell 3</b>"),
    GradeResult("700003", FAILED, reason="not a readable notebook (invalid JSON)"),
    GradeResult("dave", NOT_SUBMITTED),
]
WITHOUT_PAGE = "20250002"
PLANTED = {"timestamp.txt": b"2026-11-30 12:00:00.000000 UTC", "submission_secret.txt": b"ab" * 32,
           "notes.txt": b"left by the student's code"}

CANVAS_EXPORT = (
    "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (111),Tiny lab (222),Essay (333),"
    "Current Score,Unposted Current Score,Final Score,Unposted Final Score\n"
    ",,,,,,Manual Posting,,,,,\n"
    "    Points Possible,,,,,10,5,20,(read only),(read only),(read only),(read only)\n"
    '"Doe, Jane",700001,S1,doejane,Section A,9,,15,80.5,80.5,80.5,80.5\n'
    '"Zoe, Zed ""Z""",700009,S9,zedzoe,"Section A and Section B",7,3,,70,70,70,70\n'
    '"Bo, Broken",700003,S3,brokenbo,Section A,,,,0,0,0,0\n'
    '"N, Naomi",700006,S6,naomi,Section B,N/A,N/A,N/A,,,,\n'
    "\"Álvarez, José\",700010,S10,jalvarez,Section B,8,-,,,,,\n"
    "\"Student, Test\",999,,,,0,0,0,0,0,0,0\n"
)


def meta(grade_id, grade=False, solution=False, locked=False, points=None):
    fields = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id}
    if points is not None:
        fields["points"] = points
    return {"nbgrader": fields}


def tiny_master():
    return new_notebook(cells=[
        new_markdown_cell("# Tiny lab\n\n# Part 1. Numbers"),
        new_code_cell("assert square(3) == 9", metadata=meta("square_test", grade=True, locked=True, points=2)),
        new_code_cell("assert cube(2) == 8", metadata=meta("cube_test", grade=True, locked=True, points=1)),
        new_markdown_cell("Because.", metadata=meta("explain", grade=True, solution=True, points=2)),
    ])


def fill_gradebook(course):
    """The gradebook of ``SCORES``, made through nbgrader's API (nothing is graded)."""
    ensure_tools_on_path()  # nbgrader runs alembic to create the database
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="clustering-lab") as gradebook:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission, not ours
        gradebook.add_assignment(ASSIGNMENT)
        gradebook.add_notebook(ASSIGNMENT, ASSIGNMENT)
        for name in ("square_test", "cube_test"):
            gradebook.add_grade_cell(name, ASSIGNMENT, ASSIGNMENT, max_score=POINTS[name], cell_type="code")
        gradebook.add_grade_cell("explain", ASSIGNMENT, ASSIGNMENT, max_score=POINTS["explain"], cell_type="markdown")
        for student, (square, cube, explain) in SCORES.items():
            gradebook.add_student(student)
            gradebook.add_submission(ASSIGNMENT, student)
            for name, score in (("square_test", square), ("cube_test", cube)):
                grade = gradebook.find_grade(name, ASSIGNMENT, ASSIGNMENT, student)
                grade.auto_score, grade.needs_manual_grade = score, False
            grade = gradebook.find_grade("explain", ASSIGNMENT, ASSIGNMENT, student)
            grade.needs_manual_grade, grade.manual_score = True, explain
        gradebook.db.commit()
    os.utime(course / "gradebook.db", (GRADEBOOK_TIME.timestamp(),) * 2)


def page(student):
    return f"<!DOCTYPE html><html><body><h1>Feedback for {student}</h1></body></html>\n".encode()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("lms_course")
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(tiny_master(), source / f"{ASSIGNMENT}.ipynb")
    download = tmp_path_factory.mktemp("download")
    for path, student in DOWNLOAD.items():
        (download / path).parent.mkdir(parents=True, exist_ok=True)
        cell = new_code_cell(f'STUDENT_ID = "{student}"', id="info")
        nbformat.write(new_notebook(cells=[cell]), download / path)
    assert collect(download, course, assignment=ASSIGNMENT, notebook=f"{ASSIGNMENT}.ipynb").ok
    fill_gradebook(course)
    save_results(status_path(course, ASSIGNMENT), RESULTS)
    for student in SCORES:
        folder = course / "feedback" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for name, data in PLANTED.items():
            (folder / name).write_bytes(data)
        if student != WITHOUT_PAGE:
            (folder / f"{ASSIGNMENT}.html").write_bytes(page(student))
    (course / "canvas_export.csv").write_bytes(CANVAS_EXPORT.encode("utf-8"))
    return course


@pytest.fixture(scope="module")
def written(course, tmp_path_factory):
    out = tmp_path_factory.mktemp("lms")
    result = lms.write_lms_files(course, ASSIGNMENT, out_dir=out, canvas_export=course / "canvas_export.csv")
    return {"out": out, "result": result, "files": {name: (out / name).read_bytes() for name in result.paths}}


def zip_members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: (info, archive.read(info)) for info in archive.infolist()}


def moodle_zip_import(name, participants):
    """What Moodle's importziplib.php (is_valid_filename_for_import) makes of a zip member's path.

    Returns (participant id, file name) or None: each part of the path is
    ``explode('_', part, 5)``; the first with at least 4 pieces, a numeric
    participant id and the plugin assignsubmission/file wins, and the rest of the
    path is the file's name.
    """
    if name.rsplit("/", 1)[-1].startswith((".", "~")):
        return None
    parts = name.split("/")
    while parts:
        info = parts.pop(0).split("_", 4)
        if len(info) < 4 or not info[1].isdigit() or int(info[1]) not in participants:
            continue
        if (info[2], info[3]) != ("assignsubmission", "file"):
            continue
        return int(info[1]), "/".join([info[4] if len(info) == 5 else "", *parts])
    return None


def moodle_worksheet_rows(data):
    """The worksheet as Moodle's importer reads it: columns found by their header text (importgradeslib.php)."""
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header = rows[0]
    assert all(len(row) == len(header) for row in rows)  # else Moodle's csv reader refuses the file
    index = {name: header.index(name) for name in ("Identifier", "Grade", "Last modified (grade)")}
    return header, [{key: row[i] for key, i in index.items()} | {"row": row} for row in rows[1:]]


def lines(data):
    return data.splitlines(keepends=True)


# --- The Moodle zip -------------------------------------------------------------------------------


def test_moodle_zip_has_one_folder_per_graded_participant_named_as_downloaded(written):
    members = zip_members(written["files"]["moodle_feedback_files.zip"])
    assert sorted(members) == ["Jane Doe_12345_assignsubmission_file_/tiny.html",
                               "José Álvarez_23456_assignsubmission_file/tiny.html"]
    folders = [name.split("/")[0] for name in members]
    assert len(set(folders)) == len(folders)  # one file per folder
    for name, (info, data) in members.items():
        assert name.isascii() or info.flag_bits & 0x800  # a name that is not ASCII says it is UTF-8
        student = name.split("_")[1]
        assert data == page(student)


def test_moodle_importer_maps_each_file_to_its_participant(written):
    participants = {12345, 23456, 34567}
    members = zip_members(written["files"]["moodle_feedback_files.zip"])
    assert {moodle_zip_import(name, participants) for name in members} == {(12345, "/tiny.html"),
                                                                           (23456, "/tiny.html")}


# --- The Moodle grading worksheet ---------------------------------------------------------------


def test_worksheet_has_moodles_columns_and_one_row_per_moodle_participant(written):
    data = written["files"]["moodle_grading_worksheet.csv"]
    header, rows = moodle_worksheet_rows(data)
    assert header == ["Identifier", "Full name", "Grade", "Maximum Grade", "Last modified (grade)",
                      "Feedback comments"]
    assert data.count(b"\r\n") == len(rows) + 1
    # The importer strips "Participant " (get_string('hiddenuser', 'assign')) and reads the id.
    ids = [row["Identifier"][len("Participant "):] for row in rows]
    assert [row["Identifier"] for row in rows] == [f"Participant {i}" for i in ids]
    assert ids == ["12345", "23456", "34567"]
    assert [row["row"][1] for row in rows] == ["Jane Doe", "José Álvarez", "Ann Lee"]
    assert {row["row"][3] for row in rows} == {"5"}


def test_worksheet_grades_are_the_gradebook_totals_including_manual_grades(course, written):
    _, rows = moodle_worksheet_rows(written["files"]["moodle_grading_worksheet.csv"])
    grades = {row["Identifier"].split()[-1]: row["Grade"] for row in rows}
    assert grades == {"12345": "4.5", "23456": "2", "34567": ""}  # blank: Moodle skips a row without a grade
    sheet = {row.student: row.total for row in read_gradesheet(course, ASSIGNMENT, RESULTS).rows}
    assert float(grades["12345"]) == sheet["12345"] == TOTALS["12345"]


def test_worksheet_last_modified_is_when_the_gradebook_changed_in_moodles_format_with_utc(written):
    _, rows = moodle_worksheet_rows(written["files"]["moodle_grading_worksheet.csv"])
    assert {row["Last modified (grade)"] for row in rows} == {MOODLE_TIME}
    parsed = datetime.strptime(MOODLE_TIME, "%A, %d %B %Y, %I:%M %p UTC").replace(tzinfo=timezone.utc)
    assert parsed == GRADEBOOK_TIME.replace(second=0)
    # 12-hour clock without a leading zero, as Moodle's userdate() writes it; midnight is 12 AM.
    assert lms.moodle_date(datetime(2026, 1, 4, 0, 7, tzinfo=timezone.utc)) == "Sunday, 4 January 2026, 12:07 AM UTC"
    assert lms.moodle_date(datetime(2026, 1, 4, 12, 0, tzinfo=timezone.utc)) == "Sunday, 4 January 2026, 12:00 PM UTC"


def test_worksheet_comments_sum_up_total_lost_points_and_pending_answers(written):
    _, rows = moodle_worksheet_rows(written["files"]["moodle_grading_worksheet.csv"])
    comments = {row["Identifier"].split()[-1]: row["row"][5] for row in rows}
    assert comments == {
        "12345": "Total 4.5 of 5. Points lost in: explain (1.5 of 2).",
        "23456": "Total 2 of 5. Points lost in: cube_test (0 of 1). Still to be graded by hand: explain.",
        "34567": "Not graded: the kernel died in &lt;b&gt;cell 3&lt;/b&gt;",  # Moodle stores comments as HTML
    }


def test_a_comment_names_a_few_cells_and_counts_the_rest(course, monkeypatch):
    monkeypatch.setattr(lms, "COMMENT_MAX_CELLS", 1)
    sheet = read_gradesheet(course, ASSIGNMENT, RESULTS)
    row = next(r for r in sheet.rows if r.student == "700002")  # lost points in all three cells
    assert lms.feedback_comment(row, sheet) == "Total 0 of 5. Points lost in: square_test (0 of 2) and 2 more cells."


# --- The Canvas file ------------------------------------------------------------------------------


def test_canvas_file_changes_only_the_assignment_cells_of_graded_students(course, written):
    before = lines((course / "canvas_export.csv").read_bytes())
    after = lines(written["files"]["canvas_gradebook_import.csv"])
    assert len(after) == len(before)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed == [3]  # Jane Doe's row; the header, Points Possible, Manual Posting and other rows are as exported
    assert after[3] == '"Doe, Jane",700001,S1,doejane,Section A,9,5,15,80.5,80.5,80.5,80.5\n'.encode()
    assert after[0].startswith(b"\xef\xbb\xbfStudent,ID,")  # the byte-order mark stays
    assert written["result"].canvas.column == "Tiny lab (222)"
    assert written["result"].canvas.written == {"700001": "5"}


def test_canvas_file_lists_every_graded_student_left_out(written, course, tmp_path, log_lines):
    canvas = written["result"].canvas
    assert canvas.not_in_export == ["700002"]
    assert canvas.not_assigned == ["700006"]  # "N/A": the assignment is not assigned to them in Canvas
    assert sorted(canvas.without_canvas_id) == ["12345", "20250001", "20250002", "23456", "bob"]
    assert canvas.left_out == sorted(["700002", "700006", "12345", "20250001", "20250002", "23456", "bob"])
    lms.write_lms_files(course, ASSIGNMENT, out_dir=tmp_path, canvas_export=course / "canvas_export.csv")
    warnings = [line for line in log_lines if line.startswith("warning:") and "canvas_gradebook_import.csv" in line]
    assert any("700002" in w and "no row in the export" in w for w in warnings)
    assert any("700006" in w and "N/A" in w for w in warnings)
    assert any("bob" in w and "Canvas user id is unknown" in w for w in warnings)


def test_canvas_semicolons_decimal_commas_and_crlf_stay_as_exported(course, tmp_path):
    export = ("Student;ID;SIS Login ID;Section;Tiny lab (222)\r\n"
              "    Points Possible;;;;5\r\n"
              "Doe, Jane;700001;doejane;Section A;3,5\r\n"
              "Zoe, Zed;700009;zedzoe;Section A;2,5\r\n").encode("utf-8")
    (tmp_path / "export.csv").write_bytes(export)
    result = lms.write_lms_files(course, ASSIGNMENT, out_dir=tmp_path / "out", canvas_export=tmp_path / "export.csv")
    out = result.paths["canvas_gradebook_import.csv"].read_bytes()
    assert out == export.replace(b"700001;doejane;Section A;3,5", b"700001;doejane;Section A;5")


def test_canvas_bytes_that_are_not_utf8_come_back_unchanged(course, tmp_path):
    export = CANVAS_EXPORT.replace("\ufeff", "").encode("utf-8").replace("Álvarez, José".encode(), b"\xc1lvarez")
    (tmp_path / "export.csv").write_bytes(export)
    result = lms.write_lms_files(course, ASSIGNMENT, out_dir=tmp_path / "out", canvas_export=tmp_path / "export.csv")
    out = result.paths["canvas_gradebook_import.csv"].read_bytes()
    assert b"\xc1lvarez" in out and out == export.replace(b"Section A,9,,15", b"Section A,9,5,15")


def test_canvas_column_by_default_is_the_one_whose_title_starts_with_the_assignment(tmp_path):
    path = tmp_path / "export.csv"
    # "Tinyx" is another word; "Current Score" is Canvas's, not an assignment.
    path.write_text("Student,ID,SIS Login ID,Section,Tiny lab (222),Tinyx (555),Current Score\n", encoding="utf-8")
    assert lms.check_canvas_export(path, ASSIGNMENT) == "Tiny lab (222)"


@pytest.mark.parametrize("column, chosen", [("Tiny lab (222)", "Tiny lab (222)"), ("444", "Tiny lab retake (444)"),
                                            ("Tinyx (555)", "Tinyx (555)")])
def test_canvas_column_can_be_named_by_its_header_or_assignment_id(tmp_path, column, chosen):
    path = tmp_path / "export.csv"
    path.write_text("Student,ID,SIS Login ID,Section,Tiny lab (222),Tiny lab retake (444),Tinyx (555)\n",
                    encoding="utf-8")
    assert lms.check_canvas_export(path, ASSIGNMENT, column) == chosen


def test_several_candidate_columns_are_an_error_listing_them(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Student,ID,SIS Login ID,Section,Tiny lab (222),Tiny lab retake (444),Tinyx (555)\n",
                    encoding="utf-8")
    with pytest.raises(lms.LmsError, match=r"several .* 'Tiny lab \(222\)', 'Tiny lab retake \(444\)'; name one"):
        lms.check_canvas_export(path, ASSIGNMENT)


@pytest.mark.parametrize("content, complaint", [
    ("Student,ID,SIS Login ID,Section,Quiz (1)\n", r"no assignment column starts with 'tiny'; .* 'Quiz \(1\)'"),
    ("Name,Email,Grade\nJane,j@x,1\n", "not a Canvas gradebook export"),
    ('Student,ID,SIS Login ID,Section,Tiny (2)\n"Doe, Jane,700001\n', "never closed"),
    ("", "empty"),
])
def test_a_file_that_is_not_a_usable_canvas_export_is_refused_naming_it(tmp_path, content, complaint):
    path = tmp_path / "export.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(lms.LmsError, match=complaint) as error:
        lms.check_canvas_export(path, ASSIGNMENT)
    assert str(path) in str(error.value)


def test_csv_records_keep_every_cells_place():
    text = 'a,"b,""c""\r\nd",\r\n\r\n"x"'
    records = lms.csv_records(text, ",", "t.csv")
    assert [r.cells for r in records] == [("a", 'b,"c"\r\nd', ""), (), ("x",)]
    assert [text[s:e] for s, e in records[0].spans] == ["a", '"b,""c""\r\nd"', ""]


# --- The Canvas zip (Re-Upload Submissions) ---------------------------------------------------------


def handed_in_to_canvas():
    """{user id: {file id}} of the Canvas download, read from its names as Canvas reads them."""
    found = {}
    for path in DOWNLOAD:
        ids = canvas_name_ids(path)
        if ids:
            found.setdefault(ids[0], set()).add(ids[1])
    return found


def test_canvas_zip_attaches_each_graded_students_page_to_their_own_submission(written):
    members = zip_members(written["files"]["canvas_feedback_files.zip"])
    # Graded Canvas students with a page: 700001, the late 700002 and 700006 (700003 failed to grade).
    matched = {name: canvas_reupload_match(name, handed_in_to_canvas()) for name in members}
    assert sorted(matched.values()) == [(700001, 900001), (700002, 900002), (700006, 900006)]
    for name, (user, _) in matched.items():
        assert members[name][1] == page(str(user))
        assert name.endswith(".html") and "/" not in name
    assert len({name.rsplit("/", 1)[-1] for name in members}) == len(members)  # Canvas refuses repeated names


def test_canvas_zip_leaves_out_a_student_collected_without_a_file_id_and_says_so(course, tmp_path, log_lines):
    scratch = shutil.copytree(course, tmp_path / "course")
    record = scratch / "reports" / ASSIGNMENT / "lms_identities.json"
    identities = json.loads(record.read_text(encoding="utf-8"))
    del identities["700002"]["canvas_attachment_id"]  # as an earlier version of collect recorded it
    record.write_text(json.dumps(identities), encoding="utf-8")
    result = lms.write_lms_files(scratch, ASSIGNMENT, out_dir=tmp_path / "out")
    members = zip_members(result.paths["canvas_feedback_files.zip"].read_bytes())
    assert sorted(canvas_reupload_match(name, handed_in_to_canvas())[0] for name in members) == [700001, 700006]
    assert any(line.startswith("warning:") and "canvas_feedback_files.zip" in line and "collect" in line
               and line.endswith(": 700002") for line in log_lines)


def test_canvas_reupload_rule_ignores_what_canvas_ignores():
    handed_in = {700001: {900001}}
    assert canvas_reupload_match("700001_900001_tiny_feedback.html", handed_in) == (700001, 900001)
    assert canvas_reupload_match("doejane_LATE_700001_900001_tiny.ipynb", handed_in) == (700001, 900001)
    assert canvas_reupload_match("700001_900002_tiny_feedback.html", handed_in) is None  # not their file
    assert canvas_reupload_match("700001_900001.html", handed_in) is None  # no piece after the file id
    assert canvas_reupload_match("700001_900001_links.html", handed_in) is None


# --- The plain zip, and what every zip holds ----------------------------------------------------------


def test_plain_zip_names_pages_by_student_for_files_and_the_exchange(written):
    members = zip_members(written["files"]["feedback_pages.zip"])
    assert sorted(members) == ["20250001.html", "bob.html"]
    assert members["bob.html"][1] == page("bob")
    assert written["result"].missing_pages == [WITHOUT_PAGE]


def test_zips_hold_feedback_pages_only(written):
    pages = {page(s) for s in SCORES}
    for name in ("moodle_feedback_files.zip", "canvas_feedback_files.zip", "feedback_pages.zip"):
        for member, (info, data) in zip_members(written["files"][name]).items():
            assert member.endswith(".html")
            assert data in pages, (name, member)
            assert info.date_time == lms.ZIP_DATE_TIME
        planted = [m for m in zip_members(written["files"][name]) if m.rsplit("/", 1)[-1] in PLANTED]
        assert planted == []


def test_rerun_gives_identical_bytes(course, written):
    again = lms.write_lms_files(course, ASSIGNMENT, out_dir=written["out"], canvas_export=course / "canvas_export.csv")
    assert sorted(again.paths) == sorted(written["files"])
    for name, data in written["files"].items():
        assert again.paths[name].read_bytes() == data, name
    assert sorted(p.name for p in written["out"].iterdir()) == sorted(written["files"])


# --- Writing: atomic, only what there is something for -------------------------------------------------


def test_a_zip_that_fails_half_way_leaves_no_partial_file(course, tmp_path, monkeypatch):
    out = tmp_path / "lms"
    out.mkdir()
    (out / "feedback_pages.zip").write_bytes(b"the earlier zip")
    calls = []

    def failing_writestr(self, info, data):
        calls.append(info)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(self, info, data)

    original = zipfile.ZipFile.writestr
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="No space left"):
        lms.write_lms_files(course, ASSIGNMENT, out_dir=out)
    assert not list(out.glob("*.part"))
    assert (out / "feedback_pages.zip").read_bytes() == b"the earlier zip"
    assert not (out / "moodle_feedback_files.zip").exists()


def test_a_failed_move_leaves_the_earlier_file_and_no_partial_one(course, tmp_path, monkeypatch):
    out = tmp_path / "lms"
    out.mkdir()
    (out / "moodle_grading_worksheet.csv").write_bytes(b"earlier worksheet")

    def failing_replace(source, target):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError):
        lms.write_lms_files(course, ASSIGNMENT, out_dir=out, canvas_export=course / "canvas_export.csv")
    assert sorted(p.name for p in out.iterdir()) == ["moodle_grading_worksheet.csv"]
    assert (out / "moodle_grading_worksheet.csv").read_bytes() == b"earlier worksheet"


def test_a_bad_canvas_export_writes_nothing(course, tmp_path):
    (tmp_path / "export.csv").write_text("Student,ID,SIS Login ID,Section,Quiz (1)\n", encoding="utf-8")
    with pytest.raises(lms.LmsError):
        lms.write_lms_files(course, ASSIGNMENT, out_dir=tmp_path / "out", canvas_export=tmp_path / "export.csv")
    assert not (tmp_path / "out").exists()


def test_only_the_kinds_with_students_are_written_and_stale_files_go(course, tmp_path):
    out = tmp_path / "out"
    lms.write_lms_files(course, ASSIGNMENT, out_dir=out, canvas_export=course / "canvas_export.csv")
    assert (out / "canvas_gradebook_import.csv").is_file()
    # Only plain-file students: no Moodle files; and no Canvas export this time, so no Canvas file either.
    plain = [r for r in RESULTS if r.student in ("20250001", "bob")]
    result = lms.write_lms_files(course, ASSIGNMENT, results=plain, out_dir=out)
    assert sorted(result.paths) == ["feedback_pages.zip"]
    assert sorted(p.name for p in out.iterdir()) == ["feedback_pages.zip"]


# --- The command line --------------------------------------------------------------------------------


def test_report_command_writes_the_lms_files(course, tmp_path):
    scratch = shutil.copytree(course, tmp_path / "course")
    code = cli.main(["report", "-q", "--root", str(scratch), "--assignment", ASSIGNMENT,
                     "--canvas-export", str(scratch / "canvas_export.csv"), "--canvas-column", "222"])
    assert code == 0
    folder = scratch / "reports" / ASSIGNMENT / "lms"
    assert sorted(p.name for p in folder.iterdir()) == sorted(lms.OUTPUTS)
    assert (scratch / "reports" / ASSIGNMENT / "grades.csv").is_file()


def test_all_checks_the_canvas_export_before_grading(course, tmp_path, monkeypatch, log_lines):
    (tmp_path / "export.csv").write_text("Student,ID,SIS Login ID,Section,Tiny (1),Tiny b (2)\n", encoding="utf-8")
    monkeypatch.setattr(build, "build", lambda *a, **k: pytest.fail("built before checking the export"))
    code = cli.main(["all", "--root", str(tmp_path), "--assignment", ASSIGNMENT,
                     "--canvas-export", str(tmp_path / "export.csv")])
    assert code == 1
    assert any(line.startswith("error:") and "several assignment columns" in line for line in log_lines)


def test_a_missing_canvas_export_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["report", "--root", str(tmp_path), "--canvas-export", str(tmp_path / "nope.csv")])
    assert stop.value.code == 2 and "nope.csv: no such file" in capsys.readouterr().err


def test_a_page_that_shows_a_hidden_test_leaves_in_no_lms_file(tmp_path, log_lines):
    secret = "assert _hidden_check(values) == 42, 'a hidden test line'"
    for student, body in (("ann", b"<p>fine</p>"), ("bob", f"<pre>{secret}</pre>".encode())):
        folder = tmp_path / "feedback" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.html").write_bytes(body)
    pages, missing = lms.read_pages(tmp_path, ASSIGNMENT, ["ann", "bob"], secrets={secret})
    assert list(pages) == ["ann"] and missing == ["bob"]
    assert any(line.startswith("warning: ") and "shows a hidden test" in line for line in log_lines)


def test_a_linked_a_fifo_or_a_huge_page_leaves_in_no_lms_file(tmp_path, monkeypatch, log_lines):
    """Only a regular feedback page of sensible size is packed; nothing is followed through a link."""
    outside = tmp_path / "outside.html"
    outside.write_bytes(b"<p>not this student's page</p>")
    folders = {}
    for student in ("ann", "linked", "fifo", "huge"):
        folders[student] = tmp_path / "feedback" / student / ASSIGNMENT
        folders[student].mkdir(parents=True)
    (folders["ann"] / f"{ASSIGNMENT}.html").write_bytes(b"<p>fine</p>")
    (folders["linked"] / f"{ASSIGNMENT}.html").symlink_to(outside)
    os.mkfifo(folders["fifo"] / f"{ASSIGNMENT}.html")
    (folders["huge"] / f"{ASSIGNMENT}.html").write_bytes(b"x" * 2048)
    monkeypatch.setattr(lms, "MAX_PAGE_BYTES", 1024)
    pages, missing = lms.read_pages(tmp_path, ASSIGNMENT, ["ann", "linked", "fifo", "huge"])
    assert pages == {"ann": b"<p>fine</p>"} and missing == ["linked", "fifo", "huge"]
    assert sum(line.startswith("warning: ") and "not put in any LMS file" in line for line in log_lines) == 3
