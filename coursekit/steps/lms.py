"""The LMS files: feedback pages and totals in the bulk formats Moodle and Canvas import.

``write_lms_files(course_root, assignment)`` takes the totals from the
gradebook exactly as ``grades.csv`` does (:func:`coursekit.steps.report.read_gradesheet`:
autograded and manual points), the feedback pages
(``feedback/<student>/<assignment>/<assignment>.html``, and nothing else from
those folders) and where each submission came from (collect's
:func:`coursekit.steps.collect.load_identities`), and writes to
``reports/<assignment>/lms/`` what there is something to write for:

``moodle_feedback_files.zip`` (students collected from a Moodle download)
    For Moodle's "Upload multiple feedback files in a zip": one folder per
    graded student, named exactly as in the download the submission came from
    (``Full Name_<participant id>_assignsubmission_file_``, or without the last
    ``_`` from Moodle 4.1 on), holding the student's page ``<assignment>.html``.
    Moodle's importer (``mod/assign/feedback/file/importziplib.php``,
    ``is_valid_filename_for_import``) ignores names starting with ``.`` or
    ``~``, splits every part of a path with ``explode('_', part, 5)``, and
    takes the first part with at least four pieces whose second piece is
    numeric and the unique id of a participant of the assignment (in the
    group selected), and whose third and fourth pieces name a plugin
    (``assignsubmission``, ``file``); the full name is not compared, and the
    rest of the path becomes the feedback file's name. Moodle's download
    replaces ``_`` in full names by spaces, so its folder names always split
    this way.

``moodle_grading_worksheet.csv`` (students collected from a Moodle download)
    For Moodle's "Upload grading worksheet", with the columns of Moodle's own
    worksheet download that its importer reads (``importgradeslib.php``,
    ``init`` and ``next``): ``Identifier`` ("Participant <id>"), ``Full name``,
    ``Grade``, ``Maximum Grade``, ``Last modified (grade)`` and ``Feedback
    comments`` (a short summary: the total, the exercises that lost points,
    the answers still to be graded by hand). The importer finds its columns by
    their exact English header text, reads the participant id after
    "Participant ", and parses "Last modified (grade)" with PHP's
    ``strtotime``. ``locallib.php`` (``process_import_grades``) then skips a
    row whose grade equals Moodle's, is blank or negative, is above the
    assignment's maximum grade, or is locked, and (unless "Allow updating
    records that have been modified more recently in Moodle than in the
    spreadsheet" is ticked) a row whose grade Moodle changed more than 60 s
    after "Last modified (grade)"; comments are taken under the same
    condition. "Last modified (grade)" is when the gradebook last changed (the
    date of the data, to the minute), in Moodle's own English format with
    ``UTC`` added, which ``strtotime`` reads in any server time zone
    (``Monday, 30 November 2026, 4:05 PM UTC``). UTF-8, comma separated, CRLF.

``canvas_gradebook_import.csv`` (when a Canvas gradebook export is given)
    A copy of the export in which the assignment's column holds each graded
    student's total, the student found by the Canvas user id collect recorded
    (the export's ``ID`` column); every other byte is as exported (byte-order
    mark, separator, quoting, line ends, the header, the "Points Possible" and
    "Manual Posting"/"Muted" rows, other columns, students we have no total
    for). Canvas's importer (``app/models/gradebook_importer.rb``) wants the
    header ``Student``, ``ID`` [, ``SIS User ID``], ``SIS Login ID`` [, ...],
    ``Section``; matches an assignment column by the id in its title
    "Title (12345)"; skips the row whose first cell contains "Points
    Possible", rows of only "Muted"/"Manual Posting" and blanks, and lines of
    only separators; finds the student by the ``ID`` column first; detects a
    ``;`` separator; accepts a decimal comma; and treats a blank or ``-`` cell
    as no score. The column is the one named with ``canvas_column`` (its exact
    header, or its Canvas assignment id), otherwise the single assignment
    column whose title starts with the assignment's name (case, ``_``, ``-``
    and spaces aside); with none or several, the error lists the candidates.
    Graded students whose row is missing, whose cell says "N/A" (not assigned
    to them) or for whom collect recorded no Canvas user id are left out with
    a warning naming them, and listed in the result.

``canvas_feedback_files.zip`` (students collected from a Canvas download)
    For Canvas's "Re-Upload Submissions" (the assignment's page, after
    "Download Submissions"): one page per graded student, named
    ``<user id>_<attachment id>_<assignment>_feedback.html`` from the download's
    own name (collect's ``canvas_user_id`` and ``canvas_attachment_id``).
    Canvas (``infer_comment_context_from_filename`` in canvas-lms
    ``app/models/abstract_assignment.rb``) reads only a member's base name,
    splits it on ``_``, drops ``LATE``, takes the first all-digit piece as the
    user id and the second as the id of a file that user handed in to this
    assignment, and attaches the member to that submission as a comment; a
    member whose file id is not one of the submission's files, whose last
    piece starts with ``link`` or whose name starts with ``._`` is ignored.
    Two members with one base name make Canvas refuse the whole zip, so every
    name is unique (one page per student). A Canvas student collected before
    file ids were recorded is left out, with a warning to collect again.

``feedback_pages.zip`` (students from plain files, the nbgrader exchange, or unknown)
    One page per graded student, named ``<student id>.html``.

Every zip holds feedback pages only, members sorted by name, each with a fixed
date (1980-01-01), so the same pages give the same bytes; every file is
written atomically (:mod:`coursekit.common.files`). Files of a kind this run has
nothing for are removed, so the folder never offers stale totals.
"""

