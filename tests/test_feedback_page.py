"""The feedback page's parts: formulas to MathML, the exercise summary, the exporter and its template.

Fast: small made-up notebooks, no grading. The real pages of the demo class
are opened in a browser with the network off in ``test_pipeline.py``.
"""

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursekit.common.paths import ROOT
from coursekit.common.preprocessors import SummarizeExercises, first_line
from coursekit.pages import feedback_page
from coursekit.pages.feedback_page import FeedbackExporter, latex_to_mathml, text_with_math
from coursekit.steps import build


def _graded(cell, grade_id, points, score, solution=False):
    cell.metadata["nbgrader"] = {"grade": True, "solution": solution, "locked": not solution,
                                 "grade_id": grade_id, "points": points, "score": score, "schema_version": 3}
    return cell


def _error(ename, evalue):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _notebook():
    test_ok = _graded(new_code_cell("assert True"), "info_test", 1, 1.0)
    failed = _graded(new_code_cell("assert f(1) == 2"), "objective_test", 1, 0.0)
    failed.outputs = [_error("AssertionError", "J_clust should be the mean\nsecond line")]
    failed_again = _graded(new_code_cell("assert f(2) == 3"), "objective_more_test", 1, 0.0)
    failed_again.outputs = [_error("AssertionError", "not the first failure")]
    todo = _graded(new_code_cell("check()"), "todo_test", 2, 0.0)
    todo.outputs = [_error("NotImplementedError", "")]
    answer = _graded(new_markdown_cell("My answer"), "question1", 2, 1.5, solution=True)
    return new_notebook(cells=[
        new_markdown_cell("# Clustering in Python: the $k$-means algorithm"),
        test_ok,
        new_markdown_cell("# Part 1\n\n## Exercise 1.3: the clustering objective $J^{\\rm clust}$ [2 points]\n\nText."),
        new_code_cell("def f(x): ..."),
        failed,
        failed_again,
        new_markdown_cell("## Running it"),
        new_markdown_cell("### Exercise 2.1: unanswered [2 points]"),
        todo,
        new_markdown_cell("### Question 1 [2 points, graded by hand]"),
        answer,
    ])


def _summary(nb, resources=None):
    _, resources = SummarizeExercises().preprocess(nb, resources or {})
    return resources["exercise_summary"]


# --------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------
def test_a_formula_becomes_mathml():
    inline = latex_to_mathml(r"\|x_i - z_{c_i}\|^2")
    assert inline.startswith("<math") and 'display="inline"' in inline and "<msub>" in inline
    assert 'display="block"' in latex_to_mathml(r"J^{\rm clust}", display=True)


@pytest.mark.parametrize("tex", [r"\frac{1}{", r"\begin{nosuchthing}x"])
def test_a_formula_that_cannot_be_converted_shows_its_tex(tex):
    html = latex_to_mathml(tex)
    assert html.startswith('<code class="tex">') and "<math" not in html


def test_markup_in_a_formula_or_a_heading_stays_text():
    assert "<script" not in latex_to_mathml("<script>alert(1)</script>")
    html = text_with_math("Exercise <b>1</b>: the $k$-means & more")
    assert "&lt;b&gt;1&lt;/b&gt;" in html and "&amp; more" in html and "<math" in html and "$" not in html


# --------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------
def test_graded_cells_are_grouped_under_their_exercise_heading():
    summary = _summary(_notebook())
    assert [e["title"] for e in summary] == [
        "Info", "Exercise 1.3: the clustering objective $J^{\\rm clust}$", "Exercise 2.1: unanswered", "Question 1"]
    assert [(e["score"], e["points"]) for e in summary] == [(1.0, 1.0), (0.0, 2.0), (0.0, 2.0), (1.5, 2.0)]
    assert [e["anchor"] for e in summary] == ["info_test", "objective_test", "todo_test", "question1"]
    assert [e["graded_by_hand"] for e in summary] == [False, False, False, True]


def test_the_message_is_the_first_line_of_the_first_failure():
    objective, todo = _summary(_notebook())[1:3]
    assert objective["message"] == "AssertionError: J_clust should be the mean"
    assert todo["message"] == "not answered yet"  # a bare stub: nothing more to quote
    assert _summary(_notebook())[0]["message"] == ""


