"""The collect step on hand-made folders and zips: every naming case, duplicates, safety, re-runs."""

import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime, timezone

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook
from nbgrader.plugins.zipcollect import FileNameCollectorPlugin
from nbgrader.utils import parse_utc

from coursekit.grading.gradebook import ensure_tools_on_path, set_student_names
from coursekit.steps import collect as collect_module
from coursekit.steps.collect import (
    NBGRADER_ZIP_COLLECT_REGEXP,
    NO_ID_REASON,
    CollectError,
    collect,
    student_from_name,
    student_id_in_notebook,
)

WHEN = (2025, 3, 1, 10, 0, 0)  # a zip entry's date_time


def notebook_bytes(student_id="20251234", name="Jane Doe", extra=""):
    """A small student notebook whose info cell assigns NAME and STUDENT_ID."""
    # Fixed cell ids: nbformat draws random ones, and tests compare bytes.
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Clustering", id="header"),
            new_code_cell(f'NAME = "{name}"\nSTUDENT_ID = "{student_id}"', id="student-info"),
            new_code_cell(f"x = 1{extra}", id="work"),
        ]
    )
    return nbformat.writes(nb).encode()


def make_zip(path, members):
    """Write a zip of {member name: bytes or (bytes, date_time)}."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            data, when = content if isinstance(content, tuple) else (content, WHEN)
            archive.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return path


def make_folder(folder, files):
    """Write {relative path: bytes or (bytes, mtime)} under ``folder``."""
    for name, content in files.items():
        data, mtime = content if isinstance(content, tuple) else (content, None)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    return folder


def submitted(root, student):
    return root / "submitted" / student / "clustering" / "clustering.ipynb"


def snapshot(folder):
    """{relative path: (bytes, mtime_ns)} of every file under ``folder``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    return root


@pytest.fixture
def messages(log_lines):
    return log_lines


# --------------------------------------------------------------------------
# Every naming case, from a folder
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, student, found_by, late",
    [
        ("20251234.ipynb", "20251234", "file name", False),
        ("20251234_clustering.ipynb", "20251234", "file name", False),
        ("clustering_20251234.ipynb", "20251234", "file name", False),
        ("Copy of 20251234_clustering (1).ipynb", "20251234", "file name", False),
        ("doejane_12345_67890_clustering.ipynb", "12345", "Canvas", False),
        ("doejane_LATE_12345_67890_clustering.ipynb", "12345", "Canvas", True),
        ("doejane_12345_67890_Copy of clustering.ipynb", "12345", "Canvas", False),
        ("doejane_12345_67890_clustering (1).ipynb", "12345", "Canvas", False),
        ("doejane_12345_67890_clustering-1.ipynb", "12345", "Canvas", False),
        ("Jane Doe_12345_assignsubmission_file_/clustering.ipynb", "12345", "Moodle", False),
        ("Jane Doe_12345_assignsubmission_file_/clustering (1).ipynb", "12345", "Moodle", False),
        ("Jane Doe_12345_assignsubmission_file_/Copy of clustering.ipynb", "12345", "Moodle", False),
        ("Jane Doe_12345_assignsubmission_file_clustering.ipynb", "12345", "Moodle", False),
        ("clustering.ipynb", "20251234", "notebook STUDENT_ID", False),
        ("Copy of clustering.ipynb", "20251234", "notebook STUDENT_ID", False),
        ("clustering (1).ipynb", "20251234", "notebook STUDENT_ID", False),
        ("clustering-Copy1.ipynb", "20251234", "notebook STUDENT_ID", False),
        ("jdoe/Untitled.ipynb", "20251234", "notebook STUDENT_ID", False),
    ],
)
def test_each_naming_gives_the_student_and_destination(tmp_path, course, messages, path, student, found_by, late):
    data = notebook_bytes("20251234")
    source = make_folder(tmp_path / "in", {path: data})
    report = collect(source, course)
    assert report.ok, report.table()
    [row] = report.matched
    assert (row.student, row.found_by, row.late, row.source_path) == (student, found_by, late, path)
    assert row.destination == submitted(course, student)
    assert submitted(course, student).read_bytes() == data
    assert student_from_name(path) == (None if found_by.startswith("notebook") else (student, found_by, late))


