"""Aligning a submission with the master: duplicated cells, corrupt metadata, restored cells.

Fast: ``coursekit.grading.repair.align`` and nbgrader's metadata checks on notebooks
built from the real master; no kernel, no nbgrader run.
"""

import copy
import re

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import CheckCellMetadata, DeduplicateIds

from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.common.preprocessors import CheckCellMetadataOnce, without_hidden_tests
from coursekit.grading.repair import NotThisAssignment, align, assigned_names
from coursekit.steps import demo

#: What the grade step can look for in nbgrader's log (see the report of this change).
FAILURE_PATTERN = r"the nbgrader metadata may be corrupted: (cell \d+[^\n]*)"
MY_ANSWER = "def assign_clusters(X, Z):\n    return 'my second try'"


@pytest.fixture(scope="module")
def master():
    return nbformat.read(ROOT / "source" / "clustering" / "clustering.ipynb", as_version=4)


@pytest.fixture
def solved(master):
    return demo.with_student(master, "Ada", "20260001")


def ids(nb):
    return [notebooks.grade_id(cell) for cell in nb.cells]


def index_of(nb, gid):
    return ids(nb).index(gid)


def paste(nb, gid, at, source=None):
    """Jupyter's copy and paste: a copy of cell ``gid`` (metadata included, new cell id) inserted at ``at``."""
    cell = copy.deepcopy(nb.cells[index_of(nb, gid)])
    cell.id = f"pasted-{at}"
    if source is not None:
        cell.source = source
    nb.cells.insert(at, cell)
    return cell


def strip_like_colab(nb):
    """Every cell's nbgrader metadata gone; test cells as the student saw them (no hidden tests)."""
    nb = demo.colab_saved(nb)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        if notebooks.HIDDEN_BEGIN in cell.source:
            cell.source = without_hidden_tests(cell.source)
    return nb


def assert_valid_for_nbgrader(nb):
    """nbgrader's own checks pass, and its DeduplicateIds finds nothing to remove."""
    MetadataValidator().validate_nb(nb)
    before = [notebooks.nbgrader_meta(cell) for cell in nb.cells]
    deduplicated, _ = DeduplicateIds().preprocess(copy.deepcopy(nb), {})
    assert [notebooks.nbgrader_meta(cell) for cell in deduplicated.cells] == before
    CheckCellMetadata().preprocess(deduplicated, {})
    CheckCellMetadataOnce().preprocess(deduplicated, {})


def test_a_duplicated_answer_cell_is_graded_at_its_last_copy(master, solved):
    first = solved.cells[index_of(solved, "assign_clusters")]
    paste(solved, "assign_clusters", index_of(solved, "assign_clusters_test") + 1, MY_ANSWER)
    repaired, notes = align(solved, master)
    places = [i for i, cell in enumerate(repaired.cells) if "def assign_clusters(" in cell.source]
    assert len(places) == 2
    earlier, last = (repaired.cells[i] for i in places)
    assert "nbgrader" not in earlier.metadata and earlier.source == first.source
    assert notebooks.grade_id(last) == "assign_clusters" and last.source == MY_ANSWER
    assert "cell 'assign_clusters' appeared 2 times: the last copy is graded" in " ".join(notes)
    assert_valid_for_nbgrader(repaired)


def test_a_duplicated_test_cell_is_graded_at_its_first_copy(master, solved):
    paste(solved, "assign_clusters_test", index_of(solved, "update_representatives_test") + 1)
    repaired, notes = align(solved, master)
    places = [i for i, cell in enumerate(repaired.cells) if cell.source.startswith("# Exercise 1.1 [2 points]")]
    assert len(places) == 2
    first, later = (repaired.cells[i] for i in places)
    assert notebooks.grade_id(first) == "assign_clusters_test"
    assert places[0] == index_of(repaired, "assign_clusters") + 1
    assert "nbgrader" not in later.metadata
    assert "cell 'assign_clusters_test' appeared 2 times: the first copy is graded" in " ".join(notes)
    assert_valid_for_nbgrader(repaired)


def test_duplicated_answer_and_test_cells_at_once(master, solved):
    paste(solved, "kmeans_test", len(solved.cells))
    paste(solved, "assign_clusters", len(solved.cells), MY_ANSWER)
    paste(solved, "question1", len(solved.cells), "My better answer.")
    repaired, notes = align(solved, master)
    assert sorted(gid for gid in ids(repaired) if gid) == sorted(gid for gid in ids(master) if gid)
    assert repaired.cells[-1].source == "My better answer." and notebooks.grade_id(repaired.cells[-1]) == "question1"
    assert notebooks.grade_id(repaired.cells[-2]) == "assign_clusters"
    assert notebooks.grade_id(repaired.cells[-3]) is None  # the later copy of kmeans_test
    assert index_of(repaired, "kmeans_test") == index_of(repaired, "kmeans") + 1
    assert len([note for note in notes if "appeared 2 times" in note]) == 3
    assert_valid_for_nbgrader(repaired)


