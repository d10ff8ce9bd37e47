"""The synthetic class for the similarity detector (bench/similarity_class.py).

Every code variant is a correct solution: the notebook with variant v in every
code cell (v = 1, 2, 3; variant 0 is the master's), and the copies whose code
differs from their original's, earn every autograded point without an error
when graded as a class (the slowest demonstration cells left out). The independent students keep their promises (few shared
variants and phrasings, deterministic for a seed), and the copies are
disguised the way they claim.
"""

import ast
import io
import re
import tokenize

import nbformat
import pytest
from conftest import without_slow_demonstrations
from pygments.lexers import PythonLexer
from pygments.token import Comment, Name, Text

from bench.similarity_class import (
    CODE_CELLS,
    COPIED_PAIRS,
    COPY_SOURCES,
    MAX_SHARED_CODE,
    MAX_SHARED_WRITTEN,
    N_PHRASINGS,
    N_VARIANTS,
    VARIANTS,
    WRITTEN,
    WRITTEN_CELLS,
    copied,
    function_locals,
    independent_choices,
    solution_regions,
    solved_notebook,
    synthetic_class,
    variant_source,
)
from coursekit.common import notebooks
from coursekit.common.results import GRADED
from coursekit.steps.grade import grade

ASSIGNMENT = "clustering"
#: What the master's code earns (its written answers wait for a grader).
AUTOGRADED_POINTS = 23


@pytest.fixture(scope="module")
def the_class(master_notebook):
    return synthetic_class(master_notebook)


def _cells(nb):
    return {notebooks.grade_id(c): c for c in nb.cells if notebooks.grade_id(c)}


def _uniform(master, variant):
    choice = {gid: variant for gid in CODE_CELLS}
    written = {q: (variant,) * len(WRITTEN[q]) for q in WRITTEN_CELLS}
    return solved_notebook(master, choice, written, f"Uniform Variant{variant}", f"2026770{variant}")


def _problems(nb):
    """What went wrong in a graded notebook: each error, and each test cell that wrote to stderr."""
    problems = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"{notebooks.grade_id(cell)}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr" and notebooks.is_test_cell(cell):
                problems.append(f"{notebooks.grade_id(cell)} wrote to stderr: {output.text[:300]}")
    return problems


#: Variant 0 is the master's own solution (test_autograde_release grades it); the "written" copy has its
#: original's code unchanged (test_the_written_copy_keeps_the_code_and_rewords_the_answers).
RUN = [f"variant{v}" for v in range(1, N_VARIANTS)] + sorted(c for c, (_, how) in COPY_SOURCES.items() if how != "written")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, copy_course, master_notebook, the_class):
    """The notebooks of :data:`RUN`, without the slow demonstrations, graded as a class: (course, {name: result})."""
    handed_in = {which: without_slow_demonstrations(
        _uniform(master_notebook, int(which[-1])) if which.startswith("variant") else the_class[which])
        for which in RUN}
    course = copy_course(tmp_path_factory.mktemp("variants") / "course", handed_in)
    return course, {r.student: r for r in grade(course, ASSIGNMENT, workers=2, progress=False)}


@pytest.mark.slow
@pytest.mark.parametrize("which", RUN)
def test_every_variant_and_every_copy_passes_the_hidden_tests(which, graded):
    """Graded as students' work is (sandbox, hidden tests, checker): every autograded point, and no error anywhere."""
    course, results = graded
    nb = nbformat.read(course / "autograded" / which / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert _problems(nb) == []
    assert (results[which].status, results[which].score) == (GRADED, AUTOGRADED_POINTS), results[which]


def test_the_variants_cover_the_master_s_answer_cells(master_notebook):
    code = [notebooks.grade_id(c) for c in master_notebook.cells
            if notebooks.is_solution_cell(c) and c.cell_type == "code"]
    written = [notebooks.grade_id(c) for c in master_notebook.cells
               if notebooks.is_solution_cell(c) and c.cell_type == "markdown"]
    assert list(CODE_CELLS) == code and set(VARIANTS) == set(code)
    assert list(WRITTEN_CELLS) == written and set(WRITTEN) == set(written)
    for gid, cell in _cells(master_notebook).items():
        if gid in VARIANTS:
            assert len(VARIANTS[gid]) == N_VARIANTS - 1
            assert all(len(v) == len(solution_regions(cell.source)) for v in VARIANTS[gid]), gid


def _structure(code):
    """What the detector sees: pygments tokens, every identifier one letter, no comments or whitespace."""
    tokens = []
    for kind, text in PythonLexer().get_tokens(code):
        if kind in Comment or kind in Text or not text.strip():
            continue
        tokens.append("N" if kind in Name else text)
    return tuple(tokens)


def test_the_variants_differ_in_structure_not_only_in_names(master_notebook):
    for gid, cell in _cells(master_notebook).items():
        if gid not in VARIANTS:
            continue
        sources = [variant_source(cell.source, gid, v) for v in range(N_VARIANTS)]
        for source in sources:
            ast.parse(source)
            assert "BEGIN SOLUTION" not in source and "END SOLUTION" not in source
        # compression_functions: each of its three functions differs
        for region in range(len(solution_regions(cell.source))):
            bodies = [_structure(variant_source(cell.source, gid, v).split("def ")[region + 1])
                      for v in range(N_VARIANTS)]
            assert len(set(bodies)) == N_VARIANTS, f"{gid}: two variants have the same structure"


def test_written_answers_have_distinct_phrasings_that_split_into_sentences():
    for question, slots in WRITTEN.items():
        assert len(slots) == 3
        for slot in slots:
            assert len(slot) == N_PHRASINGS and len(set(slot)) == N_PHRASINGS, question
            for phrasing in slot:
                # "." followed by a space ends a sentence, and the next one starts with a capital or math
                sentences = re.split(r"(?<=\.)\s+", phrasing)
                assert all(s.endswith(".") and (s[0].isupper() or s[0] == "$") for s in sentences), phrasing


def test_a_solved_notebook_is_a_student_s(master_notebook):
    choice = {gid: i % N_VARIANTS for i, gid in enumerate(CODE_CELLS)}
    written = {"question1": (0, 1, 2), "question2": (3, 2, 1), "question3": (1, 1, 0)}
    nb = solved_notebook(master_notebook, choice, written, "Ada Byron", "20261234")
    assert all("SOLUTION" not in c.source for c in nb.cells)
    name_cell = next(c for c in nb.cells if c.source.startswith("NAME"))
    assert name_cell.source == 'NAME = "Ada Byron"\nSTUDENT_ID = "20261234"'
    cells = _cells(nb)
    assert cells["question2"].source == " ".join([WRITTEN["question2"][0][3], WRITTEN["question2"][1][2],
                                                  WRITTEN["question2"][2][1]])
    assert "mode=\"P\"" not in cells["compression_functions"].source  # variant 2 uses Image.frombytes
    assert "squared_distances" in cells["assign_clusters"].source  # variant 0, the master's
    assert "np.bincount" in cells["update_representatives"].source  # variant 1
    assert "### BEGIN SOLUTION" in _cells(master_notebook)["kmeans"].source, "the master was modified"


def test_independent_choices_keep_their_promises():
    choices = independent_choices(30, seed=0)
    assert len(choices) == 30
    assert choices == independent_choices(30, seed=0)
    assert choices != independent_choices(30, seed=1)
    flat = [([code[g] for g in CODE_CELLS], [i for q in WRITTEN_CELLS for i in written[q]])
            for code, written in choices]
    assert all(len(w) == 9 and set(c) <= set(range(N_VARIANTS)) for c, w in flat)
    for a in range(len(flat)):
        for b in range(a):
            assert sum(x == y for x, y in zip(flat[a][0], flat[b][0])) <= MAX_SHARED_CODE
            assert sum(x == y for x, y in zip(flat[a][1], flat[b][1])) <= MAX_SHARED_WRITTEN
            assert flat[a] != flat[b]


class _Normalise(ast.NodeTransformer):
    def visit_Name(self, node):  # noqa: N802
        return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)