from __future__ import annotations

import csv
import html
import io
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from coursekit.common.errors import CourseError
from coursekit.common.files import (
    UnsafeFile,
    read_regular_file,
    replace_atomically,
    write_atomically,
)
from coursekit.common.results import GRADED, load_results, status_path
from coursekit.steps.collect import LMS_CANVAS, LMS_FILES, LMS_MOODLE, load_identities
from coursekit.steps.feedback import feedback_path, leaked_lines, secret_lines
from coursekit.steps.report import (
    GRADEBOOK_DATE_FORMAT,
    format_number,
    read_gradesheet,
    spreadsheet_safe,
)

log = logging.getLogger(__name__)

LMS_FOLDER = "lms"
MOODLE_ZIP = "moodle_feedback_files.zip"
MOODLE_WORKSHEET = "moodle_grading_worksheet.csv"
CANVAS_CSV = "canvas_gradebook_import.csv"
CANVAS_ZIP = "canvas_feedback_files.zip"
PLAIN_ZIP = "feedback_pages.zip"
OUTPUTS = (MOODLE_ZIP, MOODLE_WORKSHEET, CANVAS_CSV, CANVAS_ZIP, PLAIN_ZIP)

#: Every zip member's date: the earliest a zip can hold, so the bytes depend on the pages only.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
#: Largest feedback page read (a perfect notebook's page is about 2.5 MB).
MAX_PAGE_BYTES = 64 << 20
#: Cells that lost points named in a Moodle comment; the rest are counted (the page lists them all).
COMMENT_MAX_CELLS = 5

# Moodle's English strings, as its importer compares them (mod/assign/lang/en/assign.php,
# lang/en/moodle.php, assignfeedback_comments).
MOODLE_IDENTIFIER = "Identifier"  # get_string('recordid', 'assign')
MOODLE_PARTICIPANT = "Participant "  # get_string('hiddenuser', 'assign'); the importer strips its length
MOODLE_FULL_NAME = "Full name"
MOODLE_GRADE = "Grade"
MOODLE_MAX_GRADE = "Maximum Grade"
MOODLE_MODIFIED = "Last modified (grade)"
MOODLE_COMMENTS = "Feedback comments"
WORKSHEET_HEADER = (MOODLE_IDENTIFIER, MOODLE_FULL_NAME, MOODLE_GRADE, MOODLE_MAX_GRADE, MOODLE_MODIFIED,
                    MOODLE_COMMENTS)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")

