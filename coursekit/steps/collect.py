"""The collect step: students' notebooks -> ``submitted/<student>/<assignment>/``.

``collect(source, course_root)`` reads a folder of notebooks or an LMS zip
download and puts each student's notebook where nbgrader's autograde looks
for it, ``submitted/<student>/clustering/clustering.ipynb``, with a
``timestamp.txt`` beside it so that nbgrader's late penalties see when it was
handed in. The student id comes from, in this order:

1. a Moodle folder or name ``Full Name_<participant id>_assignsubmission_file_``,
   or a folder ``Full Name_<participant id>_assignsubmission_file`` as Moodle 4.1
   and later name it (``found_by="Moodle"``);
2. a Canvas name ``login[_LATE]_<user id>_<attachment id>_<file name>`` (the attachment id is the
   id of the file the student handed in)
   (``found_by="Canvas"``; ``_LATE_`` only sets the late flag);
3. a plain name ``<id>.ipynb``, ``<id>_clustering.ipynb`` or
   ``clustering_<id>.ipynb`` (``found_by="file name"``);
4. otherwise (``clustering.ipynb``, ``Untitled.ipynb``, ...) the string
   assigned to ``STUDENT_ID`` in the notebook (``found_by="notebook STUDENT_ID"``).

Colab and Jupyter renames (``Copy of clustering.ipynb``, ``clustering (1).ipynb``,
``clustering-Copy1.ipynb``) are recognised in every pattern. Two files for one
student: the newest is kept, with a warning. A file that no rule identifies is
listed as not collected, with the reason; nothing a student hands in is
dropped silently. Only junk (``__MACOSX/``, ``.ipynb_checkpoints/``, hidden
files) and files that are not notebooks are skipped.

Zip members are read one by one, never extracted: absolute paths and ``..``
are refused (zip-slip) and a member larger than :data:`MAX_NOTEBOOK_BYTES`
is not read.

Where each submission came from
-------------------------------
Collect also records, per student, the LMS the submission came from, so that
later steps can address the student in the LMS's own terms
(:class:`LmsIdentity`): for Moodle the full name and the exact folder name of
the download, for Canvas the login, user id and the id of the file handed in, otherwise ``"files"``. The
record is ``reports/<assignment>/lms_identities.json`` (:func:`identities_path`),
kept out of ``submitted/`` (whose files reach the grading sandbox and
nbgrader's roster), merged with what earlier collects recorded and written
atomically with sorted keys; :func:`load_identities` reads it.

Plain ``nbgrader zip_collect``
------------------------------
nbgrader's ``FileNameCollectorPlugin`` applies ``named_regexp`` with
``re.match`` to the *absolute path* of each extracted file, so a regex anchored
at the file name (``^login_(?P<student_id>...``) matches nothing, and
``zip_collect`` silently collects nothing. :data:`NBGRADER_ZIP_COLLECT_REGEXP`
is a working one for Canvas downloads; in ``nbgrader_config.py``::

    from coursekit.steps.collect import NBGRADER_ZIP_COLLECT_REGEXP
    c.FileNameCollectorPlugin.named_regexp = NBGRADER_ZIP_COLLECT_REGEXP
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple

from coursekit.common.errors import CourseError
from coursekit.common.files import UnsafeFile, read_regular_file, text_table, write_atomically

log = logging.getLogger(__name__)

#: A Canvas download for ``nbgrader zip_collect``: ``.*`` first because the plugin
#: matches the absolute path; ``file_id`` without the Colab or Canvas
#: re-upload marks, so that it names the released notebook (``clustering``).
NBGRADER_ZIP_COLLECT_REGEXP = (
    r".*[\\/]"  # every folder of the absolute path, up to the file name
    r"[^\\/_]+(?:_LATE)?_"  # Canvas login name, and the late flag
    r"(?P<student_id>[0-9]+)_[0-9]+_"  # Canvas user id, then the id of the file handed in
    r"(?:Copy of )*"  # Colab's "Save a copy"
    r"(?P<file_id>[^\\/]+?)"
    r"(?: \([0-9]+\)|-[0-9]+)?"  # a browser's "(1)" or Canvas's "-1" on a re-upload
    r"\.ipynb$"
)

#: Largest notebook read (bytes); anything bigger is listed as not collected.
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024

#: What ``timestamp.txt`` holds: nbgrader's exchange format, read back by
#: ``nbgrader.utils.parse_utc`` during autograde.
NBGRADER_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"

FOUND_BY_FILE_NAME = "file name"
FOUND_BY_CANVAS = "Canvas"
FOUND_BY_MOODLE = "Moodle"
FOUND_BY_NOTEBOOK = "notebook STUDENT_ID"

#: Where a submission came from (``LmsIdentity.lms``).
LMS_MOODLE = "moodle"
LMS_CANVAS = "canvas"
LMS_FILES = "files"
LMS_KINDS = (LMS_MOODLE, LMS_CANVAS, LMS_FILES)
IDENTITIES_FILE = "lms_identities.json"

NO_ID_REASON = "no student id in the file name and STUDENT_ID is empty in the notebook"

_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CANVAS = re.compile(r"(?P<login>[^_]+?)(?P<late>_LATE)?_(?P<user>[0-9]+)_(?P<attachment>[0-9]+)_(?P<file>.+)")
_MOODLE = re.compile(r"(?P<name>.+)_(?P<participant>[0-9]+)_assignsubmission_file_(?P<file>.*)")
# Moodle 4.1 and later: the folder has no trailing "_" (mod/assign/classes/downloader.php).
_MOODLE_FOLDER = re.compile(r"(?P<name>.+)_(?P<participant>[0-9]+)_assignsubmission_file")
_COPY_PREFIX = re.compile(r"^(?:Copy of )+", re.IGNORECASE)
_COPY_SUFFIX = re.compile(r"(?: \([0-9]+\)|-Copy[0-9]*)+$")
_UNTITLED = re.compile(r"untitled[0-9]*", re.IGNORECASE)
# STUDENT_ID = "..." (or '...', r"...", or digits without quotes), optionally annotated.
_STUDENT_ID_LINE = re.compile(
    r"""^[ \t]*STUDENT_ID[ \t]*(?::[^=\n]*)?=[ \t]*"""
    r"""(?P<value>[rRuU]?"[^"\n]*"|[rRuU]?'[^'\n]*'|[0-9]+)[ \t]*(?:\#.*)?$""",
    re.MULTILINE,
)
_NAME_LINE = re.compile(
    r"""^[ \t]*NAME[ \t]*(?::[^=\n]*)?=[ \t]*(?P<value>[rRuU]?"[^"\n]*"|[rRuU]?'[^'\n]*')[ \t]*(?:\#.*)?$""",
    re.MULTILINE,
)
#: Longest display name kept for a student; characters that are not printable, and <>&, are dropped.
MAX_NAME_CHARS = 80
_JUNK_FOLDERS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__"}


