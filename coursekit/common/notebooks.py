"""Reading nbgrader notebooks: cell kinds, regions, and checks of the master.

Small pure functions shared by the build (validation, leak checks) and the
later pipeline steps; nothing here runs a kernel.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import nbformat
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError

from coursekit.common.files import read_regular_file

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME", "END MARK SCHEME")

#: The nbgrader metadata keys of schema 3 (anything else is rejected by nbgrader).
NBGRADER_KEYS = {"schema_version", "grade", "solution", "locked", "task", "grade_id", "points", "checksum", "cell_type"}


#: The largest submitted notebook graded (the release is 0.1 MB; a solved notebook with its figures about 2 MB).
MAX_SUBMISSION_BYTES = 50 << 20
#: JSON nested deeper than this is refused before it is parsed: a notebook is about 6 levels deep, and
#: parsers, nbformat's validation and nbgrader recurse (100,000 levels crashed them with no reason given).
MAX_JSON_DEPTH = 64
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"%PDF", "a PDF file"),
          (b"PK\x03\x04", "a zip file (a Word document? a zipped folder?)"), (b"\x1f\x8b", "a gzip file"))
_CELL_TYPES = {"code", "markdown", "raw"}
_OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}


def json_too_deep(text, limit=MAX_JSON_DEPTH):
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` levels (one linear pass, no parsing)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _is_text(source):
    return isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))


def _cell_problem(number, cell):
    """What is wrong with one cell of a notebook's JSON, in words, or None."""
    if not isinstance(cell, dict):
        return f"cell {number} is not a JSON object"
    kind = cell.get("cell_type")
    if not isinstance(kind, str) or kind not in _CELL_TYPES:
        return f"cell {number} has no known cell type ({str(kind)[:40]!r})"
    if not _is_text(cell.get("source", "")):
        return f"the source of cell {number} is not text"
    if not isinstance(cell.get("metadata", {}), dict):
        return f"the metadata of cell {number} is not a JSON object"
    if kind == "code":
        outputs = cell.get("outputs", [])
        if not isinstance(outputs, list):
            return f"the outputs of cell {number} are not a list"
        for output in outputs:
            if not isinstance(output, dict) or not isinstance(output.get("output_type"), str) \
                    or output["output_type"] not in _OUTPUT_TYPES:
                return f"cell {number} has an output of no known type"
    return None


def _json_problem(error, text):
    """A JSON parser's error in words for a TA, with where it is."""
    if error.msg.startswith("Unterminated string"):
        return f"a text that never ends, from line {error.lineno}; is the file cut off?"
    if error.pos >= len(text.rstrip()):
        return f"the file ends in the middle, at line {error.lineno}; is it cut off?"
    return f"{error.msg} at line {error.lineno}, column {error.colno}"