# --------------------------------------------------------------------------
# LMS zips and plain folders
# --------------------------------------------------------------------------
def test_canvas_zip_with_a_late_one_and_a_colab_rename(tmp_path, course, messages):
    source = make_zip(
        tmp_path / "submissions.zip",
        {
            "doejane_12345_67890_clustering.ipynb": (notebook_bytes("20250001"), (2025, 3, 1, 9, 30, 0)),
            "smithjohn_LATE_23456_78901_clustering.ipynb": (notebook_bytes("20250002"), (2025, 3, 3, 8, 0, 0)),
            "leeann_34567_89012_Copy of clustering.ipynb": notebook_bytes("20250003"),
            "__MACOSX/._doejane_12345_67890_clustering.ipynb": b"\x00\x05\x16\x07",
            ".DS_Store": b"junk",
        },
    )
    report = collect(source, course)
    assert report.ok
    rows = {row.student: row for row in report.matched}
    assert sorted(rows) == ["12345", "23456", "34567"]
    assert [rows[s].late for s in ("12345", "23456", "34567")] == [False, True, False]
    assert {row.found_by for row in report.matched} == {"Canvas"}
    assert submitted(course, "34567").read_bytes() == notebook_bytes("20250003")
    assert sorted(report.skipped) == [".DS_Store", "__MACOSX/._doejane_12345_67890_clustering.ipynb"]
    # timestamp.txt holds the zip entry's time in a form nbgrader's autograde reads.
    stamp = (submitted(course, "23456").parent / "timestamp.txt").read_text()
    expected = datetime(2025, 3, 3, 8, 0, 0).astimezone(timezone.utc)
    assert parse_utc(stamp) == expected.replace(tzinfo=None)
    assert stamp.endswith(" UTC")


def test_moodle_folders_in_a_zip(tmp_path, course, messages):
    source = make_zip(
        tmp_path / "moodle.zip",
        {
            "Jane Doe_12345_assignsubmission_file_/clustering.ipynb": notebook_bytes("20250001"),
            "José Álvarez_23456_assignsubmission_file_/clustering (1).ipynb": notebook_bytes("20250002"),
            "Ann Lee_34567_assignsubmission_file_/Copy of clustering.ipynb": notebook_bytes("20250003"),
            "Ann Lee_34567_assignsubmission_onlinetext_/onlinetext.html": b"<p>hello</p>",
        },
    )
    report = collect(source, course)
    assert report.ok
    assert sorted((row.student, row.found_by) for row in report.matched) == [
        ("12345", "Moodle"), ("23456", "Moodle"), ("34567", "Moodle")
    ]
    assert submitted(course, "23456").read_bytes() == notebook_bytes("20250002")
    assert "José Álvarez_23456_assignsubmission_file_/clustering (1).ipynb" in report.table()


def test_folder_of_id_named_notebooks(tmp_path, course, messages):
    source = make_folder(
        tmp_path / "in",
        {
            "20250001.ipynb": notebook_bytes("20250001"),
            "20250002_clustering.ipynb": notebook_bytes("20250002"),
            "jdoe.ipynb": notebook_bytes("20250003"),
            ".ipynb_checkpoints/20250001-checkpoint.ipynb": notebook_bytes("20250001"),
            "notes.txt": b"not a notebook",
        },
    )
    report = collect(source, course)
    assert sorted(row.student for row in report.matched) == ["20250001", "20250002", "jdoe"]
    for student in ("20250001", "20250002", "jdoe"):
        assert submitted(course, student).is_file()
    assert sorted(report.skipped) == [".ipynb_checkpoints/", "notes.txt"]
    # A name-given id that disagrees with the notebook is collected under the name, with a warning.
    assert any("'jdoe'" in w and "'20250003'" in w for w in report.warnings)


