"""The course's preprocessors on hand-made cells."""

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.api import Gradebook, MissingEntry

from coursekit.common.preprocessors import (
    HideHiddenTests,
    MasterCellsRead,
    NameUnfinishedExercises,
    redact_traceback,
)
from coursekit.grading.gradebook import db_url, register_assignment
from coursekit.steps import demo

RED = "\x1b[0;31m"
TRACEBACK = [
    f"{RED}---------------------------------------------------------------------------\x1b[0m",
    f"{RED}AssertionError\x1b[0m                            Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[12], line 9\x1b[0m\n      7 def _hidden_test():\n----> 9     assert secret_check(kmeans), 'wrong groups'\n",
    "Cell \x1b[0;32mIn[11], line 4\x1b[0m, in \x1b[0;36mkmeans\x1b[0;34m(X, k)\x1b[0m\n----> 4     return my_own_code(X)\n",
    "File /usr/lib/python3/site-packages/numpy/core.py:10, in argmin()\n",
    f"{RED}AssertionError\x1b[0m: wrong groups",
]


def test_redaction_drops_only_the_test_cells_frames():
    kept = redact_traceback(TRACEBACK, cell_count=12)
    text = "\n".join(kept)
    assert "secret_check" not in text
    assert "my_own_code" in text and "numpy/core.py" in text
    assert kept[-1].endswith("wrong groups") and "not shown" in text


def test_hide_hidden_tests_keeps_visible_asserts_and_the_result():
    source = "assert f(1) == 2, 'f(1)'\n### BEGIN HIDDEN TESTS\nassert secret_check(f)\n### END HIDDEN TESTS"
    cell = new_code_cell(source, execution_count=12)
    cell.metadata.nbgrader = dict(schema_version=3, grade=True, solution=False, locked=True, grade_id="t", points=2)
    cell.outputs = [new_output("error", ename="AssertionError", evalue="wrong groups", traceback=TRACEBACK)]
    cell, _ = HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert "secret_check" not in cell.source and "assert f(1) == 2" in cell.source
    assert "Hidden tests ran here" in cell.source
    assert cell.outputs[0].evalue == "wrong groups"
    assert not any("secret_check" in frame for frame in cell.outputs[0].traceback)


def test_cells_without_hidden_tests_are_untouched():
    cell = new_code_cell("assert True", execution_count=3)
    cell.metadata.nbgrader = dict(schema_version=3, grade=True, solution=False, locked=True, grade_id="t", points=1)
    before = dict(cell)
    assert HideHiddenTests().preprocess_cell(cell, {}, 0)[0] == before


def _outcome(validator, cell):
    try:
        validator.validate_cell(cell)
    except Exception as error:  # noqa: BLE001 - the type and message are what is compared
        return type(error).__name__, str(error)
    return None


def _grade_cell(**changes):
    import copy

    import nbformat

    from coursekit.common.paths import ROOT

    master = nbformat.read(ROOT / "source" / "clustering" / "clustering.ipynb", as_version=4)
    cell = copy.deepcopy(next(c for c in master.cells if c.metadata.get("nbgrader", {}).get("grade")))
    for key, value in changes.items():
        if value is None:
            cell.metadata.nbgrader.pop(key, None)
        else:
            cell.metadata.nbgrader[key] = value
    return cell


@pytest.mark.parametrize("changes, valid", [
    ({}, True),
    ({"locked": False}, True),
    ({"points": "two"}, False),
    ({"points": None}, False),
    ({"grade_id": None}, False),
    ({"grade_id": 7}, False),
    ({"solution": "yes"}, False),
    ({"schema_version": 2}, False),
    ({"schema_version": 4}, False),
    ({"extra": 1}, False),
])
def test_the_compiled_metadata_check_says_what_nbgraders_says(changes, valid):
    from nbgrader.nbgraderformat import MetadataValidator

    from coursekit.common.preprocessors import _QuickMetadataValidator

    cell = _grade_cell(**changes)
    ours, nbgraders = _outcome(_QuickMetadataValidator(), cell), _outcome(MetadataValidator(), cell)
    assert ours == nbgraders
    assert (ours is None) == valid, ours


def test_the_compiled_metadata_check_fails_a_corrupt_notebook_as_nbgrader_does():
    import nbformat
    from nbgrader.nbgraderformat import ValidationError
    from nbgrader.preprocessors import CheckCellMetadata

    from coursekit.common.preprocessors import CheckCellMetadataOnce

    nb = nbformat.v4.new_notebook(cells=[_grade_cell(points="two")])
    for check in (CheckCellMetadata(), CheckCellMetadataOnce()):
        with pytest.raises(ValidationError, match="the nbgrader metadata may be corrupted"):
            check.preprocess(nb, {})
    nb.cells = [_grade_cell()]
    assert CheckCellMetadataOnce().preprocess(nb, {})[0] is nb


def _answer(source):
    cell = new_code_cell(source)
    cell.metadata.nbgrader = dict(schema_version=3, grade=False, solution=True, locked=False, grade_id=f"a{len(source)}")
    return cell


def test_each_stub_names_the_exercise_it_belongs_to():
    stub = "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    nb = new_notebook(cells=[
        _answer(stub),  # under no exercise heading yet: left alone
        new_markdown_cell("## Exercise 1.4: the $k$-means algorithm [3 points]\n\nWrite `kmeans`."),
        _answer(stub), new_code_cell("raise NotImplementedError()"),  # not an answer cell: left alone
        new_markdown_cell("### Exercise 2.3 [2 points]"), _answer(stub + "\n\ndef g():\n    raise NotImplementedError"),
        new_markdown_cell("# Part 3"), _answer(stub),
    ])
    nb, _ = NameUnfinishedExercises().preprocess(nb, {})
    sources = [cell.source for cell in nb.cells]
    assert sources[0] == stub and sources[3] == "raise NotImplementedError()" and sources[7] == stub
    assert sources[2] == stub.replace("NotImplementedError()", 'NotImplementedError("Exercise 1.4 is not done yet")')
    assert sources[5].count('raise NotImplementedError("Exercise 2.3 is not done yet")') == 2


def test_the_master_cells_read_once_answer_as_the_gradebook_does(tmp_path):
    """RestoreLockedCells's lookups from memory give nbgrader's own answers, and its MissingEntry."""
    course = demo.prepare_demo_course(tmp_path / "course")
    register_assignment(course, "clustering")
    with Gradebook(db_url(course)) as gradebook:
        read = MasterCellsRead(gradebook, "clustering", "clustering")
        master = gradebook.find_notebook("clustering", "clustering")
        names = [cell.name for cell in master.source_cells]
        assert len(names) > 20
        for name in names:
            assert read.find_source_cell(name, "clustering", "clustering") is \
                gradebook.find_source_cell(name, "clustering", "clustering")
        for cell in master.grade_cells:
            assert read.find_graded_cell(cell.name, "clustering", "clustering") is \
                gradebook.find_graded_cell(cell.name, "clustering", "clustering")
        for lookup in (read.find_source_cell, read.find_graded_cell, gradebook.find_source_cell):
            with pytest.raises(MissingEntry):
                lookup("a_cell_nobody_made", "clustering", "clustering")
        with pytest.raises(MissingEntry):  # another notebook: asked of the gradebook itself
            read.find_source_cell(names[0], "another", "clustering")
        assert read.db is gradebook.db  # the rest is the gradebook's