class CollectError(CourseError):
    """The source cannot be read at all (missing, not a folder or zip, corrupt zip), or the record of
    earlier collects (``lms_identities.json``) is unreadable."""


class Unmatched(NamedTuple):
    """A notebook in the source that was not collected."""

    path: str
    reason: str


class Duplicate(NamedTuple):
    """Several notebooks for one student: the one kept and the ones dropped."""

    student: str
    kept: str
    dropped: tuple


class NameMatch(NamedTuple):
    """A student id read from a path, and which naming rule gave it."""

    student: str
    found_by: str
    late: bool = False


@dataclass(frozen=True)
class MatchedFile:
    """One collected notebook.

    Attributes
    ----------
    student : str
        The nbgrader student id.
    source_path : str
        The path inside the source (folder-relative or zip member), with ``/``.
    destination : pathlib.Path
        ``<course_root>/submitted/<student>/<assignment>/<notebook>``.
    found_by : str
        ``"file name"``, ``"Canvas"``, ``"Moodle"`` or ``"notebook STUDENT_ID"``.
    late : bool
        Canvas marked the submission ``_LATE_``.
    timestamp : datetime.datetime
        When it was handed in (UTC): the zip entry's time or the file's mtime.
    action : str
        ``"new"``, ``"updated"`` or ``"unchanged"`` (compared with an earlier collect).
    identity : LmsIdentity or None
        Where the submission came from, in the LMS's own terms.
    """

    student: str
    source_path: str
    destination: Path
    found_by: str
    late: bool
    timestamp: datetime
    action: str = "new"
    identity: LmsIdentity | None = None