# Canvas (gradebook_importer.rb): assignment columns are "Title (id)"; these are not assignments.
_CANVAS_ASSIGNMENT = re.compile(r"(?P<title>.*)\s\((?P<id>[0-9]+)\)")
_CANVAS_NOT_ASSIGNMENT = re.compile(
    "Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|Override Score|"
    "Override Grade|Override Status")
_CANVAS_HIDDEN_CELL = re.compile(r"\s*(Muted|Manual Posting.*)?\s*", re.IGNORECASE)
_CANVAS_NOT_ASSIGNED = "N/A"


class LmsError(CourseError):
    """An LMS file cannot be written from these inputs; the message names the file and what is wrong."""


@dataclass
class CanvasResult:
    """What went into the Canvas file.

    Attributes
    ----------
    column : str
        The header of the column that holds the totals.
    written : dict
        {student id: total as written}.
    not_in_export : list of str
        Graded students with a Canvas user id that has no row in the export.
    not_assigned : list of str
        Graded students whose cell says "N/A" (the assignment is not assigned to them in Canvas).
    without_canvas_id : list of str
        Graded students collect found no Canvas user id for (not collected from a Canvas download).
    """

    column: str
    written: dict = field(default_factory=dict)
    not_in_export: list = field(default_factory=list)
    not_assigned: list = field(default_factory=list)
    without_canvas_id: list = field(default_factory=list)

    @property
    def left_out(self):
        """Every graded student whose total is not in the file."""
        return sorted(self.not_in_export + self.not_assigned + self.without_canvas_id)


@dataclass
class LmsFiles:
    """What :func:`write_lms_files` wrote.

    Attributes
    ----------
    paths : dict
        {file name: path} of the files written, e.g. ``{"feedback_pages.zip": ...}``.
    missing_pages : list of str
        Graded students without a feedback page (left out of the zips, with a warning).
    canvas : CanvasResult or None
        The Canvas file's details, when an export was given.
    """

    paths: dict = field(default_factory=dict)
    missing_pages: list = field(default_factory=list)
    canvas: CanvasResult | None = None


# --- Feedback pages and zips ------------------------------------------------------------------


def read_pages(course_root, assignment, students, secrets=()):
    """The feedback page of each student, and the students without one.

    Only ``feedback/<student>/<assignment>/<assignment>.html`` is read, as a
    regular file (never through a link): whatever else is in the folder stays.
    A page is scanned again for the master's hidden-test lines ``secrets``
    (as the feedback step does): one that shows any is left out, with a warning.

    Returns
    -------
    (dict, list)
        ({student: page bytes}, [student, ...] without a readable page).
    """
    pages, missing = {}, []
    for student in students:
        path = feedback_path(course_root, assignment, student)
        if not os.path.lexists(path):
            missing.append(student)
            continue
        try:
            data = read_regular_file(path, MAX_PAGE_BYTES)
        except UnsafeFile as error:
            log.warning(f"{error}; not put in any LMS file")
            missing.append(student)
            continue
        leaks = leaked_lines(data.decode("utf-8", "replace"), secrets) if secrets else []
        if leaks:
            log.warning(f"{path}: shows a hidden test ({leaks[0]!r}); not put in any LMS file")
            missing.append(student)
            continue
        pages[student] = data
    return pages, missing


def write_zip(path, members):
    """Write ``{member name: bytes}`` as a zip, atomically; the same members give the same bytes."""
    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(members):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, members[name])

    replace_atomically(path, write)


def moodle_zip_members(pages, identities, assignment):
    """``{"<Moodle folder>/<assignment>.html": page}`` for the Moodle students among ``pages``."""
    return {f"{identities[student].moodle_folder}/{assignment}.html": page
            for student, page in pages.items() if _lms(identities, student) == LMS_MOODLE}