def test_duplicates_in_a_notebook_saved_from_colab_without_metadata(master, solved):
    stripped = strip_like_colab(solved)
    answer, test = (next(c for c in stripped.cells if c.source.startswith(start)) for start in
                    ("def assign_clusters(", "# Exercise 1.1 [2 points]"))
    stripped.cells.insert(stripped.cells.index(answer) + 1, nbformat.v4.new_code_cell(MY_ANSWER))
    stripped.cells.append(copy.deepcopy(test))
    repaired, notes = align(stripped, master)
    assert ids(repaired)[-1] is None and repaired.cells[-1].source == test.source
    graded = repaired.cells[index_of(repaired, "assign_clusters")]
    assert graded.source == MY_ANSWER
    assert index_of(repaired, "assign_clusters_test") == index_of(repaired, "assign_clusters") + 1
    assert "2 cells without nbgrader metadata define assign_clusters(): the last one is graded" in " ".join(notes)
    assert_valid_for_nbgrader(repaired)


def test_a_pasted_copy_keeping_its_metadata_in_a_stripped_notebook(master, solved):
    """Colab stripped every cell, then the student pasted the test cell from the release at the end.

    The pasted copy is the only cell with the id, so it is graded there; the
    cells after the original place are still found between their neighbours.
    """
    stripped = strip_like_colab(solved)
    stripped.cells.append(copy.deepcopy(solved.cells[index_of(solved, "kmeans_test")]))
    repaired, notes = align(stripped, master)
    assert ids(repaired)[-1] == "kmeans_test" and ids(repaired).count("kmeans_test") == 1
    assert [gid for gid in ids(repaired)[:-1] if gid] == [gid for gid in ids(master) if gid and gid != "kmeans_test"]
    assert_valid_for_nbgrader(repaired)


CORRUPTIONS = {
    "schema 1": lambda meta: meta.update(schema_version=1),
    "no schema version": lambda meta: meta.pop("schema_version"),
    "no grade key": lambda meta: meta.pop("grade"),
    "points as text": lambda meta: meta.update(points="two"),
    "unknown key": lambda meta: meta.update(hint="mine"),
    "emptied": lambda meta: meta.clear(),
    "unknown grade_id": lambda meta: meta.update(grade_id="my_test"),
    "answer flag flipped": lambda meta: meta.update(solution=not meta["solution"]),
}


@pytest.mark.parametrize("gid", ["assign_clusters_test", "assign_clusters", "question1"])
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_metadata_is_removed_and_the_cell_re_identified(master, solved, gid, corruption):
    index = index_of(solved, gid)
    CORRUPTIONS[corruption](solved.cells[index].metadata.nbgrader)
    repaired, notes = align(solved, master)
    assert ids(repaired) == ids(master)
    assert repaired.cells[index].source == solved.cells[index].source
    assert any(note.startswith("removed invalid nbgrader metadata") and f"cell {index}" in note for note in notes)
    assert_valid_for_nbgrader(repaired)


def test_metadata_that_is_not_an_object_is_removed(master, solved):
    solved.cells[index_of(solved, "kmeans_test")].metadata["nbgrader"] = "kmeans_test"
    repaired, notes = align(solved, master)
    assert ids(repaired) == ids(master)
    assert "not a JSON object" in " ".join(notes)


def test_align_leaves_the_submission_as_it_was(master, solved):
    paste(solved, "assign_clusters", index_of(solved, "assign_clusters_test") + 1)
    before = copy.deepcopy(solved)
    align(solved, master)
    assert solved == before


@pytest.mark.parametrize("kind", ["kept", "stripped", "blank release"])
def test_a_deleted_part0_test_goes_back_right_after_the_name_cell(master, solved, kind):
    if kind == "blank release":
        solved = nbformat.read(ROOT / "release" / "clustering" / "clustering.ipynb", as_version=4)
    submission = strip_like_colab(solved) if kind == "stripped" else solved
    submission.cells = [c for c in submission.cells if not c.source.startswith("# Part 0 [1 point]")]
    name_cell = next(i for i, c in enumerate(submission.cells) if c.source.startswith("NAME ="))
    submission.cells.insert(name_cell + 1, nbformat.v4.new_code_cell("print(NAME)"))  # a cell of the student's
    repaired, notes = align(submission, master)
    restored = index_of(repaired, "student_info_test")
    assert repaired.cells[restored - 1].source.startswith("NAME =")
    assert repaired.cells[restored + 1].source == "print(NAME)"
    assert "restored missing cells from the master: student_info_test" in notes
    assert_valid_for_nbgrader(repaired)