@dataclass
class CollectReport:
    """What :func:`collect` did.

    Attributes
    ----------
    matched : list of MatchedFile
        The notebooks written (or found unchanged), one per student.
    unmatched : list of Unmatched
        ``(path, reason)`` of each notebook that was not collected.
    duplicates : list of Duplicate
        ``(student, kept path, dropped paths)`` where a student had several files.
    skipped : list of str
        Junk and non-notebook files that were ignored.
    warnings : list of str
        Everything logged as a warning.
    source, course_root : str
        Where the files came from and went to (for the table).
    """

    matched: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    source: str = ""
    course_root: str = ""

    @property
    def ok(self):
        """True when every notebook in the source was collected."""
        return not self.unmatched

    def table(self):
        """The report as plain text with aligned columns, for a terminal or a log."""
        root = Path(self.course_root)
        lines = [f"collected {len(self.matched)} submission(s) from {self.source} into {root / 'submitted'}"]
        if self.matched:
            rows = [
                (
                    m.student,
                    m.found_by,
                    "LATE" if m.late else "",
                    m.timestamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                    m.action,
                    m.source_path,
                    _relative_to(m.destination, root),
                )
                for m in sorted(self.matched, key=lambda m: m.student)
            ]
            header = ("student", "found by", "late", "submitted (UTC)", "action", "file in the source", "destination")
            lines += ["", *text_table([header, *rows])]
        if self.duplicates:
            rows = [(d.student, d.kept, ", ".join(d.dropped)) for d in sorted(self.duplicates)]
            lines += ["", f"duplicates ({len(self.duplicates)}), the newest file kept:"]
            lines += text_table([("student", "kept", "dropped"), *rows])
        if self.unmatched:
            lines += ["", f"NOT collected ({len(self.unmatched)}):"]
            lines += text_table([("file in the source", "reason"), *sorted(self.unmatched)])
        if self.skipped:
            lines += ["", f"skipped {len(self.skipped)} file(s) or folder(s) that are not submissions "
                          f"(not .ipynb, __MACOSX/, .ipynb_checkpoints/, hidden), e.g. {self.skipped[0]}"]
        return "\n".join(lines)


def _relative_to(path, root):
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------
# Student ids from names and from notebooks
# --------------------------------------------------------------------------
def is_valid_student_id(value):
    """True for a usable nbgrader student id: letters, digits, ``.``, ``_``, ``-``; 1-64 long."""
    return bool(_STUDENT_ID.fullmatch(value))


def strip_copy_marks(stem):
    """Remove what Colab, browsers and Jupyter add to a copied file's name.

    ``"Copy of clustering (1)"`` and ``"clustering-Copy1"`` become ``"clustering"``.
    """
    return _COPY_SUFFIX.sub("", _COPY_PREFIX.sub("", stem.strip())).strip()


def _is_notebook_name(name):
    return name.lower().endswith(".ipynb")


def _moodle_folder(parts):
    """(match, folder) of the Moodle folder (or flat file name) anywhere in the path, or None.

    ``folder`` is the folder's name as downloaded, or for a flat file name its
    prefix ``Full Name_<participant id>_assignsubmission_file_``.
    """
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        match = _MOODLE.fullmatch(part)
        # A folder ends in "_file_"; without folders Moodle prefixes the file name.
        if match and (match["file"] == "" or last):
            return match, part[: len(part) - len(match["file"])]
        match = _MOODLE_FOLDER.fullmatch(part)
        if match and not last:
            return match, part
    return None


def _moodle_match(parts):
    """The participant id of a Moodle folder (or flat file name) anywhere in the path."""
    found = _moodle_folder(parts)
    return NameMatch(found[0]["participant"], FOUND_BY_MOODLE) if found else None


def _canvas_match(file_name):
    match = _CANVAS.fullmatch(file_name)
    if match:
        return NameMatch(match["user"], FOUND_BY_CANVAS, late=bool(match["late"]))
    return None


def _plain_match(file_name, notebook_stem):
    """``<id>.ipynb``, ``<id>_clustering.ipynb`` or ``clustering_<id>.ipynb``; None for generic names."""
    stem = strip_copy_marks(file_name[: -len(".ipynb")])
    lower, target = stem.lower(), notebook_stem.lower()
    if lower == target:
        return None
    candidate = stem
    # The id alphabet includes "_" and "-", so the notebook's own name must be cut off first.
    for sep in ("_", "-"):
        if lower.endswith(sep + target):
            candidate = stem[: -len(sep + target)]
            break
        if lower.startswith(target + sep):
            candidate = stem[len(target + sep) :]
            break
    if _UNTITLED.fullmatch(candidate) or not is_valid_student_id(candidate):
        return None
    return NameMatch(candidate, FOUND_BY_FILE_NAME)


