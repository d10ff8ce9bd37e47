"""Repair a submission's structure against the master before nbgrader grades it.

nbgrader finds the cells it grades by their ``metadata.nbgrader``. Students
break that in ordinary ways: a notebook saved from Google Colab can come back
with every cell's nbgrader metadata stripped (nbgrader then grades nothing and
exports 0, and ``add_missing_cells`` crashes); a student may delete a test
cell or a read-only cell. :class:`RepairSubmission` (first of
``Autograde.sanitize_preprocessors``) aligns the submission with the master:

1. cells that kept their ``grade_id`` are matched by it;
2. read-only cells without metadata are matched by their content, as the
   release shows it (test cells without their hidden tests);
3. each answer cell is found between its matched neighbours (the code cell
   that defines the exercise's function, or the first cell of the right kind);
4. test cells and answer cells that are gone are put back (tests from the
   master, answers as the empty stub, so they score 0 rather than vanish).

nbgrader's own ``OverwriteCells`` then restores the source of every read-only
cell from the gradebook as usual. A notebook in which too few of the master's
read-only cells can be found is not this assignment: grading it fails with a
message saying so, and the student is reported as not graded, never scored 0.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float

from . import notebooks
from .preprocessors import without_hidden_tests

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


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


def _fresh(master_cell, source):
    cell = copy.deepcopy(master_cell)
    cell.source = source
    # A stable id: the same submission must give the same graded notebook and feedback.
    cell.id = f"restored-{notebooks.grade_id(master_cell)}"[:64]
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def align(submission, master, min_locked_share=0.5):
    """Return (repaired notebook, list of notes) for ``submission`` against ``master``.

    Raises
    ------
    NotThisAssignment
        When fewer than ``min_locked_share`` of the master's read-only cells
        can be found in the submission.
    """
    cells = list(submission.cells)
    notes = []
    by_id = {notebooks.grade_id(c): i for i, c in enumerate(cells) if notebooks.grade_id(c)}
    position = {}  # master index -> submission index
    for m_index, m_cell in enumerate(master.cells):
        gid = notebooks.grade_id(m_cell)
        if gid and gid in by_id:
            position[m_index] = by_id[gid]

    # Read-only cells without metadata, by content (in order, each used once).
    used = set(position.values())
    stripped = 0
    for m_index, m_cell in enumerate(master.cells):
        if m_index in position or not notebooks.grade_id(m_cell) or notebooks.is_solution_cell(m_cell):
            continue
        wanted = _normal(released_source(m_cell))
        for s_index, s_cell in enumerate(cells):
            if s_index not in used and not notebooks.grade_id(s_cell) and s_cell.cell_type == m_cell.cell_type:
                if _normal(s_cell.source) in (wanted, _normal(m_cell.source)):
                    s_cell.metadata["nbgrader"] = copy.deepcopy(m_cell.metadata["nbgrader"])
                    position[m_index], stripped = s_index, stripped + 1
                    used.add(s_index)
                    break

    locked = [i for i, c in enumerate(master.cells) if notebooks.grade_id(c) and not notebooks.is_solution_cell(c)]
    found = sum(1 for i in locked if i in position)
    if locked and found < min_locked_share * len(locked):
        raise NotThisAssignment(
            f"does not look like the assignment's notebook: only {found} of its {len(locked)} read-only cells were found"
        )
    if stripped:
        notes.append(f"{stripped} cells had lost their nbgrader metadata (e.g. saved from Colab); re-identified by content")

    # Answer cells, between their matched neighbours.
    for m_index, m_cell in enumerate(master.cells):
        if m_index in position or not notebooks.is_solution_cell(m_cell):
            continue
        before = max((position[i] for i in position if i < m_index), default=-1)
        after = min((position[i] for i in position if i > m_index), default=len(cells))
        candidates = [
            s for s in range(before + 1, after)
            if s not in used and not notebooks.grade_id(cells[s]) and cells[s].cell_type == m_cell.cell_type
        ]
        name = _function_name(m_cell)
        chosen = next((s for s in candidates if name and re.search(rf"^def {name}\(", cells[s].source, re.M)), None)
        if chosen is None and candidates:
            chosen = candidates[0]
        if chosen is not None:
            cells[chosen].metadata["nbgrader"] = copy.deepcopy(m_cell.metadata["nbgrader"])
            position[m_index] = chosen
            used.add(chosen)

    # Whatever is still missing is put back after its matched predecessor.
    restored = []
    for m_index, m_cell in enumerate(master.cells):
        if m_index in position or not notebooks.nbgrader_meta(m_cell).get("grade"):
            continue
        before = max((position[i] for i in position if i < m_index), default=-1)
        new = _fresh(m_cell, released_source(m_cell))
        cells.insert(before + 1, new)
        position = {k: (v + 1 if v > before else v) for k, v in position.items()}
        position[m_index] = before + 1
        restored.append(notebooks.grade_id(m_cell))
    if restored:
        notes.append(f"restored missing cells from the master: {', '.join(restored)}")

    repaired = copy.deepcopy(submission)
    repaired.cells = cells
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
        return repaired, resources