def canvas_zip_members(pages, identities, assignment):
    """(members, left out): ``{"<user id>_<attachment id>_<assignment>_feedback.html": page}`` for the Canvas students.

    The students left out are Canvas students without a recorded attachment id
    (collected before it was recorded): Canvas could not match their page.
    """
    members, left_out = {}, []
    for student, page in pages.items():
        if _lms(identities, student) != LMS_CANVAS:
            continue
        identity = identities[student]
        if not identity.canvas_attachment_id:
            left_out.append(student)
            continue
        members[f"{identity.canvas_user_id}_{identity.canvas_attachment_id}_{assignment}_feedback.html"] = page
    return members, sorted(left_out)


def plain_zip_members(pages, identities):
    """``{"<student>.html": page}`` for the students among ``pages`` from plain files, the exchange or unknown."""
    return {f"{student}.html": page for student, page in pages.items() if _lms(identities, student) == LMS_FILES}


def _lms(identities, student):
    """Where the student's submission came from; "files" when collect has no record (nbgrader's exchange)."""
    identity = identities.get(student)
    return identity.lms if identity is not None else LMS_FILES


# --- Moodle's grading worksheet ---------------------------------------------------------------


def moodle_date(moment):
    """``moment`` in Moodle's English date format, in UTC and saying so, e.g. ``Monday, 30 November 2026, 4:05 PM UTC``.

    Moodle writes ``userdate()`` (``strftimedaydatetime``) without a zone and
    reads it back with PHP's ``strtotime`` in the server's zone; with ``UTC``
    added it is read as meant whatever the server's zone.
    """
    t = moment.astimezone(timezone.utc)
    hour = t.hour % 12 or 12
    noon = "AM" if t.hour < 12 else "PM"
    return f"{_DAYS[t.weekday()]}, {t.day} {_MONTHS[t.month - 1]} {t.year}, {hour}:{t.minute:02d} {noon} UTC"


def data_time(sheet):
    """When the gradebook behind ``sheet`` last changed (to the minute), as an aware datetime."""
    return datetime.strptime(sheet.data_date, GRADEBOOK_DATE_FORMAT).replace(tzinfo=timezone.utc)


def feedback_comment(row, sheet):
    """A short plain summary for Moodle's "Feedback comments" (HTML-escaped: Moodle stores comments as HTML)."""
    if row.status != GRADED:
        return html.escape(f"Not graded: {row.reason}", quote=False)
    text = f"Total {format_number(row.total)} of {format_number(sheet.max_score)}."
    lost = [f"{q.grade_id} ({format_number(row.scores[q.grade_id])} of {format_number(q.points)})"
            for q in sheet.questions if q.grade_id not in row.pending and row.scores[q.grade_id] < q.points]
    if lost:
        more = len(lost) - COMMENT_MAX_CELLS
        text += " Points lost in: " + ", ".join(lost[:COMMENT_MAX_CELLS])
        text += f" and {more} more cells." if more > 0 else "."
    if row.pending:
        text += " Still to be graded by hand: " + ", ".join(row.pending) + "."
    return html.escape(text, quote=False)


def moodle_worksheet_text(sheet, identities):
    """The grading worksheet of the Moodle students in ``sheet`` (see the module docstring)."""
    modified = moodle_date(data_time(sheet))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)  # excel dialect: commas, minimal quoting, CRLF
    writer.writerow(WORKSHEET_HEADER)
    for row in sheet.rows:
        if _lms(identities, row.student) != LMS_MOODLE:
            continue
        identity = identities[row.student]
        writer.writerow([
            MOODLE_PARTICIPANT + identity.moodle_participant_id,
            spreadsheet_safe(identity.moodle_full_name),
            format_number(row.total),
            format_number(sheet.max_score),
            modified,
            feedback_comment(row, sheet),
        ])
    return buffer.getvalue()


# --- A Canvas gradebook export ----------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """One CSV record: its cells, and where each cell's raw text is in the file."""

    line: int
    cells: tuple
    spans: tuple