def student_from_name(path, notebook="clustering.ipynb"):
    """The student id that a submission's path carries, if any.

    Parameters
    ----------
    path : str
        Path inside the source, with ``/`` between folders.
    notebook : str, default="clustering.ipynb"
        The assignment's notebook name; it is not an id, with or without copy marks.

    Returns
    -------
    NameMatch or None
        ``(student, found_by, late)``, or None when the id must come from the notebook.
    """
    parts = PurePosixPath(path).parts
    return (
        _moodle_match(parts)
        or _canvas_match(parts[-1])
        or _plain_match(parts[-1], PurePosixPath(notebook).stem)
    )


def student_id_in_notebook(data):
    """The value assigned to ``STUDENT_ID`` in a notebook's code cells.

    See :func:`assigned_in_notebook`.
    """
    return assigned_in_notebook(data, _STUDENT_ID_LINE)


def name_in_notebook(data):
    """The string assigned to ``NAME`` in a notebook's code cells (see :func:`assigned_in_notebook`)."""
    return assigned_in_notebook(data, _NAME_LINE)


def assigned_in_notebook(data, line):
    """The value a code cell of the notebook assigns with a line matching ``line``.

    Parameters
    ----------
    data : bytes
        The notebook file.
    line : re.Pattern
        An assignment line with the value in group ``value`` (a quoted
        string, or digits for ``STUDENT_ID``).

    Returns
    -------
    str or None
        The stripped value of the last assignment ("" when empty), or None when
        no code cell assigns it.

    Raises
    ------
    ValueError
        When ``data`` is not a readable notebook (the message says why).
    """
    try:
        nb = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a readable notebook: invalid JSON ({exc})") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a readable notebook: no list of cells (not a Jupyter notebook in format 4)")
    value = None
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        elif not isinstance(source, str):
            continue  # not text: nothing is assigned there
        for match in line.finditer(source):
            value = _unquote(match["value"]).strip()
    return value


def display_name(text):
    """``text`` fit to show as a name: printable characters but ``<>&``, spaces collapsed, at most MAX_NAME_CHARS."""
    kept = "".join(ch if ch.isprintable() and ch not in "<>&" else " " for ch in str(text))
    return " ".join(kept.split())[:MAX_NAME_CHARS].strip()


def student_names(course_root, assignment, students, notebook="clustering.ipynb"):
    """The name of each student, for nbgrader's gradebook (formgrader lists students by name).

    The full name in the Moodle download the submission came from, else the
    ``NAME`` the student wrote in the submitted notebook (read as a regular
    file of at most MAX_NOTEBOOK_BYTES, never through a link). Students with
    neither are left out.

    Returns
    -------
    dict
        {student id: name}.
    """
    identities = load_identities(course_root, assignment)
    names = {}
    for student in students:
        identity = identities.get(student)
        name = identity.moodle_full_name if identity is not None else ""
        if not name:
            path = Path(course_root) / "submitted" / student / assignment / notebook
            try:
                name = name_in_notebook(read_regular_file(path, MAX_NOTEBOOK_BYTES)) or ""
            except (UnsafeFile, ValueError):
                name = ""
        name = display_name(name)
        if name:
            names[student] = name
    return names


def _unquote(literal):
    """The text of a quoted literal as matched by ``_STUDENT_ID_LINE``; digits as they are.

    Not ``ast.literal_eval``: it refuses ``0012345`` unquoted, which students write.
    """
    if literal.isdigit():
        return literal
    return literal.lstrip("rRuU")[1:-1]


def _id_from_notebook(data):
    """(student, None) from the notebook's STUDENT_ID, or (None, reason why not)."""
    try:
        value = student_id_in_notebook(data)
    except ValueError as exc:
        return None, f"no student id in the file name and {exc}"
    if value is None:
        return None, "no student id in the file name and no STUDENT_ID assignment in the notebook"
    if not value:
        return None, NO_ID_REASON
    if not is_valid_student_id(value):
        return None, (
            f"no student id in the file name and STUDENT_ID {value!r} in the notebook is not a valid id "
            "(letters, digits, '.', '_', '-')"
        )
    return value, None


