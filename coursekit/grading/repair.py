"""Repair a submission's structure against the master before nbgrader grades it.

nbgrader finds the cells it grades by their ``metadata.nbgrader``. Students
break that in ordinary ways: a notebook saved from Google Colab can come back
with every cell's nbgrader metadata stripped (nbgrader then grades nothing and
exports 0, and ``add_missing_cells`` crashes); a student may delete a test
cell or a read-only cell; a cell copied and pasted in Jupyter keeps its
metadata, so its ``grade_id`` appears twice. :class:`RepairSubmission` (first
of ``Autograde.sanitize_preprocessors``) aligns the submission with the master:

0. a cell without a source (or a code cell without outputs), which nbformat
   reads without complaint, gets an empty one, with a note;
1. nbgrader metadata that nbgrader would reject (invalid for its schema, an
   old or empty one, a ``grade_id`` the master does not have, a graded or
   answer flag that differs from the master's cell) is removed, with a note:
   the cell is then treated like one that lost its metadata (steps 4 to 6);
2. a ``grade_id`` that appears more than once is kept on one copy, with a
   note; the other copies lose their nbgrader metadata and stay in the
   notebook as ordinary cells, so the notebook still runs as the student ran
   it. An answer cell is graded at its LAST copy (the last definition wins,
   as when the notebook runs top to bottom). A test cell or other read-only
   cell is graded at its FIRST copy, the place where the master has it; its
   later copies are kept rather than dropped because later cells may use
   what they define, and an ordinary cell's failure costs no points (its
   source is the release's, without hidden tests);
3. cells that kept their ``grade_id`` are matched by it;
4. read-only cells without metadata are matched by their content, as the
   release shows it (test cells without their hidden tests);
5. master cells that have no nbgrader metadata (the ``NAME`` /
   ``STUDENT_ID`` cell) are located between their matched neighbours, by
   their content or, for code cells students edit, by the set of names they
   assign at top level;
6. each answer cell is found between its matched neighbours (the last code
   cell that defines the exercise's function, or the first cell of the right
   kind);
7. test cells and graded answer cells that are gone are put back after the
   located cells that precede them in the master (tests from the master,
   answers as the empty stub, so they score 0 rather than vanish): a deleted
   Part 0 test goes back after the ``NAME`` cell it checks.

After this, nbgrader's ``DeduplicateIds`` finds no duplicate (on its own it
would empty the metadata of every copy but the last, which
``CheckCellMetadata`` then rejects as "an old version of the nbgrader
metadata format", jupyter/nbgrader#1083), and ``RestoreLockedCells`` (our
``OverwriteCells``) restores the source of every read-only cell from the
gradebook as usual. A notebook in which too few of the master's read-only
cells can be found is not this assignment: grading it fails with a message
saying so, and the student is reported as not graded, never scored 0.
"""

from __future__ import annotations

import ast
import copy
import re
from collections import defaultdict
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.nbgraderformat import (
    SchemaTooNewError,
    SchemaTooOldError,
    ValidationError,
)
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float

from coursekit.common import notebooks
from coursekit.common.preprocessors import _QuickMetadataValidator, without_hidden_tests

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
#: Notebook metadata key under which the repairs travel to the grading step.
REPAIRS_KEY = "coursekit_repairs"
TEXT_STUB = "YOUR ANSWER HERE"
#: The nbgrader flags that make a cell's ``grade_id`` count.
FLAGS = ("grade", "solution", "locked", "task")
#: Longest note about a repair (it goes into the report and the feedback on one line).
MAX_NOTE = 300


class NotThisAssignment(ValueError):
    """The submitted notebook does not match the master."""


def released_source(cell):
    """The source of a master cell as the release shows it."""
    if notebooks.is_solution_cell(cell):
        return CODE_STUB if cell.cell_type == "code" else TEXT_STUB
    return without_hidden_tests(cell.source) if notebooks.is_test_cell(cell) else cell.source


def _normal(text):
    return re.sub(r"\s+", " ", text).strip()


def _function_name(master_cell):
    match = re.search(r"^def (\w+)\(", master_cell.source, flags=re.MULTILINE)
    return match.group(1) if match else None