# --------------------------------------------------------------------------
# Ids from the notebook, and files that cannot give one
# --------------------------------------------------------------------------
def test_no_id_in_the_name_uses_student_id_from_the_notebook(tmp_path, course, messages):
    source = make_folder(tmp_path / "in", {"alice/clustering.ipynb": notebook_bytes("20259999")})
    report = collect(source, course)
    [row] = report.matched
    assert (row.student, row.found_by) == ("20259999", "notebook STUDENT_ID")
    assert submitted(course, "20259999").is_file()


def test_no_id_and_empty_student_id_is_unmatched_with_the_reason(tmp_path, course, messages):
    source = make_folder(tmp_path / "in", {"Copy of clustering.ipynb": notebook_bytes("")})
    report = collect(source, course)
    assert not report.ok
    assert report.matched == []
    assert report.unmatched == [("Copy of clustering.ipynb", NO_ID_REASON)]
    assert not (course / "submitted").exists()


def test_no_id_and_a_corrupt_file_is_unmatched(tmp_path, course, messages):
    source = make_folder(tmp_path / "in", {"clustering.ipynb": b"{not json"})
    report = collect(source, course)
    [(path, reason)] = report.unmatched
    assert path == "clustering.ipynb"
    assert "not a readable notebook" in reason


def test_invalid_student_id_in_the_notebook_is_unmatched(tmp_path, course, messages):
    source = make_folder(tmp_path / "in", {"clustering.ipynb": notebook_bytes("../../etc")})
    [(_, reason)] = collect(source, course).unmatched
    assert "'../../etc'" in reason and "not a valid id" in reason
    assert not (course / "submitted").exists()


def test_a_corrupt_file_with_an_id_in_its_name_is_still_collected(tmp_path, course, messages):
    source = make_folder(tmp_path / "in", {"20250001.ipynb": b"{broken"})
    report = collect(source, course)
    assert report.ok
    assert submitted(course, "20250001").read_bytes() == b"{broken"
    assert any("20250001.ipynb" in w and "not a readable notebook" in w for w in report.warnings)


@pytest.mark.parametrize(
    "source, expected",
    [
        ('STUDENT_ID = "20251234"', "20251234"),
        ("STUDENT_ID = '  20251234 '", "20251234"),
        ("STUDENT_ID: str = r'20251234'  # mine", "20251234"),
        ("STUDENT_ID = 0020251234", "0020251234"),
        ('STUDENT_ID = ""\nSTUDENT_ID = "20251234"', "20251234"),
        ('STUDENT_ID = ""', ""),
        ("student = 1", None),
        ('print(STUDENT_ID == "1")', None),
    ],
)
def test_student_id_in_notebook(source, expected):
    data = nbformat.writes(new_notebook(cells=[new_code_cell(source)])).encode()
    assert student_id_in_notebook(data) == expected


# --------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------
def test_duplicates_keep_the_newest_with_a_warning(tmp_path, course, messages):
    old, new = notebook_bytes(extra="  # old"), notebook_bytes(extra="  # new")
    source = make_folder(
        tmp_path / "in",
        {"20250001.ipynb": (new, 1_700_000_000), "20250001_clustering.ipynb": (old, 1_600_000_000)},
    )
    report = collect(source, course)
    assert submitted(course, "20250001").read_bytes() == new
    assert report.duplicates == [("20250001", "20250001.ipynb", ("20250001_clustering.ipynb",))]
    [warning] = [w for w in report.warnings if "notebooks" in w]
    assert "20250001.ipynb" in warning and "20250001_clustering.ipynb" in warning and "newest" in warning
    assert any(m.startswith("warning:") and "20250001_clustering.ipynb" in m for m in messages)


def test_duplicates_with_equal_timestamps_keep_the_name_that_sorts_last(tmp_path, course, messages):
    source = make_zip(
        tmp_path / "canvas.zip",
        {
            "doejane_12345_67890_clustering.ipynb": notebook_bytes(extra="  # a"),
            "doejane_12345_67891_clustering-1.ipynb": notebook_bytes(extra="  # b"),
        },
    )
    report = collect(source, course)
    assert submitted(course, "12345").read_bytes() == notebook_bytes(extra="  # b")
    kept, dropped = "doejane_12345_67891_clustering-1.ipynb", "doejane_12345_67890_clustering.ipynb"
    assert report.duplicates == [("12345", kept, (dropped,))]
    assert any("sorts last" in w for w in report.warnings)