# --------------------------------------------------------------------------
# Where each submission came from
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class LmsIdentity:
    """Where a student's submission came from, in the LMS's own terms.

    Attributes
    ----------
    lms : str
        ``"moodle"``, ``"canvas"`` or ``"files"`` (a plain file or folder).
    moodle_full_name, moodle_participant_id : str
        Moodle: the full name and participant id in the download's folder name.
    moodle_folder : str
        Moodle: the folder's exact name in the download
        (``Full Name_<participant id>_assignsubmission_file_``, without the last
        ``_`` from Moodle 4.1 on); for a download without folders, the same
        prefix of the file's name.
    canvas_login, canvas_user_id : str
        Canvas: the login and user id at the start of the file's name.
    canvas_attachment_id : str
        Canvas: the id of the file the student handed in (the number after the
        user id). Canvas's "Re-Upload Submissions" attaches a returned file to
        the submission that holds this file, and to no other.
    """

    lms: str
    moodle_full_name: str = ""
    moodle_participant_id: str = ""
    moodle_folder: str = ""
    canvas_login: str = ""
    canvas_user_id: str = ""
    canvas_attachment_id: str = ""

    def to_json(self):
        """The fields that are set, for ``lms_identities.json``."""
        return {key: value for key, value in asdict(self).items() if value}


_IDENTITY_FIELDS = {f.name for f in fields(LmsIdentity)}


def identity_from_path(path, found_by):
    """The :class:`LmsIdentity` of a submission at ``path`` (in the source) identified by ``found_by``."""
    parts = PurePosixPath(path).parts
    if found_by == FOUND_BY_MOODLE:
        match, folder = _moodle_folder(parts)
        return LmsIdentity(LMS_MOODLE, moodle_full_name=match["name"], moodle_participant_id=match["participant"],
                           moodle_folder=folder)
    if found_by == FOUND_BY_CANVAS:
        match = _CANVAS.fullmatch(parts[-1])
        return LmsIdentity(LMS_CANVAS, canvas_login=match["login"], canvas_user_id=match["user"],
                           canvas_attachment_id=match["attachment"])
    return LmsIdentity(LMS_FILES)


def identities_path(course_root, assignment):
    """``<course_root>/reports/<assignment>/lms_identities.json``."""
    return Path(course_root) / "reports" / assignment / IDENTITIES_FILE


def _identity_problem(student, entry):
    """Why a JSON entry is not a usable identity, or None."""
    if not is_valid_student_id(student):
        return f"{student!r} is not a valid student id"
    if not isinstance(entry, dict) or entry.get("lms") not in LMS_KINDS:
        return f"student {student}: expected an object whose \"lms\" is one of {', '.join(LMS_KINDS)}"
    unknown = sorted(set(entry) - _IDENTITY_FIELDS)
    if unknown or not all(isinstance(value, str) for value in entry.values()):
        return f"student {student}: unknown fields {unknown} or values that are not strings"
    if entry["lms"] == LMS_MOODLE:
        folder = entry.get("moodle_folder", "")
        found = _moodle_folder((folder, "page"))
        # One part of a path, as collect records it: a separator would let a zip member leave its folder.
        separator = re.search(r"[/\\\0]", folder)
        if not found or separator or found[0]["participant"] != entry.get("moodle_participant_id"):
            return (f"student {student}: moodle_folder {entry.get('moodle_folder')!r} is not a Moodle folder name "
                    f"with participant id {entry.get('moodle_participant_id')!r}")
    if entry["lms"] == LMS_CANVAS and not re.fullmatch(r"[0-9]+", entry.get("canvas_user_id", "")):
        return f"student {student}: canvas_user_id {entry.get('canvas_user_id')!r} is not a Canvas user id"
    if entry["lms"] == LMS_CANVAS and not re.fullmatch(r"([0-9]+)?", entry.get("canvas_attachment_id", "")):
        return f"student {student}: canvas_attachment_id {entry.get('canvas_attachment_id')!r} is not a Canvas file id"
    return None