def assigned_names(source):
    """The names a code cell assigns at top level (``NAME = ...``), as a frozenset.

    IPython lines (``%matplotlib``, ``!pip``) are skipped; a cell that is not
    valid Python gives the empty set.
    """
    python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        body = ast.parse(python).body
    except (SyntaxError, ValueError):
        return frozenset()
    names = set()
    for node in body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        else:
            targets = [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            parts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
            names.update(part.id for part in parts if isinstance(part, ast.Name))
    return frozenset(names)


def _fresh(master_cell, source):
    cell = copy.deepcopy(master_cell)
    cell.source = source
    # A stable id: the same submission must give the same graded notebook and feedback.
    cell.id = f"restored-{notebooks.grade_id(master_cell)}"[:64]
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def metadata_problem(cell, master_cells, validator=None):
    """What is wrong with ``cell``'s nbgrader metadata, in words, or None.

    Parameters
    ----------
    cell : NotebookNode
        A cell of the submission.
    master_cells : dict
        The master's cells by ``grade_id``.
    validator : MetadataValidator, optional
        nbgrader's schema check (the compiled one by default).

    Returns
    -------
    str or None
        None for a cell without nbgrader metadata or with metadata nbgrader
        accepts that fits the master's cell of the same ``grade_id``.
    """
    meta = cell.metadata.get("nbgrader")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return "it is not a JSON object"
    if not meta:
        return "it is empty"
    try:
        (validator or _QuickMetadataValidator()).validate_cell(cell)
    except (ValidationError, SchemaTooOldError, SchemaTooNewError) as error:
        return getattr(error, "message", None) or str(error)
    if not any(meta.get(flag) for flag in FLAGS):
        return "it marks the cell as nothing (not graded, answer or read-only)"
    master = master_cells.get(meta.get("grade_id"))
    if master is None:
        return f"grade_id {meta.get('grade_id')!r} is not in the assignment"
    wanted = notebooks.nbgrader_meta(master)
    if any(bool(meta.get(flag)) != bool(wanted.get(flag)) for flag in ("grade", "solution")):
        return f"its grade/solution flags differ from the assignment's cell {meta['grade_id']!r}"
    return None


def _short(text, length):
    """``text`` cut to ``length`` characters, with "..." where it was cut."""
    return text if len(text) <= length else text[:length - 3] + "..."


def _fill_missing_fields(cells):
    """Give cells without a source (or a code cell without outputs or a count) empty ones; return the notes.

    nbformat reads such a cell without complaint, but every step after it
    expects the fields: the notebook is graded as if the cell were empty.
    """
    filled = 0
    for cell in cells:
        missing = {"source": "", "metadata": {}}
        if cell.get("cell_type") == "code":
            missing.update(outputs=[], execution_count=None)
        absent = [key for key in missing if key not in cell]
        for key in absent:
            cell[key] = missing[key]
        filled += bool(absent)
    return [f"{filled} cells had no source, outputs or metadata: graded as empty"] if filled else []


def _drop_bad_metadata(cells, master):
    """Remove nbgrader metadata that is invalid or does not fit the master; return the notes.

    What counts as invalid is :func:`metadata_problem`.
    """
    master_cells = {notebooks.grade_id(c): c for c in master.cells if notebooks.grade_id(c)}
    validator, problems = _QuickMetadataValidator(), []
    for index, cell in enumerate(cells):
        problem = metadata_problem(cell, master_cells, validator)
        if problem:
            meta = cell.metadata.pop("nbgrader")
            gid = meta.get("grade_id") if isinstance(meta, dict) else None
            problems.append(f"cell {index}" + (f" ({_short(repr(gid), 32)})" if isinstance(gid, str) else "")
                            + f": {_short(problem, 60)}")
    if not problems:
        return []
    shown = "; ".join(problems[:2]) + (f"; and {len(problems) - 2} more" if len(problems) > 2 else "")
    return [_short(f"removed invalid nbgrader metadata (those cells are re-identified like cells without it): {shown}",
                   MAX_NOTE)]


def _deduplicate(cells, master):
    """Keep each ``grade_id`` on one copy (answers: the last, others: the first); return the notes."""
    answers = {notebooks.grade_id(c) for c in master.cells if notebooks.is_solution_cell(c)}
    places = defaultdict(list)
    for index, cell in enumerate(cells):
        if notebooks.grade_id(cell):
            places[notebooks.grade_id(cell)].append(index)
    notes = []
    for gid, where in places.items():
        if len(where) > 1:
            which = "last" if gid in answers else "first"
            kept = where[-1] if gid in answers else where[0]
            for index in where:
                if index != kept:
                    del cells[index].metadata["nbgrader"]
            notes.append(f"cell '{gid}' appeared {len(where)} times: the {which} copy is graded, "
                         "the others run as ordinary cells")
    return notes


def _match_by_id(cells, master):
    """{master index: submission index} of the cells that kept their grade_id."""
    by_id = {notebooks.grade_id(c): i for i, c in enumerate(cells) if notebooks.grade_id(c)}
    return {m: by_id[notebooks.grade_id(c)] for m, c in enumerate(master.cells) if notebooks.grade_id(c) in by_id}


def _match_locked_by_content(cells, master, position, used):
    """Match read-only cells without metadata by content (in order, each used once); return how many."""
    found = 0
    for m_index, m_cell in enumerate(master.cells):
        if m_index in position or not notebooks.grade_id(m_cell) or notebooks.is_solution_cell(m_cell):
            continue
        wanted = (_normal(released_source(m_cell)), _normal(m_cell.source))
        for s_index, s_cell in enumerate(cells):
            if _free(cells, s_index, used, m_cell) and _normal(s_cell.source) in wanted:
                s_cell.metadata["nbgrader"] = copy.deepcopy(m_cell.metadata["nbgrader"])
                position[m_index] = s_index
                used.add(s_index)
                found += 1
                break
    return found


def _check_enough_locked(master, position, min_locked_share):
    locked = [i for i, c in enumerate(master.cells) if notebooks.grade_id(c) and not notebooks.is_solution_cell(c)]
    found = sum(1 for i in locked if i in position)
    if locked and found < min_locked_share * len(locked):
        raise NotThisAssignment(
            f"does not look like the assignment's notebook: only {found} of its {len(locked)} read-only cells were found"
        )


def _free(cells, s_index, used, m_cell):
    """Whether submission cell ``s_index`` is unclaimed, without grade_id, and of ``m_cell``'s kind."""
    cell = cells[s_index]
    return s_index not in used and not notebooks.grade_id(cell) and cell.cell_type == m_cell.cell_type


def _predecessor_at(position, m_index):
    """The submission index of the nearest located master cell before ``m_index`` (-1 if none)."""
    before = [i for i in position if i < m_index]
    return position[max(before)] if before else -1


def _window(position, m_index, n_cells):
    """The submission indices strictly between the nearest located master cells around ``m_index``."""
    after = [i for i in position if i > m_index]
    return range(_predecessor_at(position, m_index) + 1, position[min(after)] if after else n_cells)


def _locate_plain_cells(cells, master, position, used):
    """Locate master cells without nbgrader metadata between their located neighbours.

    A submission cell matches when its source equals the master's (up to
    whitespace) or, for a code cell, when it assigns the same non-empty set
    of names at top level (the ``NAME`` cell, filled in by the student). An
    exact match is preferred; each submission cell is used once.
    """
    for m_index, m_cell in enumerate(master.cells):
        if notebooks.nbgrader_meta(m_cell):
            continue
        window = [s for s in _window(position, m_index, len(cells)) if _free(cells, s, used, m_cell)]
        names = assigned_names(m_cell.source) if m_cell.cell_type == "code" else frozenset()
        same = [s for s in window if _normal(cells[s].source) == _normal(m_cell.source)]
        similar = [s for s in window if names and assigned_names(cells[s].source) == names]
        chosen = (same or similar or [None])[0]
        if chosen is not None:
            position[m_index] = chosen
            used.add(chosen)


def _locate_answers(cells, master, position, used):
    """Find each answer cell without metadata between its matched neighbours; return the notes.

    The last cell that defines the exercise's function is chosen (the
    definition that runs last wins); else the first free cell of the right kind.
    """
    notes = []
    for m_index, m_cell in enumerate(master.cells):
        if m_index in position or not notebooks.is_solution_cell(m_cell):
            continue
        candidates = [s for s in _window(position, m_index, len(cells)) if _free(cells, s, used, m_cell)]
        name = _function_name(m_cell)
        defining = [s for s in candidates if name and re.search(rf"^def {name}\(", cells[s].source, re.M)]
        if len(defining) > 1:
            notes.append(f"{len(defining)} cells without nbgrader metadata define {name}(): the last one is graded "
                         f"as '{notebooks.grade_id(m_cell)}', the others run as ordinary cells")
        chosen = defining[-1] if defining else candidates[0] if candidates else None
        if chosen is not None:
            cells[chosen].metadata["nbgrader"] = copy.deepcopy(m_cell.metadata["nbgrader"])
            position[m_index] = chosen
            used.add(chosen)
    return notes


def _restore_missing(cells, master, position):
    """Put back the graded cells still missing, after their located predecessors; return their ids."""
    restored = []
    for m_index, m_cell in enumerate(master.cells):
        if m_index in position or not notebooks.nbgrader_meta(m_cell).get("grade"):
            continue
        before = _predecessor_at(position, m_index)
        cells.insert(before + 1, _fresh(m_cell, released_source(m_cell)))
        position.update({k: v + 1 for k, v in position.items() if v > before})
        position[m_index] = before + 1
        restored.append(notebooks.grade_id(m_cell))
    return restored


_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")  # nbformat 4.5's cell id


def _fix_cell_ids(cells):
    """Give a fresh id to each cell whose id nbformat would refuse (or which repeats one); return the notes.

    An editor that is not Jupyter, or a student, may write any string there;
    nbgrader could then not write the graded notebook, and the student would
    not be graded at all.
    """
    seen, fixed = set(), 0
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if not (isinstance(cell_id, str) and _CELL_ID.match(cell_id)) or cell_id in seen:
            cell_id = next(f"cell-{index}-{n}" for n in range(len(cells) + 1) if f"cell-{index}-{n}" not in seen)
            cell["id"] = cell_id
            fixed += 1
        seen.add(cell_id)
    return [f"{fixed} cells had an id nbformat does not accept (or a repeated one): given new ids"] if fixed else []


def align(submission, master, min_locked_share=0.5):
    """Return (repaired notebook, list of notes) for ``submission`` against ``master``.

    ``submission`` is left unchanged; the steps are those of the module
    docstring.

    Raises
    ------
    NotThisAssignment
        When fewer than ``min_locked_share`` of the master's read-only cells
        can be found in the submission.
    """
    repaired = copy.deepcopy(submission)
    cells = repaired.cells
    notes = (_fill_missing_fields(cells) + _fix_cell_ids(cells) + _drop_bad_metadata(cells, master)
             + _deduplicate(cells, master))
    position = _match_by_id(cells, master)  # master index -> submission index
    used = set(position.values())
    stripped = _match_locked_by_content(cells, master, position, used)
    _check_enough_locked(master, position, min_locked_share)
    if stripped:
        notes.append(f"{stripped} cells had lost their nbgrader metadata (e.g. saved from Colab); re-identified by content")
    _locate_plain_cells(cells, master, position, used)
    notes += _locate_answers(cells, master, position, used)
    restored = _restore_missing(cells, master, position)
    if restored:
        notes.append(f"restored missing cells from the master: {', '.join(restored)}")
    return repaired, notes


class RepairSubmission(NbGraderPreprocessor):
    """Align a submission with the master notebook (see the module docstring)."""

    min_locked_share = Float(0.5, help="Share of the master's read-only cells that must be found").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        master_path = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / f"{info['notebook']}.ipynb"
        master = nbformat.read(master_path, as_version=4)
        repaired, notes = align(nb, master, self.min_locked_share)
        for note in notes:
            self.log.warning("repair: %s", note)
        resources.setdefault("coursekit", {})["repairs"] = notes
        # Carried to the grading step (a separate nbgrader pass), which reports them
        # with its own incidents and removes them from the notebook.
        if notes:
            repaired.metadata[REPAIRS_KEY] = notes
        return repaired, resources