def _end_of_record(text, i):
    if text.startswith("\r\n", i):
        return i + 2
    return i + 1 if i < len(text) and text[i] in "\r\n" else i


def _quoted_cell(text, i, line, where):
    """(value, end) of the quoted cell whose opening quote is at ``i``."""
    parts = []
    i += 1
    while True:
        close = text.find('"', i)
        if close < 0:
            raise LmsError(f"{where}: line {line}: a quoted cell is never closed")
        parts.append(text[i:close])
        if text.startswith('""', close):
            parts.append('"')
            i = close + 2
            continue
        return "".join(parts), close + 1


def csv_records(text, delimiter, where):
    """Split CSV ``text`` (RFC 4180) into records, keeping the span of every cell's raw text.

    ``where`` names the file in error messages.
    """
    records, i, line = [], 0, 1
    while i < len(text):
        start_line = line
        if text[i] in "\r\n":  # an empty line
            i = _end_of_record(text, i)
            records.append(_Record(start_line, (), ()))
            line += 1
            continue
        cells, spans = [], []
        while True:
            start = i
            if i < len(text) and text[i] == '"':
                value, i = _quoted_cell(text, i, line, where)
                line += value.count("\n") + value.count("\r") - value.count("\r\n")
                if i < len(text) and text[i] not in (delimiter, "\r", "\n"):
                    raise LmsError(f"{where}: line {line}: text after the closing quote of a cell")
            else:
                end = i
                while end < len(text) and text[end] not in (delimiter, "\r", "\n"):
                    end += 1
                value, i = text[i:end], end
            cells.append(value)
            spans.append((start, i))
            if i < len(text) and text[i] == delimiter:
                i += 1
                continue
            break
        i = _end_of_record(text, i)
        records.append(_Record(start_line, tuple(cells), tuple(spans)))
        line += 1
    return records


def _canvas_delimiter(text):
    """``;`` or ``,``, decided as Canvas does: the one giving more cells, the same number on the first 3 lines."""
    lines = text.splitlines()[:3]
    counts = {}
    for separator in (",", ";"):
        try:
            sizes = {len(next(csv.reader([line], delimiter=separator), [])) for line in lines}
        except csv.Error:
            sizes = set()
        counts[separator] = sizes.pop() if len(sizes) == 1 else 0
    return ";" if counts[";"] > counts[","] else ","


def _header_text(cell):
    return cell.lstrip("\ufeff").strip()


def _normalized(title):
    return re.sub(r"[\s_-]+", " ", title).strip().casefold()


@dataclass(frozen=True)
class CanvasExport:
    """A Canvas gradebook export, read with every cell's place in the file."""

    path: Path
    text: str
    delimiter: str
    records: tuple
    header: tuple
    id_index: int
    assignment_columns: dict  # column index -> header

    def find_column(self, assignment, column=None):
        """The index of the column for ``assignment`` (see the module docstring); LmsError if not one."""
        columns = self.assignment_columns
        listing = ", ".join(repr(h) for h in columns.values()) or "none"
        if column is not None:
            chosen = [i for i, h in columns.items()
                      if h == column.strip() or _CANVAS_ASSIGNMENT.fullmatch(h)["id"] == column.strip()]
            if len(chosen) != 1:
                raise LmsError(f"{self.path}: no assignment column is {column!r} (a header or a Canvas "
                               f"assignment id); its assignment columns are {listing}")
            return chosen[0]
        prefix = re.compile(re.escape(_normalized(assignment)) + r"(?![^\W_])")
        chosen = [i for i, h in columns.items() if prefix.match(_normalized(_CANVAS_ASSIGNMENT.fullmatch(h)["title"]))]
        if len(chosen) == 1:
            return chosen[0]
        if chosen:
            raise LmsError(f"{self.path}: several assignment columns start with {assignment!r}: "
                           + ", ".join(repr(columns[i]) for i in chosen) + "; name one with --canvas-column")
        raise LmsError(f"{self.path}: no assignment column starts with {assignment!r}; its assignment columns "
                       f"are {listing}; name one with --canvas-column")

    def rows(self):
        """(kind, record) of every record after the header: "points", "skip" or "student"."""
        for record in self.records[1:]:
            cells = record.cells
            if not cells or all(not c.strip(" ,;") for c in cells):
                yield "skip", record
            elif "Points Possible" in cells[0]:
                yield "points", record
            elif all(_CANVAS_HIDDEN_CELL.fullmatch(c) for c in cells):
                yield "skip", record
            else:
                yield "student", record