def test_a_name_cell_moved_away_is_not_looked_for_elsewhere(master, solved):
    """The NAME cell is looked for only between its neighbours: moved far away, the test goes back to its place."""
    name_cell = next(c for c in solved.cells if c.source.startswith("NAME ="))
    solved.cells.remove(name_cell)
    solved.cells.append(name_cell)
    solved.cells = [c for c in solved.cells if notebooks.grade_id(c) != "student_info_test"]
    repaired, _ = align(solved, master)
    assert index_of(repaired, "student_info_test") == index_of(repaired, "colab_setup") + 1


def test_a_deleted_test_in_the_middle_goes_back_after_its_answer(master, solved):
    solved.cells = [c for c in solved.cells if notebooks.grade_id(c) != "kmeans_test"]
    repaired, notes = align(solved, master)
    assert ids(repaired) == ids(master)
    assert "restored missing cells from the master: kmeans_test" in notes


def test_a_deleted_answer_and_its_test_come_back_in_order(master, solved):
    solved.cells = [c for c in solved.cells if notebooks.grade_id(c) not in ("question1", "kmeans_test")]
    repaired, _ = align(solved, master)
    assert ids(repaired) == ids(master)
    assert repaired.cells[index_of(repaired, "question1")].source == "YOUR ANSWER HERE"


def test_another_notebook_is_still_not_this_assignment(master):
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("NAME = 'x'\nSTUDENT_ID = '1'")])
    with pytest.raises(NotThisAssignment, match="does not look like the assignment's notebook"):
        align(other, master)


@pytest.mark.parametrize("source, names", [
    ('NAME = "Ada"\nSTUDENT_ID = "20260001"', {"NAME", "STUDENT_ID"}),
    ('NAME: str = ""\nSTUDENT_ID = ""  # fill in\nprint(NAME)', {"NAME", "STUDENT_ID"}),
    ("%matplotlib inline\nNAME, STUDENT_ID = 'Ada', '1'", {"NAME", "STUDENT_ID"}),
    ("for NAME in range(3):\n    STUDENT_ID = NAME\nX[0] = 1", set()),
    ('NAME = "Ada', set()),
])
def test_assigned_names_are_the_top_level_assignments(source, names):
    assert assigned_names(source) == names


def test_without_the_repair_a_duplicate_fails_with_a_message_naming_the_cell(solved):
    """The cell and the reason are named, never "an old version of the nbgrader metadata format"."""
    answer = index_of(solved, "assign_clusters")
    paste(solved, "assign_clusters", index_of(solved, "assign_clusters_test") + 1)
    deduplicated, _ = DeduplicateIds().preprocess(copy.deepcopy(solved), {})
    expected = {
        id(solved): f"cell {answer + 2} ('assign_clusters'): grade_id 'assign_clusters' is also used by cell {answer}",
        id(deduplicated): f"cell {answer}: its nbgrader metadata is empty",
    }
    for nb in (solved, deduplicated):
        with pytest.raises(ValidationError, match="the nbgrader metadata may be corrupted") as error:
            CheckCellMetadataOnce().preprocess(nb, {})
        logged = f"[AutogradeApp | ERROR] {error.value}\n[AutogradeApp | ERROR] There was an error processing"
        assert re.search(FAILURE_PATTERN, logged).group(1).startswith(expected[id(nb)])


def test_check_cell_metadata_once_names_the_field_that_is_wrong(solved):
    solved.cells[index_of(solved, "kmeans_test")].metadata.nbgrader["points"] = "three"
    with pytest.raises(ValidationError) as error:
        CheckCellMetadataOnce().preprocess(solved, {})
    assert re.search(FAILURE_PATTERN, str(error.value)).group(1) == (
        f"cell {index_of(solved, 'kmeans_test')} ('kmeans_test'): points: 'three' is not of type 'number'"
    )


def test_cell_ids_nbformat_would_refuse_are_replaced(master, solved):
    """Any string an editor wrote as a cell id (or a repeated one): nbgrader could not write the graded notebook."""
    broken = copy.deepcopy(solved)
    broken.cells[3]["id"] = 'x"><img src=x onerror=alert(1)>'
    broken.cells[5]["id"] = broken.cells[4]["id"]
    repaired, notes = align(broken, master)
    nbformat.validate(repaired)
    ids = [cell["id"] for cell in repaired.cells]
    assert len(set(ids)) == len(ids)
    assert notes[0] == "2 cells had an id nbformat does not accept (or a repeated one): given new ids"
