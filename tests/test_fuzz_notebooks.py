"""Notebooks mutated at random (Hypothesis): every one gets a status and a one-line reason, never a traceback.

Two tiers:

- fast: thousands of mutations of a small notebook's JSON and bytes (a node
  replaced by any JSON value, a key dropped, nesting thousands of levels
  deep, bytes cut off or replaced) go through what reads a submission before
  grading: :func:`coursekit.common.notebooks.why_unreadable`, the collect step's
  readers (``STUDENT_ID``, ``NAME``), the repair step and the sanitizer of
  the pages. Each either accepts the notebook or says why not in one line;
  nothing else may be raised.
- slow: a class of mutated release notebooks, the regression corpus
  (``tests/fuzz_corpus/``: files that once ended in a traceback) and one
  honest student go through collect, grade (2 workers), feedback and report:
  every student ends with a status, every reason is one line without a
  traceback, and the honest student's score is what it is alone.
"""

import copy
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coursekit.common.notebooks import MAX_JSON_DEPTH, why_unreadable
from coursekit.common.paths import ROOT
from coursekit.common.results import FAILED, GRADED
from coursekit.grading.repair import NotThisAssignment, align
from coursekit.pages.sanitize import SanitizeStudentContent
from coursekit.steps import collect as collect_step
from coursekit.steps.demo import with_student

CORPUS = Path(__file__).parent / "fuzz_corpus"
ASSIGNMENT = "clustering"

# Any JSON value, nested a little.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _small_release():
    """The first cells of the release with nbgrader metadata (Part 0 and Exercise 1.1): small, still recognisable."""
    nb = nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nb.cells = nb.cells[:12]
    return json.loads(nbformat.writes(nb))


BASE = _small_release()


def _paths(node, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


ALL_PATHS = [p for p in _paths(BASE) if p]
# The paths a careless or hostile student (or an editor) is likely to touch.
LIKELY = [p for p in ALL_PATHS if p[0] in ("metadata", "nbformat", "nbformat_minor")
          or (p[0] == "cells" and len(p) <= 5)]


def _set(node, path, value):
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _drop(node, path):
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        del node[path[-1]]


@st.composite
def mutated_json(draw):
    """The small release with one to three nodes replaced, dropped or buried deep."""
    nb = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(nb) if p]
        path = draw(st.sampled_from(paths) | st.sampled_from([p for p in LIKELY if p in set(paths)] or paths))
        action = draw(st.sampled_from(["replace", "drop", "deep", "grade_id"]))
        try:
            if action == "replace":
                _set(nb, path, draw(JSON))
            elif action == "drop":
                _drop(nb, path)
            elif action == "deep":  # written into the bytes (see mutated_bytes): too deep to build in Python
                depth = draw(st.sampled_from([MAX_JSON_DEPTH - 8, MAX_JSON_DEPTH + 1, 5000]))
                _set(nb, path, f"__DEEP_{depth}__")
            else:
                _set(nb, path, draw(st.sampled_from(['"><img src=x>', "", "x" * 300, "cell-1", None, 3])))
        except (KeyError, IndexError, TypeError):
            pass  # the path vanished under an earlier mutation
    return nb


@st.composite
def mutated_bytes(draw):
    """The JSON of a mutated notebook, then maybe cut off or with bytes replaced."""
    data = json.dumps(draw(mutated_json())).encode()
    for depth in (MAX_JSON_DEPTH - 8, MAX_JSON_DEPTH + 1, 5000):
        data = data.replace(f'"__DEEP_{depth}__"'.encode(), b"[" * depth + b"]" * depth)
    action = draw(st.sampled_from(["as is", "as is", "cut", "bytes"]))
    if action == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    elif action == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at + 1:]
    return data


def assert_one_line(reason):
    assert isinstance(reason, str) and reason and "\n" not in reason and len(reason) <= 300, repr(reason)
    assert "Traceback" not in reason and "[ERROR]" not in reason, reason