def test_an_unfinished_exercise_quotes_its_stub_s_own_sentence():
    nb = _notebook()
    todo = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "todo_test")
    todo.outputs = [_error("NotImplementedError", "Exercise 2.1 is not done yet")]
    assert _summary(nb)[2]["message"] == "not answered yet: Exercise 2.1 is not done yet"


def test_a_long_message_is_cut_with_an_ellipsis():
    assert first_line("x" * 500, 240) == "x" * 239 + "\u2026"
    assert first_line("\n\n  short  \nmore", 240) == "short"


def test_a_failed_test_without_an_error_still_says_so():
    nb = new_notebook(cells=[new_markdown_cell("## Exercise"), _graded(new_code_cell("x"), "x_test", 1, 0.0)])
    assert _summary(nb)[0]["message"] == "this test did not pass"


# --------------------------------------------------------------------------
# The exporter and its template
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page():
    """The small notebook rendered the way ``generate_feedback`` renders a page."""
    config = build.load_course_config(ROOT)
    exporter = FeedbackExporter(config=config)
    nb = _notebook()
    nb.cells.insert(3, new_markdown_cell("$$J^{\\rm clust} = \\frac{1}{N} \\sum_i \\|x_i - z_{c_i}\\|^2$$"))
    nb.cells[5].outputs.append(new_output("stream", name="stdout", text="y" * 3000 + "\n"))
    resources = {"nbgrader": {"notebook": "clustering", "score": 2.5, "max_score": 7, "late_penalty": 0}}
    _, resources = SummarizeExercises().preprocess(nb, resources)
    html, _ = exporter.from_notebook_node(nbformat.from_dict(nb), resources=resources)
    return html


def test_the_page_asks_no_network_for_anything(page):
    assert not re.search(r"<script[^>]*mathjax|MathJax\.Hub", page, re.I)
    assert not re.findall(r"""<(?:script|link|img|iframe)[^>]+(?:src|href)=["']?(?:https?:)?//""", page, re.I)
    assert "font-awesome" not in page and "@import" not in page


def test_the_page_has_its_formulas_as_mathml(page):
    # In the summary and in the notebook: headings (re-parsed by nbconvert for
    # their anchors) keep a plain <math>, which is what browsers draw.
    assert page.count("<math") == 4 and page.count('<math display="block"') == 1 and "ns0:" not in page
    assert "$k$" not in page and "\\rm clust" not in re.sub(r"<pre.*?</pre>", "", page, flags=re.S)


def test_the_page_opens_with_the_summary_not_nbgrader_s_list(page):
    assert "Test cell</a>" not in page
    top = page[page.index('class="summary"'):page.index('id="notebook"')]
    assert "Your score: <strong>2.5</strong>" in top and "of 7 points" in top
    assert "Exercise 1.3: the clustering objective" in top and "AssertionError: J_clust should be the mean" in top
    assert "&lt;" not in top.split("Exercise 1.3")[0]  # no double escaping of the title
    assert re.search(r"<td class=\"points\">\s*0 / 2\s*</td>", top)


def test_long_lines_wrap(page):
    assert "white-space: pre-wrap" in page and "overflow-wrap: anywhere" in page


def test_ansi_colours_keep_their_meaning_and_lose_what_cannot_be_read():
    # IPython's traceback: 256-colour codes (38;5;n) and a bold green; a program's white background.
    text = "\x1b[38;5;66m# a comment\x1b[39m \x1b[1;32mTrue\x1b[0m \x1b[47;31mred on white\x1b[0m \x1b[38;2;1;2;3mtrue colour\x1b[0m"
    html = feedback_page.accessible_ansi2html(text)
    assert "style=" not in html, html  # no inline colour the page's CSS cannot restyle
    assert '<span class="ansi-green-intense-fg ansi-bold">True</span>' in html  # bold: nbconvert's intense
    assert '<span class="ansi-red-fg">red on white</span>' in html
    assert "# a comment" in html and "true colour" in html
    for colour in feedback_page.ANSI_COLOURS.values():
        assert colour in feedback_page.ANSI_CSS
