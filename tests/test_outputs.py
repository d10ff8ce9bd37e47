"""Output bounds and stream merging (coursekit.grading.outputs), and calibrated time limits (coursekit.grading.timing)."""

import json
import random
import re
import time

import nbformat
import pytest
from nbclient.client import _RGX_CARRIAGERETURN

from coursekit.grading import timing
from coursekit.grading.outputs import OutputBudget, bounded_error, merge_streams, render_terminal_text


def _reference_render(text):
    """The quadratic way: nbclient's carriage-return rule, after removing each character
    a backspace follows (nbclient's own backspace pattern, ``"[^\\n]\\b"``, is a
    word boundary in a regular expression, not a backspace)."""
    old = None
    while old is None or len(text) < len(old):
        old = text
        text = re.sub("[^\n\x08]\x08", "", text)
    return _RGX_CARRIAGERETURN.sub("", text)


@pytest.mark.parametrize("seed", range(200))
def test_terminal_rendering_matches_the_quadratic_reference(seed):
    rng = random.Random(seed)
    text = "".join(rng.choice("ab\r\n\b ") for _ in range(rng.randrange(0, 40)))
    assert render_terminal_text(text) == _reference_render(text), repr(text)


def test_terminal_rendering_is_linear_on_long_lines():
    """nbclient's regular expression is quadratic on a long line; ours is not."""
    timings = []
    for size in (200_000, 1_600_000):
        text = ("x" * size + "\r") * 3 + "y" * size
        start = time.perf_counter()
        assert render_terminal_text(text) == "y" * size
        timings.append(time.perf_counter() - start)
    # 8x the text: well under 8x8 the time (quadratic) on any machine.
    assert timings[1] < 20 * max(timings[0], 1e-3)


def _stream(name, text):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_streams_merge_into_their_first_output_and_keep_other_outputs_in_place():
    outputs = [_stream("stdout", "a"), _stream("stderr", "warn\n"), _stream("stdout", "b\rc\n"),
               nbformat.v4.new_output("display_data", data={"text/plain": "fig"}), _stream("stderr", "again\n")]
    merged = merge_streams(outputs)
    assert [(o.output_type, o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "c\n"), ("stream", "stderr", "warn\nagain\n"), ("display_data", None, None)]


def _message(kind, **content):
    return {"msg_type": kind, "content": content, "parent_header": {"msg_id": "m"}, "header": {}, "metadata": {}}


def test_a_flood_of_stream_output_is_cut_at_the_cell_limit_and_counted():
    budget = OutputBudget(cell_chars=1000, cell_lines=50, notebook_chars=10_000)
    budget.start_cell()
    budget.complete = True
    kept = [budget.admit(_message("stream", name="stdout", text="x" * 300 + "\n")) for _ in range(10)]
    admitted = [m for m in kept if m is not None]
    assert sum(len(m["content"]["text"]) for m in admitted) == 1000
    note = budget.end_cell()
    assert "output truncated by the grader" in note and f"{10 * 301 - 1000:,} more characters" in note


def test_the_line_limit_holds_for_many_short_lines():
    budget = OutputBudget(cell_chars=10**6, cell_lines=100, notebook_chars=10**7)
    budget.complete = True
    first = budget.admit(_message("stream", name="stdout", text="1\n" * 1000))
    assert first["content"]["text"] == "1\n" * 100
    assert budget.admit(_message("stream", name="stdout", text="more\n")) is None
    assert budget.end_cell()


def test_errors_are_always_kept_but_bounded():
    budget = OutputBudget(cell_chars=10, cell_lines=1, notebook_chars=10)
    budget.complete = True
    budget.admit(_message("stream", name="stdout", text="x" * 100))
    error = budget.admit(_message("error", ename="AssertionError", evalue="v" * 10**6,
                                  traceback=[f"frame {i}" for i in range(1000)]))
    assert error is not None
    assert len(error["content"]["evalue"]) < 5000
    assert len(error["content"]["traceback"]) == 3 + 1 + 12


def test_clear_output_frees_the_cell_s_room_and_the_notebook_limit_spans_cells():
    budget = OutputBudget(cell_chars=100, cell_lines=100, notebook_chars=150)
    budget.complete = True
    assert budget.admit(_message("display_data", data={"text/plain": "x" * 90})) is not None
    budget.cleared()
    assert budget.admit(_message("display_data", data={"text/plain": "y" * 90})) is not None
    assert budget.end_cell() == ""
    budget.start_cell()
    budget.complete = True
    assert budget.admit(_message("display_data", data={"text/plain": "z" * 90})) is None  # 90 + 90 > 150
    assert budget.end_cell()


def test_a_cell_whose_output_did_not_all_arrive_says_so():
    budget = OutputBudget(100, 100, 1000)
    budget.start_cell()
    assert "did not arrive" in budget.end_cell()


def test_bounded_error_keeps_short_errors_as_they_are():
    content = {"ename": "ValueError", "evalue": "bad", "traceback": ["a", "b"]}
    assert bounded_error(content) == content


# -- calibrated time limits ---------------------------------------------------------------
def _cell(source, grade_id=None):
    cell = nbformat.v4.new_code_cell(source)
    if grade_id:
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": False, "solution": False, "locked": True,
                                     "schema_version": 3}
    cell.metadata["execution"] = {"iopub.execute_input": "2026-11-30T10:00:00.000Z",
                                  "shell.execute_reply": "2026-11-30T10:00:02.500Z"}
    return cell


def test_limits_are_a_multiple_of_the_solution_s_time_with_a_floor_and_a_cap(tmp_path):
    executed = nbformat.v4.new_notebook(cells=[_cell("slow()", "sweep"), _cell("x = 1")])
    executed.cells[1].metadata["execution"]["shell.execute_reply"] = "2026-11-30T10:00:00.010Z"
    master = tmp_path / "master.ipynb"
    nbformat.write(executed, master)
    path = tmp_path / timing.CELL_TIMES
    timing.write_cell_times(path, master, timing.cell_seconds(executed))
    assert timing.cell_times_current(path, master)
    limits = timing.TimeLimits.for_assignment(path)
    assert limits.for_cell(_cell("slow()", "sweep"), cap=120) == 50.0  # 20 x 2.5 s
    assert limits.for_cell(_cell("x  =  1"), cap=120) == 10.0  # the floor; found by its source
    assert limits.for_cell(_cell("anything else"), cap=120) == limits.other_cells
    assert limits.for_cell(_cell("slow()", "sweep"), cap=30) == 30  # the hard cap
    assert limits.notebook_budget(cap=600) == 180.0
    assert json.loads(path.read_text())["total_seconds"] == 2.5
    nbformat.write(nbformat.v4.new_notebook(cells=[_cell("changed")]), master)
    assert not timing.cell_times_current(path, master)


def test_without_a_table_the_hard_limits_apply(tmp_path):
    limits = timing.TimeLimits.for_assignment(tmp_path / "missing.json")
    assert limits.for_cell(_cell("x"), cap=120) == 120
    assert limits.notebook_budget(cap=600) == 600


def test_the_committed_table_matches_the_master_and_covers_every_code_cell():
    from coursekit.common.paths import ROOT

    source = ROOT / "source" / "clustering"
    path = source / timing.CELL_TIMES
    assert timing.cell_times_current(path, source / "clustering.ipynb"), "run `make build` to recalibrate"
    table = json.loads(path.read_text())["cells"]
    master = nbformat.read(source / "clustering.ipynb", as_version=4)
    missing = [timing.cell_keys(c)[0] for c in master.cells
               if c.cell_type == "code" and not any(k in table for k in timing.cell_keys(c))]
    assert missing == []