def why_unreadable(data, max_bytes=MAX_SUBMISSION_BYTES):
    """None if ``data`` is a notebook nbgrader can read, else what is wrong with it, in one line for a TA.

    Checks what would otherwise end in a traceback (or a crash of the
    parser): size, encoding, JSON, nesting depth, nbformat version, and
    the shape of the cells and their outputs. It does not judge the
    nbgrader metadata: the repair step does that and grades what it can.

    Parameters
    ----------
    data : bytes
        The file handed in.
    max_bytes : int
        The largest notebook accepted.

    Returns
    -------
    str or None
        For example "not a readable notebook (invalid JSON: Expecting ',' delimiter at line 12, column 5)".
    """
    if len(data) > max_bytes:
        return f"too big for a notebook: {len(data) / 1e6:.0f} MB (the limit is {max_bytes / 1e6:.0f} MB)"
    if not data.strip():
        return "an empty file, not a notebook"
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return f"not a notebook: {what} with a notebook's name"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not a notebook: not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start})"
    if json_too_deep(text):
        return f"not a readable notebook: its JSON is nested more than {MAX_JSON_DEPTH} levels deep"
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as error:
        return f"not a readable notebook (invalid JSON: {_json_problem(error, text)})"
    except (RecursionError, ValueError) as error:  # numbers too long to convert, and the like
        return f"not a readable notebook (invalid JSON: {str(error)[:80]})"
    if not isinstance(nb, dict):
        return f"not a notebook: the file is a JSON {type(nb).__name__}, not an object"
    version = nb.get("nbformat")
    if not isinstance(version, int) or isinstance(version, bool):
        return "not a notebook: it has no nbformat version"
    if version < 4:
        return (f"a notebook in the old format {version} (Jupyter before 2015): open it in Jupyter and save it "
                "to convert it, then grade it again")
    if version > 4:
        return f"a notebook in format {version}, newer than this grader reads (4)"
    if not isinstance(nb.get("cells"), list):
        return "not a notebook: it has no list of cells"
    if not isinstance(nb.get("metadata", {}), dict):
        return "not a notebook: its metadata is not a JSON object"
    for number, cell in enumerate(nb["cells"], start=1):
        problem = _cell_problem(number, cell)
        if problem:
            return f"not a readable notebook: {problem}"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as error:  # noqa: BLE001 (nbformat raises many kinds; each is a reason to report)
        first = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        return f"not a readable notebook ({type(error).__name__}: {first})"
    return None


#: The largest graded notebook the later steps read (a graded notebook's outputs are capped far below).
MAX_GRADED_NOTEBOOK_BYTES = 64 << 20


def read_graded_notebook(course_root, assignment, student):
    """The student's graded notebook ``autograded/<student>/<assignment>/<assignment>.ipynb``, parsed.

    Read without following links, from a regular file of at most
    :data:`MAX_GRADED_NOTEBOOK_BYTES`: it holds what the student's code printed.

    Raises
    ------
    coursekit.common.files.UnsafeFile
        A link, not a regular file, or too large.
    ValueError
        Not UTF-8 or not a notebook (``nbformat`` reading errors are ValueErrors).
    """
    path = Path(course_root) / "autograded" / student / assignment / f"{assignment}.ipynb"
    data = read_regular_file(path, MAX_GRADED_NOTEBOOK_BYTES)
    try:
        return nbformat.reads(data.decode("utf-8"), as_version=4)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason})") from None


def nbgrader_meta(cell):
    """The cell's ``metadata.nbgrader`` dict ({} for an ordinary cell)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell):
    return nbgrader_meta(cell).get("grade_id")


def is_test_cell(cell):
    """An autograder test: graded, locked, not a student's answer."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.get("cell_type") == "code"


def is_solution_cell(cell):
    return bool(nbgrader_meta(cell).get("solution"))


def graded_cells(nb):
    """{grade_id: points} for every graded cell, in notebook order."""
    return {grade_id(c): float(nbgrader_meta(c).get("points", 0)) for c in nb.cells if nbgrader_meta(c).get("grade")}


def region_lines(source, begin, end):
    """The lines strictly inside every ``begin`` ... ``end`` region of ``source``."""
    inside, lines = False, []
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            lines.append(line)
    return lines