def load_identities(course_root, assignment):
    """Where each collected student's submission came from.

    Returns
    -------
    dict
        {student id: :class:`LmsIdentity`}; empty when nothing was collected
        by this step (submissions from nbgrader's exchange, say).

    Raises
    ------
    CollectError
        When the file is not what collect writes; the message names it.
    """
    path = identities_path(course_root, assignment)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CollectError(f"{path}: cannot be read ({exc}); delete it and collect again") from exc
    if not isinstance(data, dict):
        raise CollectError(f"{path}: expected an object of student ids; delete it and collect again")
    for student, entry in data.items():
        problem = _identity_problem(student, entry)
        if problem:
            raise CollectError(f"{path}: {problem}; delete it and collect again")
    return {student: LmsIdentity(**entry) for student, entry in data.items()}


def identities_json(identities):
    """The text of ``lms_identities.json``: sorted keys, so the same identities give the same bytes."""
    data = {student: identity.to_json() for student, identity in identities.items()}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def save_identities(course_root, assignment, identities):
    """Write ``identities`` (all of them: merge with :func:`load_identities` first) atomically.

    The file is left untouched when it already holds exactly this.
    """
    path = identities_path(course_root, assignment)
    text = identities_json(identities)
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)
    log.debug(f"recorded where {len(identities)} student(s)' submissions came from in {path}")
    return path


# --------------------------------------------------------------------------
# Reading the source: a folder or a zip
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    """A notebook in the source, read only when needed (a class of 300 can be gigabytes)."""

    path: str
    timestamp: datetime
    read: Callable[[], bytes]


class _Scan(NamedTuple):
    entries: list
    unmatched: list
    skipped: list


def _is_junk(parts):
    """macOS resource forks, checkpoints and hidden files: never a submission."""
    return any(part in _JUNK_FOLDERS or part.startswith(".") for part in parts)


def _too_large(size):
    return f"larger than {MAX_NOTEBOOK_BYTES // (1024 * 1024)} MB ({size:,} bytes); not read"


