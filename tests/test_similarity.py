"""Similar submissions (coursekit.insight.similarity): found through disguises, never for independent work.

The unit tests build students from the master's solutions (a disguised copy as
the demo's Casey makes it, an edited docstring, blank and template-only
notebooks, hostile text). The class test uses the synthetic class of
``bench/similarity_class.py``: 30 independent correct solutions in different
styles and three copied pairs (renamed variables, reordered functions,
reworded written answers).
"""

import copy
import json
import os
import subprocess
import sys

import pytest

from bench import similarity_class
from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.insight import similarity
from coursekit.steps import demo, report


def _as_student(nb):
    """``nb`` as a student hands it in: no solution markers."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.source = "\n".join(line for line in cell.source.splitlines()
                                if line.strip() not in (notebooks.SOLUTION_BEGIN, notebooks.SOLUTION_END))
    return nb


@pytest.fixture(scope="module")
def templates(master_notebook):
    return similarity.templates_from(master_notebook)


@pytest.fixture(scope="module")
def students(master_notebook, release_notebook):
    """{student: notebook}: ada (the solution), casey (ada disguised), pat (her own Part 1), two blanks."""
    return {
        "ada": _as_student(master_notebook),
        "casey": _as_student(demo.disguised_copy(master_notebook)),
        "pat": _as_student(demo.partial_submission(master_notebook, release_notebook)),
        "bo": release_notebook,
        "bea": release_notebook,
    }


def _pairs(students, templates, **options):
    answers = {name: similarity.answers_of(nb, templates) for name, nb in students.items()}
    return {(p.first, p.second): p for p in similarity.similar_pairs(answers, templates, **options)}


def test_a_disguised_copy_is_found_and_independent_or_blank_work_is_not(students, templates):
    pairs = _pairs(students, templates)
    assert list(pairs) == [("ada", "casey")], {k: (p.code_score, p.written_score) for k, p in pairs.items()}
    pair = pairs[("ada", "casey")]
    assert pair.code_score > 0.95 and pair.written_score == 1.0
    # Below the threshold, Pat's own Part 1 shares little with Ada's; the two blank notebooks share nothing.
    everything = _pairs(students, templates, threshold=0.01)
    assert everything[("ada", "pat")].code_score < 0.5
    assert not any("bo" in pair or "bea" in pair for pair in everything), "the template alone is never similar"


def test_an_edited_docstring_does_not_hide_or_fake_anything(students, templates):
    edited = copy.deepcopy(students["casey"])
    cell = next(c for c in edited.cells if notebooks.grade_id(c) == "retrieve_info")
    cell.source = cell.source.replace("among its members.", "among its members (my note: uses bincount).")
    pairs = _pairs({"ada": students["ada"], "casey": edited}, templates)
    assert pairs[("ada", "casey")].code_score > 0.95


def test_only_answer_cells_count(students, templates, master_notebook):
    """Outputs, demonstration cells and a student's own extra cells are not compared."""
    padded = copy.deepcopy(students["pat"])
    extra = copy.deepcopy(next(c for c in students["ada"].cells if notebooks.grade_id(c) == "kmeans"))
    extra.metadata = {}  # a plain cell holding Ada's kmeans: not an answer cell
    padded.cells.append(extra)
    pairs = _pairs({"ada": students["ada"], "pat": padded}, templates, threshold=0.01)
    assert pairs[("ada", "pat")].code_score < 0.5


def test_the_threshold_is_checked(students, templates):
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            _pairs(students, templates, threshold=bad)
    command = [sys.executable, "-m", "coursekit", "report", "--similarity-threshold", "1.5"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "1.5: a share between 0 (exclusive) and 1" in done.stderr


SCORES_IN_A_FRESH_PROCESS = """
import json, sys
import nbformat
from coursekit.steps import demo
from coursekit.insight import similarity
master = nbformat.read(sys.argv[1], as_version=4)
templates = similarity.templates_from(master)
students = {"ada": master, "casey": demo.disguised_copy(master)}
answers = {s: similarity.answers_of(nb, templates) for s, nb in students.items()}
pairs = similarity.similar_pairs(answers, templates, threshold=0.01)
print(json.dumps([[p.first, p.second, p.code_score, p.written_score] for p in pairs]))
"""


def test_the_same_answers_get_the_same_scores_in_every_process():
    """copydetect hashes with Python's hash(), which is seeded per process; the fingerprints here are not."""
    master = ROOT / "source" / "clustering" / "clustering.ipynb"
    runs = []
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", SCORES_IN_A_FRESH_PROCESS, str(master)], cwd=ROOT,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED=seed), check=True)
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1] and runs[0]


def test_the_pair_page_shows_student_text_as_text(students, templates):
    hostile = copy.deepcopy(students["ada"])
    for cell in hostile.cells:
        if notebooks.grade_id(cell) == "kmeans":
            cell.source += "\n# </pre><script>alert('x')</script><img src=http://example.org/x.png>"
        if notebooks.grade_id(cell) == "question1":
            cell.source += "\n\n<script>alert('y')</script>"
    copied = copy.deepcopy(hostile)
    pairs = _pairs({"ada": hostile, "zed": copied}, templates)
    page = report.pair_page_html("clustering", 1, pairs[("ada", "zed")], 0.6, templates)
    assert "<script" not in page and "<img" not in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(" in page and "&lt;script&gt;alert(" in page.split("Written answers")[1]
    assert page.count("<mark>") > 10 and "A lead for a person to check, never a verdict." in page
    # Template lines are shown dimmed, never marked.
    assert '<span class="template">    Parameters\n</span>' in page


@pytest.fixture(scope="module")
def synthetic_class(master_notebook, templates):
    """{student: answers} of the synthetic class (30 independent students and three copies)."""
    notebooks_by_student = similarity_class.synthetic_class(master_notebook)
    return {student: similarity.answers_of(nb, templates) for student, nb in notebooks_by_student.items()}


def test_in_a_synthetic_class_the_copies_are_found_and_independent_work_is_not(synthetic_class, templates):
    pairs = similarity.similar_pairs(synthetic_class, templates)
    found = {frozenset((p.first, p.second)) for p in pairs}
    copies = {frozenset(pair) for pair in similarity_class.COPIED_PAIRS}
    assert found == copies, [(p.first, p.second, round(p.code_score, 2), round(p.written_score, 2)) for p in pairs]
    everything = similarity.similar_pairs(synthetic_class, templates, threshold=0.01)
    independent = [p.score for p in everything if frozenset((p.first, p.second)) not in copies]
    copied = [p.score for p in everything if frozenset((p.first, p.second)) in copies]
    # A margin on both sides of the default threshold, not a near miss.
    assert max(independent) < similarity.DEFAULT_THRESHOLD - 0.1, sorted(independent)[-5:]
    assert min(copied) > similarity.DEFAULT_THRESHOLD + 0.1, copied