def read_canvas_export(path):
    """Read a Canvas gradebook export (see the module docstring); LmsError naming the file if it is not one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise LmsError(f"{path}: cannot read the Canvas gradebook export ({error.strerror})") from None
    if b"\0" in raw:
        raise LmsError(f"{path}: not a CSV text file in UTF-8 (export the gradebook from Canvas again as CSV)")
    # surrogateescape: bytes that are not UTF-8 (a name in a legacy encoding) come back out unchanged.
    text = raw.decode("utf-8", "surrogateescape")
    delimiter = _canvas_delimiter(text)
    records = tuple(csv_records(text, delimiter, path))
    try:
        reference = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as error:
        raise LmsError(f"{path}: not a readable CSV file ({error})") from None
    if [list(r.cells) for r in records] != reference:
        raise LmsError(f"{path}: cannot be read as CSV the same way twice (unusual quoting); export it again")
    if not records:
        raise LmsError(f"{path}: empty; expected a Canvas gradebook export")
    header = tuple(_header_text(c) for c in records[0].cells)
    if len(header) > 3 and "Student" in header[0] and "ID" in header[1]:
        id_index = 1
    elif len(header) > 4 and header[:2] == ("LastName", "FirstName") and "ID" in header[2]:
        id_index = 2
    else:
        raise LmsError(f"{path}: not a Canvas gradebook export: its header starts {list(header[:3])}, "
                       "expected Student, ID, ... (Grades > Export > Export Entire Gradebook)")
    if "Section" not in header:
        raise LmsError(f"{path}: not a Canvas gradebook export: no Section column in its header")
    first = header.index("Section") + 1
    columns = {i: h for i, h in enumerate(header)
               if i >= first and _CANVAS_ASSIGNMENT.fullmatch(h) and not _CANVAS_NOT_ASSIGNMENT.search(h)}
    return CanvasExport(path, text, delimiter, records, header, id_index, columns)


def _csv_cell(value, delimiter):
    if any(c in value for c in (delimiter, '"', "\r", "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


def check_canvas_column(export, index, max_score):
    """Refuse a read-only column; warn when Canvas's "Points Possible" differs from the assignment's points."""
    for kind, record in export.rows():
        if kind != "points":
            continue
        cell = record.cells[index].strip() if index < len(record.cells) else ""
        if re.search(r"read\s+only", cell):
            raise LmsError(f"{export.path}: the column {export.header[index]!r} is read only in Canvas")
        try:
            points = float(cell.replace(",", "."))
        except ValueError:
            continue
        if points != max_score:
            log.warning(f"{export.path}: {export.header[index]!r} is worth {cell} points in Canvas but the "
                        f"assignment has {format_number(max_score)}; the totals are written as they are")


def fill_canvas_export(export, index, totals, students_by_id):
    """The export's text with ``totals`` in column ``index``, and the students it holds.

    Parameters
    ----------
    export : CanvasExport
    index : int
        The column to fill.
    totals : dict
        {Canvas user id: total as text}.
    students_by_id : dict
        {Canvas user id: student id}, to report in our terms.

    Returns
    -------
    (str, dict, list)
        The new text, {student: total written}, [students whose cell is "N/A"].
    """
    replacements, written, not_assigned = [], {}, []
    for kind, record in export.rows():
        if kind != "student":
            continue
        user_id = record.cells[export.id_index].strip() if export.id_index < len(record.cells) else ""
        if user_id not in totals:
            continue
        if index >= len(record.cells):
            raise LmsError(f"{export.path}: line {record.line} has {len(record.cells)} cells, fewer than the "
                           f"header's {len(export.header)}")
        student = students_by_id[user_id]
        if record.cells[index].strip().upper() == _CANVAS_NOT_ASSIGNED:
            not_assigned.append(student)
            continue
        replacements.append((record.spans[index], _csv_cell(totals[user_id], export.delimiter)))
        written[student] = totals[user_id]
    pieces, at = [], 0
    for (start, end), value in sorted(replacements):
        pieces += [export.text[at:start], value]
        at = end
    pieces.append(export.text[at:])
    return "".join(pieces), written, not_assigned


def check_canvas_export(export_path, assignment, column=None):
    """Read the export and choose its column now (before a long grading run); LmsError if either fails.

    Returns
    -------
    str
        The header of the column the totals will go to.
    """
    export = read_canvas_export(export_path)
    return export.header[export.find_column(assignment, column)]


def canvas_file(export_path, assignment, sheet, identities, column=None):
    """The text of the Canvas file for ``sheet``'s graded students, and what went into it.

    Returns
    -------
    (str, CanvasResult)
    """
    export = read_canvas_export(export_path)
    index = export.find_column(assignment, column)
    check_canvas_column(export, index, sheet.max_score)
    result = CanvasResult(column=export.header[index])
    totals, students_by_id = {}, {}
    for row in sheet.graded:
        if _lms(identities, row.student) != LMS_CANVAS:
            result.without_canvas_id.append(row.student)
            continue
        user_id = identities[row.student].canvas_user_id
        totals[user_id] = format_number(row.total)
        students_by_id[user_id] = row.student
    text, result.written, result.not_assigned = fill_canvas_export(export, index, totals, students_by_id)
    result.not_in_export = sorted(set(students_by_id.values()) - set(result.written) - set(result.not_assigned))
    return text, result


def _warn_left_out(export_path, result):
    """One warning per reason a graded student's total is not in the Canvas file."""
    reasons = [
        (result.not_in_export, "have no row in the export (not enrolled, or an export of another course?)"),
        (result.not_assigned, "have 'N/A' in the column: the assignment is not assigned to them in Canvas"),
        (result.without_canvas_id, "were not collected from a Canvas download, so their Canvas user id is unknown"),
    ]
    for students, why in reasons:
        if students:
            log.warning(f"{export_path}: {len(students)} graded student(s) left out of {CANVAS_CSV}: they {why}; "
                        f"enter their totals in Canvas by hand: {', '.join(sorted(students))}")