def _safe_member_path(name):
    """The member's path with ``/`` separators, or None if it could escape a folder (zip-slip)."""
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path) or "\0" in path:
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _member_name(info):
    """The member's name, decoded as UTF-8 when the zip did not say (macOS, many LMS)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def _zip_time(info, fallback):
    # A zip stores local wall-clock time without a zone; read it as this machine's.
    try:
        return datetime(*info.date_time).astimezone(timezone.utc)
    except ValueError:
        return fallback


def _scan_zip(archive, zip_path):
    entries, unmatched, skipped = [], [], []
    fallback = datetime.fromtimestamp(Path(zip_path).stat().st_mtime, timezone.utc)
    for info in archive.infolist():
        name = _member_name(info)
        if info.is_dir():
            continue
        path = _safe_member_path(name)
        if path is None:
            unmatched.append(Unmatched(name, "unsafe path in the zip (absolute or with '..'); not read"))
            continue
        parts = path.split("/")
        if _is_junk(parts) or not _is_notebook_name(parts[-1]):
            skipped.append(path)
            continue
        if info.file_size > MAX_NOTEBOOK_BYTES:
            unmatched.append(Unmatched(path, _too_large(info.file_size)))
            continue
        entries.append(_Entry(path, _zip_time(info, fallback), _zip_reader(archive, info)))
    return _Scan(entries, unmatched, skipped)


def _zip_reader(archive, info):
    def read():
        with archive.open(info) as member:
            data = member.read(MAX_NOTEBOOK_BYTES + 1)
        # The header's size can lie; the cap must hold for what is really read.
        if len(data) > MAX_NOTEBOOK_BYTES:
            raise ValueError(_too_large(len(data)))
        return data

    return read


def _scan_folder(folder, exclude):
    """Every notebook under ``folder``, except junk and the ``exclude`` folder (our own output)."""
    entries, unmatched, skipped = [], [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        junk = [d for d in dirnames if _is_junk([d])]
        skipped += [(here / d).relative_to(folder).as_posix() + "/" for d in sorted(junk)]
        dirnames[:] = sorted(d for d in dirnames if d not in junk and (here / d).resolve() != exclude)
        for name in sorted(filenames):
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if _is_junk([name]) or not _is_notebook_name(name):
                skipped.append(relative)
                continue
            try:
                stat = path.stat()
            except OSError as exc:  # e.g. a broken symbolic link
                unmatched.append(Unmatched(relative, f"cannot read it: {exc}"))
                continue
            if stat.st_size > MAX_NOTEBOOK_BYTES:
                unmatched.append(Unmatched(relative, _too_large(stat.st_size)))
                continue
            entries.append(_Entry(relative, datetime.fromtimestamp(stat.st_mtime, timezone.utc), path.read_bytes))
    return _Scan(entries, unmatched, skipped)


# --------------------------------------------------------------------------
# Matching, duplicates and writing
# --------------------------------------------------------------------------
class _Candidate(NamedTuple):
    entry: _Entry
    match: NameMatch


def _read(entry):
    """(bytes, None) or (None, reason) when the file cannot be read."""
    try:
        return entry.read(), None
    except ValueError as exc:
        return None, str(exc)
    except (OSError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError) as exc:
        # zipfile raises RuntimeError for encrypted members and NotImplementedError
        # for unsupported compression methods.
        return None, f"cannot read it: {exc}"


def _identify(entry, notebook, warn):
    """(_Candidate, None) or (None, reason) for one notebook of the source."""
    match = student_from_name(entry.path, notebook)
    if match is not None:
        if match.found_by == FOUND_BY_FILE_NAME:
            _check_name_against_notebook(entry, match.student, warn)
        return _Candidate(entry, match), None
    data, problem = _read(entry)
    if problem:
        return None, f"no student id in the file name and {problem}"
    student, reason = _id_from_notebook(data)
    if student is None:
        return None, reason
    return _Candidate(entry, NameMatch(student, FOUND_BY_NOTEBOOK)), None


def _check_name_against_notebook(entry, student, warn):
    # A stray "homework.ipynb" would otherwise become student "homework" unnoticed.
    data, _ = _read(entry)
    try:
        written = student_id_in_notebook(data) if data is not None else None
    except ValueError:
        return  # reported when the file is collected
    if written and written != student:
        warn(f"{entry.path}: the file name gives student {student!r} but STUDENT_ID in the notebook is {written!r}; "
             f"collected as {student!r}")


def _newest_first(candidates):
    """Newest timestamp first; on a tie the path that sorts last wins."""
    return sorted(candidates, key=lambda c: (c.entry.timestamp, c.entry.path), reverse=True)


def _resolve_duplicates(by_student, warn):
    """One candidate per student, and the Duplicate records of the others."""
    kept, duplicates = {}, []
    for student, candidates in sorted(by_student.items()):
        ordered = _newest_first(candidates)
        kept[student] = ordered[0]
        if len(ordered) == 1:
            continue
        dropped = ordered[1:]
        duplicates.append(Duplicate(student, ordered[0].entry.path, tuple(c.entry.path for c in dropped)))
        ties = [c for c in dropped if c.entry.timestamp == ordered[0].entry.timestamp]
        why = "its name sorts last among files with the same timestamp" if ties else "it is the newest"
        warn(
            f"student {student} has {len(ordered)} notebooks: kept {ordered[0].entry.path} "
            f"({_utc_text(ordered[0].entry.timestamp)}) because {why}; dropped "
            + ", ".join(f"{c.entry.path} ({_utc_text(c.entry.timestamp)})" for c in dropped)
        )
    return kept, duplicates


def _utc_text(timestamp):
    return timestamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def nbgrader_timestamp(timestamp):
    """``timestamp`` as nbgrader writes ``timestamp.txt`` (in UTC, which ``parse_utc`` resolves)."""
    return timestamp.astimezone(timezone.utc).strftime(NBGRADER_TIMESTAMP_FORMAT)


def _previous_timestamp(path):
    """The time in an existing ``timestamp.txt`` (UTC), or None."""
    # Imported here: nbgrader takes over a second to import and is needed only on an update.
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(path.read_text().strip()).replace(tzinfo=timezone.utc)
    except (OSError, ValueError, OverflowError):
        return None


def _write_submission(data, timestamp, destination, warn):
    """Write one student's notebook and ``timestamp.txt``; return "new", "updated" or "unchanged"."""
    stamp_path = destination.with_name("timestamp.txt")
    if destination.is_file() and destination.read_bytes() == data:
        if not stamp_path.is_file():
            write_atomically(stamp_path, nbgrader_timestamp(timestamp).encode())
        # Keep the earlier timestamp: the same bytes were handed in then.
        return "unchanged"
    action = "updated" if destination.exists() else "new"
    if action == "updated":
        before = _previous_timestamp(stamp_path)
        log.info(f"updated {destination}: it differs from the earlier collect")
        if before is not None and timestamp <= before:
            warn(
                f"{destination}: replaced by a file that is not newer ({_utc_text(timestamp)}, before "
                f"{_utc_text(before)}); nbgrader autograde skips an already graded submission whose "
                "timestamp did not increase unless run with --force"
            )
    destination.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(destination, data)
    write_atomically(stamp_path, nbgrader_timestamp(timestamp).encode())
    return action