def _normalised(source):
    return ast.dump(_Normalise().visit(ast.parse(source)))


def _comments(source):
    return sum(token.type == tokenize.COMMENT for token in tokenize.generate_tokens(io.StringIO(source).readline))


def _functions(source):
    return {f.name: f for f in ast.parse(source).body if isinstance(f, ast.FunctionDef)}


def test_the_class_and_its_copies(the_class):
    assert list(the_class) == [f"indep{i:02d}" for i in range(1, 31)] + list(COPY_SOURCES)
    assert COPIED_PAIRS == {("indep03", "copy_renamed"), ("indep07", "copy_reordered"), ("indep11", "copy_written")}
    names = {next(c for c in nb.cells if c.source.startswith("NAME")).source for nb in the_class.values()}
    assert len(names) == len(the_class), "every student has a name and id of their own"


@pytest.mark.parametrize("how", ["renamed", "reordered"])
def test_renamed_copies_rename_every_local_and_nothing_else(the_class, how):
    copy_id = f"copy_{how}"
    original, disguised = _cells(the_class[COPY_SOURCES[copy_id][0]]), _cells(the_class[copy_id])
    for gid in CODE_CELLS:
        before, after = original[gid].source, disguised[gid].source
        assert before != after, gid
        assert _comments(after) > _comments(before), f"{gid}: no comment added"
        old_functions, new_functions = _functions(before), _functions(after)
        assert set(old_functions) == set(new_functions), gid
        for name, old in old_functions.items():
            new = new_functions[name]
            # same program once the names are normalised (parameters, attributes, keywords untouched)
            assert _normalised(ast.unparse(old)) == _normalised(ast.unparse(new)), f"{gid}.{name}"
            used = {n.id for n in ast.walk(new) if isinstance(n, ast.Name)}
            assert not function_locals(old) & used, f"{gid}.{name} kept local names {function_locals(old) & used}"
    order = list(_functions(disguised["compression_functions"].source))
    same = order == ["bits_per_pixel_ratio", "save_palette_png", "compression_ratio"]
    assert same == (how == "renamed")


def test_the_written_copy_keeps_the_code_and_rewords_the_answers(the_class):
    original, disguised = _cells(the_class["indep11"]), _cells(the_class["copy_written"])
    for gid in CODE_CELLS:
        assert original[gid].source == disguised[gid].source
    for question in WRITTEN_CELLS:
        before, after = original[question].source, disguised[question].source
        sentences_before, sentences_after = re.split(r"(?<=\.)\s+", before), re.split(r"(?<=\.)\s+", after)
        assert len(sentences_before) == len(sentences_after) and sentences_before[0] != sentences_after[0]
        assert sorted(before.lower().split()) != sorted(after.lower().split()), "no word was swapped"
        assert abs(len(after.split()) - len(before.split())) <= 10


def test_copies_are_deterministic_and_reject_unknown_methods(the_class):
    nb = the_class["indep05"]
    assert copied(nb, "renamed", seed=4) == copied(nb, "renamed", seed=4)
    assert copied(nb, "renamed", seed=4) != copied(nb, "renamed", seed=5)
    with pytest.raises(ValueError):
        copied(nb, "translated")