# --------------------------------------------------------------------------
# Safety
# --------------------------------------------------------------------------
def test_zip_slip_entries_are_rejected(tmp_path, course, messages):
    evil = ["../evil.ipynb", "/tmp/evil.ipynb", "a/../../evil.ipynb", "C:\\evil.ipynb", "..\\evil.ipynb"]
    members = {name: notebook_bytes("20250666") for name in evil}
    members["20250001.ipynb"] = notebook_bytes("20250001")
    source = make_zip(tmp_path / "evil.zip", members)
    report = collect(source, course)
    assert [row.student for row in report.matched] == ["20250001"]
    assert sorted(path for path, _ in report.unmatched) == sorted(evil)
    assert all("unsafe path" in reason for _, reason in report.unmatched)
    assert not (tmp_path / "evil.ipynb").exists()
    assert [p.name for p in (course / "submitted").iterdir()] == ["20250001"]


def test_a_notebook_over_the_size_cap_is_not_read(tmp_path, course, messages, monkeypatch):
    monkeypatch.setattr(collect_module, "MAX_NOTEBOOK_BYTES", 200)
    source = make_zip(tmp_path / "big.zip", {"20250001.ipynb": notebook_bytes(extra=" " * 500)})
    report = collect(source, course)
    [(path, reason)] = report.unmatched
    assert path == "20250001.ipynb" and "larger than" in reason
    assert not (course / "submitted").exists()


@pytest.mark.parametrize("name, content, complaint", [
    ("missing.zip", None, "no such file or folder"),
    ("notes.txt", b"hello", "expected a folder of notebooks or a .zip"),
    ("broken.zip", b"PK not really", "not a readable zip file"),
])
def test_a_bad_source_raises_naming_the_file(tmp_path, course, name, content, complaint):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(CollectError, match=complaint) as error:
        collect(tmp_path / name, course)
    assert name in str(error.value)


def test_a_course_inside_the_source_folder_is_not_collected_again(tmp_path, messages):
    source = make_folder(tmp_path / "in", {"clustering.ipynb": notebook_bytes("20250001")})
    course = source / "course"
    collect(source, course)
    report = collect(source, course)
    assert [(row.source_path, row.action) for row in report.matched] == [("clustering.ipynb", "unchanged")]
    assert report.duplicates == []


def test_collecting_from_the_submitted_folder_is_refused(course):
    (course / "submitted").mkdir()
    with pytest.raises(CollectError, match="where collect writes"):
        collect(course / "submitted", course)


# --------------------------------------------------------------------------
# The table, re-runs and updates
# --------------------------------------------------------------------------
def test_the_table_lists_matched_and_unmatched(tmp_path, course, messages):
    source = make_zip(
        tmp_path / "mixed.zip",
        {
            "doejane_LATE_12345_67890_clustering.ipynb": notebook_bytes(),
            "20250002.ipynb": notebook_bytes("20250002"),
            "clustering (1).ipynb": notebook_bytes(""),
        },
    )
    report = collect(source, course)
    table = report.table()
    assert messages[-1] == table
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("student"))
    for column in ("found by", "late", "submitted (UTC)", "action", "file in the source", "destination"):
        assert column in header
    late_row = next(line for line in lines if line.startswith("12345 "))
    assert "Canvas" in late_row and "LATE" in late_row and "2025-03-01" in late_row
    assert "submitted/12345/clustering/clustering.ipynb" in late_row
    # Columns are aligned: the destination starts at the same place on every row.
    rows = [header, late_row, next(line for line in lines if line.startswith("20250002 "))]
    assert len({row.index("destination") if row is header else row.index("submitted/") for row in rows}) == 1
    assert "NOT collected (1):" in table
    assert any(line.startswith("clustering (1).ipynb") and NO_ID_REASON in line for line in lines)