# --------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------
def _check_names(assignment, notebook):
    if not is_valid_student_id(assignment):
        raise ValueError(f"assignment {assignment!r}: use letters, digits, '.', '_' or '-'")
    if not _is_notebook_name(notebook) or "/" in notebook or "\\" in notebook:
        raise ValueError(f"notebook {notebook!r}: expected a file name ending in .ipynb")


def _scan_source(source, course_root, archive):
    if archive is not None:
        try:
            return _scan_zip(archive, source)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CollectError(f"{source}: cannot list the zip ({exc})") from exc
    submitted = (course_root / "submitted").resolve()
    if source.resolve() == submitted or submitted in source.resolve().parents:
        raise CollectError(f"{source}: is inside {submitted}, where collect writes; collect from the download instead")
    return _scan_folder(source, exclude=submitted)


def _open_source(source):
    """A ZipFile for a .zip source, None for a folder; CollectError for anything else."""
    if source.is_dir():
        return None
    if not source.exists():
        raise CollectError(f"{source}: no such file or folder")
    if source.suffix.lower() != ".zip":
        raise CollectError(f"{source}: expected a folder of notebooks or a .zip download")
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CollectError(f"{source}: not a readable zip file ({exc})") from exc


def collect(source, course_root, assignment="clustering", notebook="clustering.ipynb"):
    """Collect students' notebooks into ``<course_root>/submitted/<student>/<assignment>/<notebook>``.

    Parameters
    ----------
    source : path-like
        A folder of notebooks (searched recursively) or a ``.zip`` downloaded
        from an LMS (Canvas, Moodle) or assembled by hand.
    course_root : path-like
        The nbgrader course folder; only ``submitted/`` under it is written,
        and ``reports/<assignment>/lms_identities.json`` (where each
        submission came from, merged with earlier collects).
    assignment : str, default="clustering"
        The nbgrader assignment id.
    notebook : str, default="clustering.ipynb"
        The released notebook's name: every submission is stored under it.

    Returns
    -------
    CollectReport
        What was collected, what was not and why, and the duplicates.

    Raises
    ------
    CollectError
        When the source is missing, not a folder or a zip, or a corrupt zip.
    """
    _check_names(assignment, notebook)
    source, course_root = Path(source), Path(course_root)
    report = CollectReport(source=str(source), course_root=str(course_root))
    known = load_identities(course_root, assignment)  # refuse an unreadable record before writing anything

    def warn(message):
        report.warnings.append(message)
        log.warning(message)

    archive = _open_source(source)
    try:
        scan = _scan_source(source, course_root, archive)
        report.unmatched += scan.unmatched
        report.skipped += scan.skipped
        by_student = {}
        for entry in sorted(scan.entries, key=lambda e: e.path):
            candidate, reason = _identify(entry, notebook, warn)
            if candidate is None:
                report.unmatched.append(Unmatched(entry.path, reason))
            else:
                by_student.setdefault(candidate.match.student, []).append(candidate)
        kept, report.duplicates = _resolve_duplicates(by_student, warn)
        for student, candidate in kept.items():
            destination = course_root / "submitted" / student / assignment / notebook
            _collect_one(student, candidate, destination, report, warn)
    finally:
        if archive is not None:
            archive.close()
    if report.matched:
        save_identities(course_root, assignment, {**known, **{m.student: m.identity for m in report.matched}})
    log.info(report.table())
    return report


def _collect_one(student, candidate, destination, report, warn):
    """Read, write and record one student's kept notebook."""
    entry = candidate.entry
    data, problem = _read(entry)
    if problem:
        report.unmatched.append(Unmatched(entry.path, problem))
        return
    try:
        student_id_in_notebook(data)
    except ValueError as exc:
        # Still collected: the grade step reports it as failed to grade, so the student hears of it.
        warn(f"{entry.path}: {exc}; collected anyway for {student}")
    action = _write_submission(data, entry.timestamp, destination, warn)
    found_by, late = candidate.match.found_by, candidate.match.late
    identity = identity_from_path(entry.path, found_by)
    report.matched.append(
        MatchedFile(student, entry.path, destination, found_by, late, entry.timestamp, action, identity))
