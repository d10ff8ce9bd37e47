"""Reading nbgrader notebooks: cell kinds, regions, and checks of the master.

Small pure functions shared by the build (validation, leak checks) and the
later pipeline steps; nothing here runs a kernel.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import nbformat
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError

from .files import read_regular_file

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME", "END MARK SCHEME")

#: The nbgrader metadata keys of schema 3 (anything else is rejected by nbgrader).
NBGRADER_KEYS = {"schema_version", "grade", "solution", "locked", "task", "grade_id", "points", "checksum", "cell_type"}


#: The largest graded notebook the later steps read (a graded notebook's outputs are capped far below).
MAX_GRADED_NOTEBOOK_BYTES = 64 << 20


def read_graded_notebook(course_root, assignment, student):
    """The student's graded notebook ``autograded/<student>/<assignment>/<assignment>.ipynb``, parsed.

    Read without following links, from a regular file of at most
    :data:`MAX_GRADED_NOTEBOOK_BYTES`: it holds what the student's code printed.

    Raises
    ------
    coursekit.files.UnsafeFile
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