def test_collecting_the_same_source_again_changes_nothing(tmp_path, course, messages):
    source = make_zip(
        tmp_path / "canvas.zip",
        {
            "doejane_12345_67890_clustering.ipynb": notebook_bytes(),
            "smithjohn_23456_78901_clustering.ipynb": notebook_bytes("20250002"),
        },
    )
    first = collect(source, course)
    before = snapshot(course)
    second = collect(source, course)
    assert snapshot(course) == before
    assert {row.action for row in first.matched} == {"new"}
    assert {row.action for row in second.matched} == {"unchanged"}
    assert not list(course.rglob("*.part"))


def test_a_changed_submission_is_updated_and_others_are_kept(tmp_path, course, messages):
    other = make_folder(course / "submitted" / "99999" / "clustering", {"clustering.ipynb": b"earlier student"})
    collect(make_zip(tmp_path / "v1.zip", {"20250001.ipynb": notebook_bytes()}), course)
    newer = notebook_bytes(extra="  # fixed")
    later = (2025, 3, 2, 10, 0, 0)
    report = collect(make_zip(tmp_path / "v2.zip", {"20250001.ipynb": (newer, later)}), course)
    assert [row.action for row in report.matched] == ["updated"]
    assert submitted(course, "20250001").read_bytes() == newer
    assert any(m.startswith("updated ") and "20250001" in m for m in messages)
    stamp = (submitted(course, "20250001").parent / "timestamp.txt").read_text()
    assert parse_utc(stamp) == datetime(*later).astimezone(timezone.utc).replace(tzinfo=None)
    assert (other / "clustering.ipynb").read_bytes() == b"earlier student"


def test_replacing_with_an_older_file_warns_that_autograde_may_skip_it(tmp_path, course, messages):
    collect(make_zip(tmp_path / "v1.zip", {"20250001.ipynb": (notebook_bytes(), (2025, 3, 2, 10, 0, 0))}), course)
    older = make_zip(tmp_path / "v0.zip", {"20250001.ipynb": (notebook_bytes(extra="  # v0"), WHEN)})
    report = collect(older, course)
    assert [row.action for row in report.matched] == ["updated"]
    assert any("not newer" in w and "--force" in w for w in report.warnings)


# --------------------------------------------------------------------------
# Plain nbgrader zip_collect: the anchored-regex pitfall and the fix
# --------------------------------------------------------------------------
CANVAS_FILES = {
    "doejane_12345_67890_clustering.ipynb": "12345",
    "smithjohn_LATE_23456_78901_clustering.ipynb": "23456",
    "leeann_34567_89012_Copy of clustering.ipynb": "34567",
    "kimbo_45678_90123_clustering (1).ipynb": "45678",
    "parkjo_56789_1234_clustering-2.ipynb": "56789",
}


def test_nbgrader_plugin_misses_an_anchored_regex_and_matches_ours(tmp_path):
    anchored = r"^(?P<login>[a-z]+)(?:_LATE)?_(?P<student_id>[0-9]+)_[0-9]+_(?P<file_id>.+)\.ipynb$"
    naive = FileNameCollectorPlugin(named_regexp=anchored)
    ours = FileNameCollectorPlugin(named_regexp=NBGRADER_ZIP_COLLECT_REGEXP)
    for name, student in CANVAS_FILES.items():
        absolute = str(tmp_path / "downloaded" / "clustering" / "extracted" / "submissions" / name)
        assert naive._match(name) is not None  # the regex is right for the bare file name ...
        assert naive.collect(absolute) is None  # ... but the plugin sees the absolute path
        found = ours.collect(absolute)
        assert (found["student_id"], found["file_id"]) == (student, "clustering")
        # zip_collect stores the file as file_id + extension: the released notebook's name.
        assert os.path.splitext(found["file_id"])[0] + ".ipynb" == "clustering.ipynb"