# --- The step -----------------------------------------------------------------------------------


def write_lms_files(course_root, assignment="clustering", results=None, out_dir=None, canvas_export=None,
                    canvas_column=None, sheet=None):
    """Write the LMS files of one assignment (see the module docstring).

    Parameters
    ----------
    course_root : path-like
        The course folder (gradebook, master, ``feedback/``, ``reports/``).
    assignment : str
        The assignment (and notebook) name.
    results : list of coursekit.common.results.GradeResult, optional
        The students; default: the grade step's ``grading_status.json``.
    out_dir : path-like, optional
        Where to write; default ``course_root/reports/<assignment>/lms/``.
    canvas_export : path-like, optional
        A Canvas gradebook export to fill in; without it no Canvas file is written.
    canvas_column : str, optional
        The export's column for this assignment (its header or Canvas assignment id).
    sheet : coursekit.steps.report.Gradesheet, optional
        The totals, already read; default: read from the gradebook like ``grades.csv``.

    Returns
    -------
    LmsFiles

    Raises
    ------
    LmsError
        When the Canvas export cannot be used; nothing is written then.
    coursekit.steps.report.ReportError, coursekit.steps.collect.CollectError
        When the gradebook or collect's record cannot be read.
    """
    course_root = Path(course_root)
    if sheet is None:
        if results is None:
            results = load_results(status_path(course_root, assignment))
        sheet = read_gradesheet(course_root, assignment, results)
    identities = load_identities(course_root, assignment)
    out_dir = Path(out_dir) if out_dir is not None else course_root / "reports" / assignment / LMS_FOLDER
    kinds = {row.student: _lms(identities, row.student) for row in sheet.rows}

    # Everything is made in memory first: a problem with the Canvas export leaves the folder as it was.
    master = nbformat.read(course_root / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    pages, missing = read_pages(course_root, assignment, [row.student for row in sheet.graded], secret_lines(master))
    contents, summaries = {}, {}
    if LMS_MOODLE in kinds.values():
        members = moodle_zip_members(pages, identities, assignment)
        if members:
            contents[MOODLE_ZIP] = members
            summaries[MOODLE_ZIP] = f"{len(members)} feedback page(s) in Moodle's folders"
        contents[MOODLE_WORKSHEET] = moodle_worksheet_text(sheet, identities)
        summaries[MOODLE_WORKSHEET] = (f"{sum(k == LMS_MOODLE for k in kinds.values())} Moodle participant(s), "
                                       "by Moodle's participant id: for Moodle's 'Upload grading worksheet'")
    if LMS_CANVAS in kinds.values():
        members, no_file_id = canvas_zip_members(pages, identities, assignment)
        if members:
            contents[CANVAS_ZIP] = members
            summaries[CANVAS_ZIP] = (f"{len(members)} feedback page(s) named by Canvas user and file id: "
                                     "for Canvas's 'Re-Upload Submissions'")
        if no_file_id:
            log.warning(f"{len(no_file_id)} Canvas student(s) left out of {CANVAS_ZIP}: collect recorded no id of the "
                        "file they handed in (collected by an earlier version); run collect on the Canvas download "
                        f"again: {', '.join(no_file_id)}")
    plain = plain_zip_members(pages, identities)
    if plain:
        contents[PLAIN_ZIP] = plain
        summaries[PLAIN_ZIP] = f"{len(plain)} feedback page(s) named <student>.html"
    canvas = None
    if canvas_export is not None:
        if Path(canvas_export).resolve() == (out_dir / CANVAS_CSV).resolve():
            raise LmsError(f"{canvas_export}: is the file this step writes; give the export downloaded from Canvas")
        text, canvas = canvas_file(canvas_export, assignment, sheet, identities, canvas_column)
        contents[CANVAS_CSV] = text.encode("utf-8", "surrogateescape")  # the export's own bytes back
        summaries[CANVAS_CSV] = (f"{len(canvas.written)} total(s) in column {canvas.column!r}, by Canvas user id: "
                                 "for Canvas's gradebook Import")

    out_dir.mkdir(parents=True, exist_ok=True)
    written = LmsFiles(missing_pages=missing, canvas=canvas)
    for name, content in contents.items():
        path = out_dir / name
        if isinstance(content, dict):
            write_zip(path, content)
        else:
            write_atomically(path, content)
        written.paths[name] = path
        log.info(f"wrote {path} ({summaries[name]})")
    for name in OUTPUTS:
        stale = out_dir / name
        if name not in contents and stale.is_file():
            stale.unlink()
            why = ("no Canvas export given: pass CANVAS_EXPORT=<the export> (--canvas-export) to write it again"
                   if name == CANVAS_CSV else "this run has nothing for it")
            log.info(f"removed {stale}: {why}")
    waiting = [row.student for row in sheet.graded if row.pending]
    if waiting and (MOODLE_WORKSHEET in contents or CANVAS_CSV in contents):
        log.warning(f"{len(waiting)} student(s) still have answers to be graded by hand (formgrader): the totals "
                    f"in the LMS files are provisional until then: {', '.join(waiting[:10])}"
                    + (f" and {len(waiting) - 10} more" if len(waiting) > 10 else ""))
    if missing:
        log.warning(f"{len(missing)} graded student(s) have no feedback page and are left out of the zips "
                    f"(run the feedback step): {', '.join(missing)}")
    if canvas is not None:
        _warn_left_out(canvas_export, canvas)
    return written
