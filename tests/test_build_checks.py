"""The build's checks on small hand-made notebooks: each must catch what it is for."""

import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.common.preprocessors import ClearStudentInfo, without_hidden_tests
from coursekit.grading import requirements
from coursekit.grading.checker import CHECKER_GUARD
from coursekit.steps import build


def _meta(**flags):
    base = dict(schema_version=3, grade=False, solution=False, locked=False)
    base.update(flags)
    return {"nbgrader": base}


def _tiny_master():
    return new_notebook(
        cells=[
            new_markdown_cell("# Tiny\n\n**Points:** 3 in all", metadata=_meta(locked=True, grade_id="header")),
            new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x + 1000000\n    ### END SOLUTION",
                          metadata=_meta(solution=True, grade_id="f")),
            new_code_cell("assert f(1) == 1000002\n### BEGIN HIDDEN TESTS\nassert f(2) == 1000004, 'hidden check of f at two'\n### END HIDDEN TESTS",
                          metadata=_meta(grade=True, locked=True, grade_id="f_test", points=2)),
            new_markdown_cell("The answer is forty-two, because of the deep thought computation.",
                              metadata=_meta(grade=True, solution=True, grade_id="q", points=1)),
        ]
    )


def test_a_good_master_passes():
    assert notebooks.check_master(_tiny_master()) == []


@pytest.mark.parametrize(
    "break_it, complaint",
    [
        (lambda nb: nb.cells[2].metadata.nbgrader.update(grade_id="f"), "is used by 2 cells"),
        (lambda nb: nb.cells[2].metadata.nbgrader.update(points=0), "needs points > 0"),
        (lambda nb: nb.cells[2].metadata.nbgrader.update(locked=False), "must be locked"),
        (lambda nb: nb.cells[2].metadata.nbgrader.update(schema_version=2), "schema_version must be 3"),
        (lambda nb: nb.cells[2].metadata.nbgrader.update(colour="red"), "unknown nbgrader keys"),
        (lambda nb: setattr(nb.cells[1], "source", "def f(x):\n    ### BEGIN SOLUTION\n    return 2"), "unbalanced"),
        (lambda nb: setattr(nb.cells[1], "source", "def f(x):\n    return 2"), "needs a '### BEGIN SOLUTION' region"),
        (lambda nb: nb.cells.append(new_code_cell("### BEGIN HIDDEN TESTS\nx\n### END HIDDEN TESTS")), "without nbgrader metadata"),
        (lambda nb: setattr(nb.cells[0], "source", "**Points:** 4"), "states 4 points but the graded cells add up to 3"),
    ],
)
def test_check_master_names_each_problem(break_it, complaint):
    nb = _tiny_master()
    break_it(nb)
    problems = notebooks.check_master(nb)
    assert any(complaint in p for p in problems), problems


def test_find_leaks_on_a_correct_and_a_leaky_release():
    master = _tiny_master()
    release = copy.deepcopy(master)
    release.cells[1].source = "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    release.cells[2].source = without_hidden_tests(master.cells[2].source)
    release.cells[3].source = "YOUR ANSWER HERE"
    assert notebooks.find_leaks(master, release) == []
    release.cells[2].source += "\nassert f(2) == 1000004, 'hidden check of f at two'"
    release.cells[3].source = master.cells[3].source
    leaks = notebooks.find_leaks(master, release)
    assert any("hidden tests" in leak for leak in leaks) and any("model answer" in leak for leak in leaks)


def test_clear_student_info_blanks_only_the_named_strings():
    nb = new_notebook(cells=[new_code_cell('NAME = "Ada"\nSTUDENT_ID = \'123\'  # keep me\nOTHER = "x"')])
    cleared, _ = ClearStudentInfo().preprocess(nb, {})
    assert cleared.cells[0].source == 'NAME = ""\nSTUDENT_ID = ""  # keep me\nOTHER = "x"'


SETUP = '''COURSE_BASE_URL = "https://old.example/"
COURSE_FILES = {}  # file name -> SHA-256; written by `make build`


def _fetch_course_files(base_url, files):
    pass
'''


def test_colab_manifest_is_written_and_rewritten_without_touching_the_rest():
    first = build.colab_manifest_source(SETUP, "https://new.example/r/", {"b.png": "1" * 64, "a.py": "2" * 64})
    assert 'COURSE_BASE_URL = "https://new.example/r/"' in first
    assert '    "a.py": "' + "2" * 64 + '",\n    "b.png": "' + "1" * 64 + '",\n}' in first
    assert first.endswith("def _fetch_course_files(base_url, files):\n    pass\n")
    second = build.colab_manifest_source(first, "https://new.example/r/", {"a.py": "3" * 64})
    assert "1" * 64 not in second and "3" * 64 in second
    assert second.endswith("def _fetch_course_files(base_url, files):\n    pass\n")
    assert build.colab_manifest_source(second, "https://new.example/r/", {"a.py": "3" * 64}) == second


def test_colab_manifest_refuses_a_cell_without_the_settings():
    with pytest.raises(build.BuildError, match="COURSE_BASE_URL"):
        build.colab_manifest_source("print('hello')", "https://x/", {})


# --- Stated requirements: a hidden test checks only what the student was told ------------------------