def test_nbgrader_zip_collect_with_our_regex_end_to_end(tmp_path):
    root = tmp_path / "course"
    make_folder(root / "release" / "clustering", {"clustering.ipynb": notebook_bytes("")})
    archive = root / "downloaded" / "clustering" / "archive"
    archive.mkdir(parents=True)
    make_zip(archive / "submissions.zip", {name: notebook_bytes(student) for name, student in CANVAS_FILES.items()})
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "zip_collect", "clustering", "--strict",
         f"--CourseDirectory.root={root}", f"--FileNameCollectorPlugin.named_regexp={NBGRADER_ZIP_COLLECT_REGEXP}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for student in CANVAS_FILES.values():
        assert submitted(root, student).read_bytes() == notebook_bytes(student), result.stderr


# --------------------------------------------------------------------------
# Where each submission came from: lms_identities.json
# --------------------------------------------------------------------------
def identities_file(root):
    return root / "reports" / "clustering" / "lms_identities.json"


def test_moodle_41_folders_without_the_last_underscore_are_moodle(tmp_path, course, messages):
    # Moodle 4.1 and later name the folder "<name>_<id>_assignsubmission_file" (no trailing "_").
    path = "Jane Doe_12345_assignsubmission_file/Copy of clustering.ipynb"
    assert student_from_name(path) == ("12345", "Moodle", False)
    report = collect(make_zip(tmp_path / "moodle41.zip", {path: notebook_bytes("20250001")}), course)
    [row] = report.matched
    assert (row.student, row.found_by) == ("12345", "Moodle")
    # A file (not a folder) of that form is not a Moodle name.
    assert student_from_name("Jane Doe_12345_assignsubmission_file") is None


def test_collect_records_where_each_submission_came_from(tmp_path, course, messages):
    source = make_zip(tmp_path / "mixed.zip", {
        "Jane Doe_12345_assignsubmission_file_/clustering.ipynb": notebook_bytes("20250001"),
        "José Álvarez_23456_assignsubmission_file/clustering (1).ipynb": notebook_bytes("20250002"),
        "Ann Lee_34567_assignsubmission_file_clustering.ipynb": notebook_bytes("20250003"),
        "smithjohn_LATE_700002_900002_clustering.ipynb": notebook_bytes("20250004"),
        "20250005.ipynb": notebook_bytes("20250005"),
        "someone/clustering.ipynb": notebook_bytes("20250006"),
    })
    report = collect(source, course)
    assert report.ok
    expected = {
        "12345": {"lms": "moodle", "moodle_full_name": "Jane Doe", "moodle_participant_id": "12345",
                  "moodle_folder": "Jane Doe_12345_assignsubmission_file_"},
        "23456": {"lms": "moodle", "moodle_full_name": "José Álvarez", "moodle_participant_id": "23456",
                  "moodle_folder": "José Álvarez_23456_assignsubmission_file"},
        "34567": {"lms": "moodle", "moodle_full_name": "Ann Lee", "moodle_participant_id": "34567",
                  "moodle_folder": "Ann Lee_34567_assignsubmission_file_"},
        "700002": {"lms": "canvas", "canvas_login": "smithjohn", "canvas_user_id": "700002",
                   "canvas_attachment_id": "900002"},
        "20250005": {"lms": "files"},
        "20250006": {"lms": "files"},
    }
    path = identities_file(course)
    assert json.loads(path.read_text(encoding="utf-8")) == expected
    # Course-level state, never in a student's submitted folder (it would reach the sandbox and the roster).
    assert not [p for p in (course / "submitted").rglob("*") if p.name == path.name]
    loaded = collect_module.load_identities(course, "clustering")
    assert {s: i.to_json() for s, i in loaded.items()} == expected
    assert {row.student: row.identity for row in report.matched} == loaded