MASTER = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutated_bytes())
def test_every_mutated_notebook_is_read_or_refused_in_one_line(data):
    reason = why_unreadable(data)
    for reader in (collect_step.student_id_in_notebook, collect_step.name_in_notebook):
        try:
            reader(data)
        except ValueError as error:
            assert_one_line(str(error))
    if reason is not None:
        assert_one_line(reason)
        return
    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    try:
        repaired, notes = align(nb, MASTER)
    except NotThisAssignment as error:
        assert_one_line(str(error))
        return
    for note in notes:
        assert_one_line(note)
    nbformat.writes(repaired)  # what nbgrader does with it
    assert all(re.match(r"^[a-zA-Z0-9-_]{1,64}$", cell["id"]) for cell in repaired.cells), "ids nbformat accepts"
    SanitizeStudentContent()(copy.deepcopy(repaired), {})


def test_the_corpus_is_refused_with_the_reasons_it_should_get():
    expected = json.loads((CORPUS / "reasons.json").read_text())
    for name, reason in expected.items():
        got = why_unreadable((CORPUS / name).read_bytes())
        assert got == reason, name
    assert why_unreadable(b"{" * 100_000 + b"}" * 100_000) == (
        f"not a readable notebook: its JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    assert why_unreadable(b" " * 60_000_000).startswith("too big for a notebook: 60 MB")


# --------------------------------------------------------------------------
# The whole pipeline on a class of mutants
# --------------------------------------------------------------------------

@st.composite
def mutated_release(draw):
    """The whole release (a student handing in nothing but the name), mutated as above."""
    nb = json.loads(nbformat.writes(with_student(nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                                                               as_version=4), "Fuzz Student", "20269999")))
    global BASE
    saved, BASE = BASE, nb
    try:
        return draw(mutated_bytes())
    finally:
        BASE = saved


def _class_of_mutants(count):
    found = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutated_release())
    def collect_examples(data):
        found.append(data)

    collect_examples()
    return found[:count]


@pytest.mark.slow
def test_a_class_of_mutants_is_collected_graded_and_reported_without_a_traceback(tmp_path, copy_course,
                                                                                 master_notebook):
    from conftest import without_slow_demonstrations

    from coursekit.steps.feedback import generate_feedback
    from coursekit.steps.grade import grade
    from coursekit.steps.report import write_report

    course = copy_course(tmp_path / "course")
    downloads = tmp_path / "handed-in"
    downloads.mkdir()
    mutants = _class_of_mutants(6)
    files = {f"3000000{i}.ipynb": data for i, data in enumerate(mutants)}
    files.update({f"3100000{i}.ipynb": (CORPUS / name).read_bytes()
                  for i, name in enumerate(sorted(json.loads((CORPUS / "reasons.json").read_text())))})
    honest = without_slow_demonstrations(with_student(master_notebook, "Honest Student", "32000000"))
    files["32000000.ipynb"] = nbformat.writes(honest).encode()
    for name, data in files.items():
        (downloads / name).write_bytes(data)

    collect_step.collect(downloads, course, assignment=ASSIGNMENT)
    results = {r.student: r for r in grade(course, ASSIGNMENT, workers=2, progress=False)}
    collected = {p.name for p in (course / "submitted").iterdir()}
    assert set(results) == collected
    for result in results.values():
        assert result.status in (GRADED, FAILED), result
        if result.status == FAILED:
            assert_one_line(result.reason)
        for note in result.notes:
            assert_one_line(note)
    assert (results["32000000"].status, results["32000000"].score) == (GRADED, 23)
    pages = generate_feedback(course, ASSIGNMENT)
    assert set(pages) == {s for s, r in results.items() if r.status == GRADED}
    reports = write_report(course, ASSIGNMENT, results=list(results.values()))
    assert reports["class_report"].is_file()