STATED_TEXT = "## Exercise: double\n\nWrite `double(x)`. `x` may be a uint8 array: compute in floating point."


def _stated_master(hidden):
    """A master whose one exercise states the uint8 requirement, with ``hidden`` as its hidden tests."""
    return new_notebook(cells=[
        new_markdown_cell("# Tiny\n\n**Points:** 1 in all", metadata=_meta(locked=True, grade_id="header")),
        new_markdown_cell(STATED_TEXT, metadata=_meta(locked=True, grade_id="text")),
        new_code_cell('def double(x):\n    """Twice x, as\n    floats."""\n    ### BEGIN SOLUTION\n    return 2.0 * x\n'
                      "    ### END SOLUTION", metadata=_meta(solution=True, grade_id="double")),
        new_code_cell("assert double(1) == 2\n### BEGIN HIDDEN TESTS\n" + hidden + "\n" + CHECKER_GUARD
                      + "\n### END HIDDEN TESTS", metadata=_meta(grade=True, locked=True, grade_id="double_test", points=1)),
    ])


CHECKS_UINT8 = ('def _checker_test_double(student):\n    """Stated requirements checked:\n\n'
                '    - may be a uint8 array: compute in floating point\n    - Twice x, as floats.\n    """\n'
                "    assert student.double(np.uint8(200)) == 400, 'uint8 input overflowed'\n")


def test_hidden_tests_that_name_stated_requirements_pass():
    assert requirements.unstated_requirements(_stated_master(CHECKS_UINT8)) == []


@pytest.mark.parametrize("hidden, complaint", [
    (CHECKS_UINT8.replace("    - may be a uint8 array: compute in floating point\n", "    - may be a float16 array\n"),
     "_checker_test_double checks 'may be a float16 array', which the exercise's text and docstrings do not state"),
    (CHECKS_UINT8.replace('"""Stated requirements checked:\n\n    - may be a uint8 array: compute in floating point\n'
                          '    - Twice x, as floats.\n    """\n', ""),
     "_checker_test_double names no stated requirement"),
    ("def _hidden_test_double_is_own():\n    assert double.__module__ == '__main__'\n\n_hidden_test_double_is_own()\n",
     "_hidden_test_double_is_own names no stated requirement"),
    (CHECKS_UINT8 + "assert double(3) == 6\n", "is outside a hidden test"),
])
def test_a_hidden_test_that_checks_what_was_not_stated_is_refused(hidden, complaint):
    problems = requirements.unstated_requirements(_stated_master(hidden))
    assert any(problem.startswith("double_test: ") and complaint in problem for problem in problems), problems


def test_the_solution_is_not_part_of_what_is_stated():
    nb = _stated_master(CHECKS_UINT8.replace("Twice x, as floats.", "return 2.0 * x"))
    assert any("'return 2.0 * x'" in problem for problem in requirements.unstated_requirements(nb))


def test_the_masters_hidden_tests_check_only_stated_requirements_and_the_uint8_one_needs_its_sentence():
    master = nbformat.read(ROOT / "source" / "clustering" / "clustering.ipynb", as_version=4)
    assert requirements.unstated_requirements(master) == []
    # Exercise 1.2 without the sentence that says X may hold uint8 values (as it once was):
    text = next(cell for cell in master.cells if notebooks.grade_id(cell) == "ex12_text")
    sentence = next(line for line in text.source.split("\n\n") if "integer dtype such as `uint8`" in line)
    text.source = text.source.replace(sentence, "")
    problems = requirements.unstated_requirements(master)
    assert problems and all(problem.startswith("update_representatives_test: ") for problem in problems), problems
    assert any("integer dtype such as `uint8`" in problem for problem in problems)


def test_a_build_is_current_until_anything_it_read_or_wrote_changes(tmp_path):
    """What lets make grade-all skip the build: the record of the last build against the files now."""
    from coursekit.common.course import course_files

    root = tmp_path / "course"
    for path in [root / "source" / "lab" / "lab.ipynb", root / "nbgrader_config.py", root / "release" / "lab" / "lab.ipynb",
                 root / "release" / "lab" / "data.npz", root / "notebooks" / "lab_solution.ipynb",
                 *course_files(root).values()]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"made for the test: {path.name}")
    assert not build.build_is_current(root, "lab"), "no build recorded"
    (root / build.BUILD_RECORD).parent.mkdir()
    (root / build.BUILD_RECORD).write_text('{"fingerprint": "%s"}' % build.build_fingerprint(root, "lab"))
    assert build.build_is_current(root, "lab")
    for changed in ("source/lab/lab.ipynb", "nbgrader_config.py", "release/lab/data.npz", "notebooks/lab_solution.ipynb"):
        before = (root / changed).read_text()
        (root / changed).write_text(before + " edited by hand")
        assert not build.build_is_current(root, "lab"), changed
        (root / changed).write_text(before)
        assert build.build_is_current(root, "lab"), changed
    (root / "release" / "lab" / "extra.txt").write_text("a file nobody built")
    assert not build.build_is_current(root, "lab")
    (root / "release" / "lab" / "extra.txt").unlink()
    (root / "notebooks" / "lab_solution.ipynb").unlink()
    assert not build.build_is_current(root, "lab"), "something the build writes is missing"