def stated_total_points(nb):
    """The total announced in the header ("**Points:** 27 in all"), or None."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"\*\*Points:\*\*\s*(\d+)", cell.source)
            if match:
                return int(match.group(1))
    return None


def check_master(nb, name="master notebook"):
    """Return a list of problems with the nbgrader structure of the master notebook.

    Checks schema-3 metadata, unique grade ids, points on graded cells, balanced
    solution/hidden-test regions in the right kinds of cells, and that the
    points add up to the total stated in the header.
    """
    problems = []
    validator = MetadataValidator()
    ids = Counter(grade_id(cell) for cell in nb.cells if grade_id(cell))
    problems += [f"{name}: grade_id {gid!r} is used by {count} cells" for gid, count in ids.items() if count > 1]
    for index, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        where = f"{name}, cell {index} ({meta.get('grade_id') or cell.cell_type})"
        source = cell.source
        for begin, end in ((SOLUTION_BEGIN, SOLUTION_END), (HIDDEN_BEGIN, HIDDEN_END)):
            if source.count(begin) != source.count(end):
                problems.append(f"{where}: unbalanced {begin!r} / {end!r}")
        if not meta:
            if any(marker in source for marker in MARKERS):
                problems.append(f"{where}: solution or hidden-test markers in a cell without nbgrader metadata")
            continue
        try:
            validator.validate_cell(cell)
        except (ValidationError, SchemaTooOldError, SchemaTooNewError) as error:
            problems.append(f"{where}: invalid nbgrader metadata: {error}")
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: schema_version must be 3, got {meta.get('schema_version')!r}")
        extra = set(meta) - NBGRADER_KEYS
        if extra:
            problems.append(f"{where}: unknown nbgrader keys {sorted(extra)}")
        if meta.get("grade") and not float(meta.get("points") or 0) > 0:
            problems.append(f"{where}: a graded cell needs points > 0")
        if is_test_cell(cell) and not meta.get("locked"):
            problems.append(f"{where}: a test cell must be locked (read-only)")
        if SOLUTION_BEGIN in source and not meta.get("solution"):
            problems.append(f"{where}: a solution region outside a solution cell")
        if HIDDEN_BEGIN in source and not is_test_cell(cell):
            problems.append(f"{where}: hidden tests outside a test cell")
        if cell.cell_type == "code" and meta.get("solution") and SOLUTION_BEGIN not in source:
            problems.append(f"{where}: a code answer cell needs a '### BEGIN SOLUTION' region (or its whole code is replaced)")
    stated = stated_total_points(nb)
    total = sum(graded_cells(nb).values())
    if stated is None:
        problems.append(f"{name}: the header does not state the total ('**Points:** N')")
    elif stated != total:
        problems.append(f"{name}: the header states {stated} points but the graded cells add up to {total:g}")
    return problems


def secret_lines(master, include_solutions=True, min_length=25):
    """Lines of the master's hidden tests (and solutions) that appear nowhere else in it.

    Only lines of at least ``min_length`` characters count: short ones
    ("return Z") are not specific enough to prove a leak.
    """
    regions = [(HIDDEN_BEGIN, HIDDEN_END)] + ([(SOLUTION_BEGIN, SOLUTION_END)] if include_solutions else [])
    secret, public = set(), set()
    for cell in master.cells:
        inside = set()
        for begin, end in regions:
            inside.update(region_lines(cell.source, begin, end))
        secret |= {line.strip() for line in inside}
        # A line counts as public wherever it appears outside a region, whatever its indentation.
        public.update(line.strip() for line in cell.source.splitlines() if line not in inside)
    public_text = "\n".join(public)
    # Not specific either: a secret line that is part of a public one (an assert
    # the visible test makes with a message, say) shows up wherever that one does.
    return {line for line in secret - public if len(line) >= min_length and line not in public_text}


def find_leaks(master, release, name="release notebook"):
    """Return a list of solution or hidden-test content found in ``release``.

    Looks for the delimiters themselves, for every non-blank line of each
    solution and hidden-test region of the master (only lines long enough to be
    specific), for outputs, and for model answers of written questions.
    """
    leaks = []
    secrets = secret_lines(master, include_solutions=True)
    model_answers = [c.source.strip() for c in master.cells if is_solution_cell(c) and c.cell_type == "markdown"]
    for index, cell in enumerate(release.cells):
        where = f"{name}, cell {index} ({grade_id(cell) or cell.cell_type})"
        for marker in MARKERS:
            if marker in cell.source:
                leaks.append(f"{where}: contains {marker!r}")
        stripped = {line.strip() for line in cell.source.splitlines()}
        for line in sorted(secrets & stripped):
            leaks.append(f"{where}: contains a line of the solution or hidden tests: {line!r}")
        if any(answer and answer in cell.source for answer in model_answers):
            leaks.append(f"{where}: contains a model answer")
        if cell.get("outputs"):
            leaks.append(f"{where}: has outputs (they may show solution results)")
    return leaks