def test_identities_merge_with_earlier_collects_and_rerun_to_the_same_bytes(tmp_path, course, messages):
    first = make_zip(tmp_path / "canvas.zip", {"doejane_700001_900001_clustering.ipynb": notebook_bytes()})
    second = make_folder(tmp_path / "late", {"20250009.ipynb": notebook_bytes("20250009")})
    collect(first, course)
    collect(second, course)
    path = identities_file(course)
    data = path.read_bytes()
    assert json.loads(data) == {"700001": {"lms": "canvas", "canvas_login": "doejane", "canvas_user_id": "700001",
                                           "canvas_attachment_id": "900001"},
                                "20250009": {"lms": "files"}}
    text = data.decode("utf-8")
    assert text.index('"20250009"') < text.index('"700001"') and text.endswith("}\n")  # sorted keys
    before = path.stat().st_mtime_ns
    collect(second, course)
    collect(first, course)
    assert path.read_bytes() == data and path.stat().st_mtime_ns == before
    # The same student collected again from elsewhere: the latest source is what is recorded.
    collect(make_zip(tmp_path / "moodle.zip", {"Jane Doe_700001_assignsubmission_file_/x.ipynb": notebook_bytes()}),
            course)
    assert json.loads(path.read_bytes())["700001"]["lms"] == "moodle"
    assert not list(path.parent.glob("*.part"))


@pytest.mark.parametrize("content, complaint", [
    ("{not json", "cannot be read"),
    ('["700001"]', "expected an object"),
    ('{"700001": {"lms": "blackboard"}}', "student 700001"),
    ('{"1": {"lms": "moodle", "moodle_participant_id": "1", "moodle_folder": "../x_1_assignsubmission_file_"}}',
     "not a Moodle folder name"),
    ('{"1": {"lms": "moodle", "moodle_participant_id": "2", "moodle_folder": "x_1_assignsubmission_file"}}',
     "not a Moodle folder name"),
    ('{"1": {"lms": "canvas", "canvas_user_id": "1; rm"}}', "not a Canvas user id"),
    ('{"1": {"lms": "canvas", "canvas_user_id": "1", "canvas_attachment_id": "../2"}}', "not a Canvas file id"),
])
def test_an_unreadable_identities_file_is_refused_before_collecting(tmp_path, course, content, complaint):
    path = identities_file(course)
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    source = make_folder(tmp_path / "in", {"20250001.ipynb": notebook_bytes("20250001")})
    with pytest.raises(CollectError, match=complaint) as error:
        collect(source, course)
    assert str(path) in str(error.value)
    assert not (course / "submitted").exists()


# --------------------------------------------------------------------------
# Names, for nbgrader's gradebook (formgrader lists students by name)
# --------------------------------------------------------------------------
def test_names_come_from_the_moodle_download_else_from_name_in_the_notebook(tmp_path, course):
    source = make_zip(tmp_path / "mixed.zip", {
        "Jane Q Doe_700001_assignsubmission_file_/clustering.ipynb": notebook_bytes("700001", "J. D."),
        "20250002.ipynb": notebook_bytes("20250002", "  Bo\tBlank \x07"),
        "20250003.ipynb": notebook_bytes("20250003", "<script>alert(1)</script>" + "x" * 200),
        "20250004.ipynb": notebook_bytes("20250004", ""),
    })
    collect(source, course)
    (tmp_path / "elsewhere.ipynb").write_bytes(notebook_bytes("20250005", "Not Followed"))
    linked = submitted(course, "20250005")
    linked.parent.mkdir(parents=True)
    linked.symlink_to(tmp_path / "elsewhere.ipynb")
    students = ["700001", "20250002", "20250003", "20250004", "20250005", "20250006"]
    names = collect_module.student_names(course, "clustering", students)
    assert names["700001"] == "Jane Q Doe"  # the LMS's name, not what the student typed
    assert names["20250002"] == "Bo Blank"
    assert names["20250003"].startswith("script alert(1) /script xxx") and len(names["20250003"]) == 80
    assert "20250004" not in names and "20250005" not in names and "20250006" not in names


def test_names_reach_the_gradebook_as_formgrader_shows_them(tmp_path):
    ensure_tools_on_path()  # nbgrader runs alembic to create the database
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    set_student_names(db, {"700001": "Jane Q Doe", "20250002": "Blank"})
    set_student_names(db, {"700001": "Jane Doe"})
    with Gradebook(db) as gradebook:
        people = {s.id: (s.first_name, s.last_name) for s in gradebook.students}
    assert people == {"700001": ("Jane", "Doe"), "20250002": (None, "Blank")}
