"""The whole job end to end on the real assignment: the demo class.

One module-scoped run of collect -> grade -> feedback -> report on five
made-up students (perfect, blank, partial and late, Colab-saved, broken),
then checks of what each role gets: statuses and scores, the feedback pages
and the class report in an offline browser, grades.csv and the LMS files.

The last section is formgrader in a real browser, on a copy of the graded
class: JupyterLab is started on it as ``make formgrader`` starts it on the real
course, and in Chromium, by mouse and keyboard, a TA goes the TAs' guide's way (docs/tas/formgrader.md):
Nbgrader menu, Formgrader, Manual Grading, the assignment, the notebook, a
student; types points and a comment for each of the three written questions,
moves to the next student with formgrader's Ctrl+. shortcut and does the same.
Then ``python -m coursekit feedback`` and ``report`` must carry those points
into grades.csv and the class report, and the comments into each student's
feedback page. Along the way: formgrader says nothing about a missing exchange
folder (the course has its own, ``nbgrader_config.py``), lists the students by
name, loads nothing from outside the machine (its grading page took MathJax
from a CDN, and without it its keyboard shortcuts did not work) and raises no
JavaScript error. Screenshots of each screen go to
``tests/screenshots/formgrader_*.png``.
"""

import csv
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import nbformat
import numpy as np
import pytest
from conftest import (SCREENSHOTS, accessibility_problems, canvas_name_ids, canvas_reupload_match, doc_blocks,
                      jupyterlab_server, launched_chromium)
from nbgrader.api import Gradebook

from coursekit import cli
from coursekit.common.paths import ROOT
from coursekit.common.results import FAILED, GRADED, GradeResult
from coursekit.steps import build, demo, feedback, lms, report
from coursekit.steps.grade import summary_table
from coursekit.steps.report import format_number

ASSIGNMENT = "clustering"
#: The notebook's written answers (graded by hand) and their points.
WRITTEN = {"question1": 2, "question2": 1, "question3": 1}
#: What the TA types for the first and the second student formgrader shows: points and a comment per question.
TYPED = [
    {"question1": (2, "Both reasons given: local minimum, several starts."),
     "question2": (0.5, "The ratio is right but the palette size is missing."),
     "question3": (1, "Good: the most common label in the cluster.")},
    {"question1": (1.5, "Only one reason; which start matters too."),
     "question2": (1, "Correct ratio with the palette counted."),
     "question3": (0, "This answer is about a different question.")},
]
#: Student ids by the name formgrader shows ("Last, First"), from the demo class's roster.
STUDENT_IDS = {name: student for name, student, _ in demo.CANVAS_ROSTER}
#: The panel JupyterLab's "Formgrader" command opens: an iframe showing /formgrader.
FORMGRADER_IFRAME = "iframe[src$='/formgrader']"

EXPECTED = {
    "20260001": (GRADED, 23),  # perfect
    "20260002": (GRADED, 1),  # blank: only NAME and STUDENT_ID
    "20260003": (GRADED, 5),  # Part 0 + assign + update; J_clust summed breaks objective and kmeans
    "20260004": (GRADED, 23),  # saved from Colab under "Copy of clustering.ipynb"
    "20260005": (FAILED, None),  # cut-off JSON
}

#: Students whose feedback page is another's in all but the name: {student: the other}.
SAME_PAGE_AS = {"20260004": "20260001"}
#: Students whose feedback page holds nothing of a kind (class of element) that another's lacks: {student: the other}.
#: The blank student's page is the partial one's kinds of content (highlighted code, failures with their tracebacks,
#: unanswered questions) over again; axe-core (colour contrast above all) takes 8 s on it.
SAME_KINDS_AS = {"20260002": "20260003"}
#: Every class name on the page: what kinds of element it has (for SAME_KINDS_AS).
CLASS_NAMES = "[...new Set([...document.querySelectorAll('[class]')].flatMap(e => [...e.classList]))].sort()"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "course"
    outcome = demo.run_demo(root, build_first=False)
    return root, outcome


@pytest.fixture(scope="module")
def chromium(demo_run):
    """One browser for the module, each page in a context of its own, opened once the demo class is graded.

    Every kernel of this module runs in the demo (and in formgrader's server, another process): Playwright's
    event loop runs in this thread while the browser is open (``conftest.chromium``).
    """
    with launched_chromium() as browser:
        yield browser


def test_the_demo_grades_with_a_worker_per_core_unless_told(monkeypatch, tmp_path):
    """``python -m coursekit demo`` grades as ``grade`` does: one worker per core by default, ``--workers N``."""
    asked = []
    monkeypatch.setattr(demo, "run_demo", lambda root, workers=None: asked.append((root, workers)))
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 6)
    assert cli.main(["demo", "--root", str(tmp_path)]) == 0
    assert cli.main(["demo", "--root", str(tmp_path), "--workers", "1"]) == 0
    assert asked == [(tmp_path, 6), (tmp_path, 1)]


def test_the_commands_print_other_libraries_warnings_once_and_none_of_their_progress_lines():
    """accessible-pygments (loaded with pygments' style plugins, as nbconvert's HTML does) calls logging.basicConfig
    at INFO on import: without a handler of the command's own on the root logger, every library's INFO line was
    printed (the demo's output had nbgrader's "Making directory ..." in it)."""
    program = (
        "import logging\nfrom coursekit import cli\ncli.configure_logging()\nimport a11y_pygments\n"
        "logging.getLogger('traitlets').info('Making directory x')\n"
        "logging.getLogger('nbgrader').warning('a warning of nbgrader')\n"
        "logging.getLogger('coursekit.steps.demo').info('a line of ours')\n"
        "logging.getLogger('coursekit.steps.demo').warning('a warning of ours')\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert done.stderr.splitlines() == ["warning: nbgrader: a warning of nbgrader", "a line of ours",
                                        "warning: a warning of ours"], done.stderr


@pytest.mark.slow
def test_every_student_gets_the_expected_status_and_score(demo_run):
    _, outcome = demo_run
    got = {r.student: (r.status, r.score) for r in outcome["results"]}
    assert got == EXPECTED
    broken = next(r for r in outcome["results"] if r.status == FAILED)
    assert broken.reason.startswith("not a readable notebook (invalid JSON: ")


@pytest.mark.slow
def test_written_answers_left_as_released_are_zero_and_wait_for_the_grader(demo_run):
    root, _ = demo_run
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for question in WRITTEN:
            blank = gradebook.find_grade(question, ASSIGNMENT, ASSIGNMENT, "20260002")  # the untouched release
            assert (blank.score, blank.needs_manual_grade) == (0, True), question
            comment = gradebook.find_comment(question, ASSIGNMENT, ASSIGNMENT, "20260002")
            assert comment.auto_comment == "No response."
            answered = gradebook.find_grade(question, ASSIGNMENT, ASSIGNMENT, "20260001")
            assert answered.needs_manual_grade and answered.auto_score is None


@pytest.mark.slow
@pytest.mark.parametrize("page", ["README.md", "docs/tas/index.md"])
def test_the_table_the_docs_show_is_the_one_the_demo_prints(demo_run, page):
    _, outcome = demo_run
    shown = [block.text for block in doc_blocks(page) if block.text.startswith("student   score  max  status")]
    assert shown == [summary_table(outcome["results"]) + "\n"], f"{page} shows another table than make demo prints"


@pytest.mark.slow
def test_the_late_submission_is_marked_late_for_nbgrader(demo_run):
    root, _ = demo_run
    stamp = (root / "submitted" / "20260003" / "clustering" / "timestamp.txt").read_text()
    assert stamp.startswith("2026-11-03 12:00:00")


@pytest.mark.slow
def test_feedback_for_each_graded_student_without_hidden_tests(demo_run):
    root, outcome = demo_run
    master = nbformat.read(root / "source" / "clustering" / "clustering.ipynb", as_version=4)
    secrets = feedback.secret_lines(master)
    assert len(secrets) > 50, "the leak scan must know the hidden-test lines"
    assert sorted(outcome["feedback"]) == ["20260001", "20260002", "20260003", "20260004"]
    for student, page in outcome["feedback"].items():
        text = page.read_text(encoding="utf-8")
        assert feedback.leaked_lines(text, secrets) == [], student
        assert "BEGIN HIDDEN TESTS" not in text and "_hidden_test_" not in text.replace("in _hidden_test_", "")
        assert "Hidden tests ran here" in text
    partial = outcome["feedback"]["20260003"].read_text(encoding="utf-8")
    # The result of a failed hidden test is kept: the assertion message and the points.
    assert "final J_clust differs from the reference run" in partial
    assert re.search(r"Score:\s*0(\.0)?\s*/\s*3(\.0)?", partial)
    assert "NotImplementedError" in outcome["feedback"]["20260002"].read_text(encoding="utf-8")


MATHML = "http://www.w3.org/1998/Math/MathML"
PAGE_STATE = """() => ({
    formulas: document.querySelectorAll('math').length,
    mathml: [...document.querySelectorAll('math')].filter(m => m.namespaceURI === '%s'
                                                            && m.getBoundingClientRect().width > 0).length,
    rawTex: [...document.querySelectorAll('.text_cell_render, .summary')]
        .filter(e => /\\$[^$]+\\$/.test(e.innerText)).map(e => e.innerText.slice(0, 80)),
    overflowing: [...document.querySelectorAll('pre, .summary td')]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 80)),
    pageWidth: document.documentElement.scrollWidth,
    summaryTop: document.querySelector('.summary').getBoundingClientRect().top,
    players: [...document.querySelectorAll('.output_html img')].filter(i => i.naturalWidth > 0).length,
    images: [...document.images].map(i => i.naturalWidth),
    alts: [...document.images].map(i => i.alt),
    buttons: [...document.querySelectorAll('.kmeans-player button')].map(b => [b.textContent.trim(),
                                                                           b.getBoundingClientRect().width]),
    scoreLineBottom: (document.querySelector('.summary p') || document.querySelector('.summary'))
        .getBoundingClientRect().bottom,
    rows: [...document.querySelectorAll('.summary tbody tr')].map(r => [...r.cells].map(c => c.innerText.trim())),
})""" % MATHML


def _offline_page(chromium, width, height):
    """(context, page, requested, script_errors): a page that may load file: and data: URLs only.

    Any other request is refused and recorded in ``requested``; uncaught
    script errors go to ``script_errors``.
    """
    context = chromium.new_context(viewport={"width": width, "height": height})
    requested, script_errors = [], []

    def refuse_the_network(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()

    context.route("**/*", refuse_the_network)
    page = context.new_page()
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    return context, page, requested, script_errors


@pytest.mark.slow
def test_feedback_pages_read_offline_in_a_browser(demo_run, chromium):
    """Each page opened from disk in Chromium, every other request refused: nothing asked for, all drawn."""
    _, outcome = demo_run
    states = {}
    for student, path in sorted(outcome["feedback"].items()):
        context, page, requested, script_errors = _offline_page(chromium, width=1280, height=800)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        state = page.evaluate(PAGE_STATE)
        page.screenshot(path=SCREENSHOTS / f"feedback_{student}.png")
        # axe-core takes 5 to 8 s a page; 20260004's is 20260001's page (the same answers, saved from Colab), and
        # 20260002's holds only the kinds of content of 20260003's (checked below).
        state["classes"] = page.evaluate(CLASS_NAMES)
        checked = student not in SAME_PAGE_AS and student not in SAME_KINDS_AS
        inaccessible = accessibility_problems(page, f"feedback_{student}") if checked else []
        context.close()

        assert inaccessible == [], (student, inaccessible)
        assert requested == [], student
        assert script_errors == [], (student, script_errors)
        assert state["summaryTop"] < 200, "the summary is the first thing on the page"
        assert state["scoreLineBottom"] < 800, "the score is above the fold"
        assert all(width > 0 for width in state["images"]), (student, state["images"])
        assert state["formulas"] > 50 and state["mathml"] == state["formulas"], (student, state["formulas"])
        assert state["rawTex"] == [], student
        assert state["overflowing"] == [] and state["pageWidth"] <= 1280, (student, state["overflowing"])
        rows = {row[0]: row[1:] for row in state["rows"]}
        assert len(rows) == 17, student
        states[student] = state
        if student in SAME_PAGE_AS:  # what axe-core would see is what it saw on the other page
            other = states[SAME_PAGE_AS[student]]
            assert (state["rows"], state["alts"], state["formulas"]) == (other["rows"], other["alts"], other["formulas"])
        assert rows["Exercise 1.1: the partition step"][0] == ("0 / 2" if student == "20260002" else "2 / 2")
        assert rows["Question 1"] == (["0 / 2", "not answered"] if student == "20260002" else
                                      ["\u2013 / 2", "graded by hand; not graded yet"]), student
        if student == "20260003":  # partial: J_clust summed instead of averaged
            assert rows["Exercise 1.3: the clustering objective"][0] == "0 / 1"
            assert rows["Exercise 1.3: the clustering objective"][1].startswith("AssertionError: distances squared")
            assert rows["Exercise 2.1: from image to data matrix"] == [
                "0 / 1", "not answered yet: Exercise 2.1 is not done yet"]
        if student == "20260001":
            # Every figure says what it shows: the course's descriptions (cell metadata "alt"), not nbconvert's default.
            assert len(state["alts"]) >= 10 and all(alt and "No description" not in alt for alt in state["alts"]), \
                state["alts"]
            assert state["players"] >= 1, "the animation player shows its first frame"
            assert len(state["buttons"]) == 9 and all(text and width > 20 for text, width in state["buttons"]), \
                state["buttons"]
            assert all(points.split(" / ")[0] == points.split(" / ")[1] for points, _ in rows.values()
                       if not points.startswith("\u2013")), rows
    for student, other in SAME_KINDS_AS.items():  # what axe-core would check there, it checked on the other page
        assert set(states[student]["classes"]) <= set(states[other]["classes"]), (student, other)


@pytest.mark.slow
def test_grades_csv_matches_the_gradebook_and_leaves_failures_blank(demo_run):
    root, outcome = demo_run
    with open(outcome["reports"]["grades_csv"], newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(EXPECTED)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for student, (status, _) in EXPECTED.items():
            assert rows[student]["status"] == status
            if status == GRADED:
                assert float(rows[student]["total"]) == gradebook.find_submission("clustering", student).score
    assert rows["20260005"]["total"] == "" and "invalid JSON" in rows["20260005"]["reason"]


@pytest.mark.slow
def test_the_class_report_reads_offline_in_a_browser(demo_run, chromium):
    """The TA's page from disk, every other request refused: plots drawn, the summary above the fold."""
    _, outcome = demo_run
    path = outcome["reports"]["class_report"]
    context, page, requested, script_errors = _offline_page(chromium, width=1280, height=800)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    state = page.evaluate("""() => ({
        images: [...document.images].map(i => [i.alt, i.naturalWidth, i.getBoundingClientRect().width]),
        pageWidth: document.documentElement.scrollWidth,
        summaryBottom: [...document.querySelectorAll('p')].find(p => p.textContent.includes("totals"))
            .getBoundingClientRect().bottom,
        statuses: [...document.querySelector('table').rows].map(r => r.innerText),
    })""")
    page.screenshot(path=SCREENSHOTS / "class_report.png", full_page=True)
    inaccessible = accessibility_problems(page, "class_report")
    context.close()
    assert inaccessible == []
    assert requested == [] and script_errors == []
    assert len(state["images"]) == 3 and all(natural > 0 and shown > 0 for _, natural, shown in state["images"])
    assert state["pageWidth"] <= 1280
    assert state["summaryBottom"] < 800, "the counts and the totals are above the fold"
    assert any("failed" in row and "1" in row for row in state["statuses"]), state["statuses"]


@pytest.mark.slow
def test_a_ta_opens_the_failures_and_the_similar_pair_from_the_class_report(demo_run, chromium):
    """Why a test fails (a collapsed section, opened by a click) and the copied pair's page, offline at 1280x800."""
    root, outcome = demo_run
    reports = root / "reports" / "clustering"
    with open(reports / "similarity.csv", newline="", encoding="utf-8") as handle:
        pairs = list(csv.DictReader(handle))
    # Casey's notebook is Ada's with other local names and functions in another order; Pat wrote Part 1 herself.
    assert [(p["first"], p["second"]) for p in pairs] == [("20260001", "20260004")]
    assert float(pairs[0]["code_score"]) > 0.95 and pairs[0]["page"] == "similarity/pair-001.html"
    with open(reports / "test_failures.csv", newline="", encoding="utf-8") as handle:
        groups = [row for row in csv.DictReader(handle) if row["test"] == "clustering_objective_test"]
    assert [(g["exception"], g["students"]) for g in groups] == [
        ("NotImplementedError", "20260002"), ("AssertionError", "20260003")]
    assert groups[1]["message_pattern"].startswith("distances squared are <n>, <n> and <n>")

    context, page, requested, script_errors = _offline_page(chromium, width=1280, height=800)
    page.goto(outcome["reports"]["class_report"].as_uri())
    section = page.locator("details", has=page.locator("summary", has_text="clustering_objective_test"))
    message = section.get_by_text("so J_clust = (1 + 1 + 0) / 3 = 0.667; got 2.0.", exact=False)
    assert not message.is_visible(), "collapsed until opened"
    section.locator("summary").click()
    message.wait_for(state="visible")
    section.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "class_report_failures.png")

    page.get_by_role("link", name="pair 1").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/similarity/pair-001.html")
    state = page.evaluate("""() => ({
        heading: document.querySelector('h1').textContent,
        marked: document.querySelectorAll('mark').length,
        columns: [...document.querySelectorAll('.side')].slice(0, 1).map(side =>
            [...side.children].map(c => Math.round(c.getBoundingClientRect().width))),
        pageWidth: document.documentElement.scrollWidth,
        lead: document.body.innerText.includes('A lead for a person to check, never a verdict.'),
    })""")
    page.screenshot(path=SCREENSHOTS / "similar_pair.png")
    inaccessible = accessibility_problems(page, "similar_pair")
    context.close()
    assert inaccessible == []
    assert requested == [] and script_errors == []
    assert state["heading"] == "Similar answers, pair 1: clustering" and state["lead"]
    assert state["marked"] > 20
    (left, right), = state["columns"]
    assert abs(left - right) <= 2 and left > 400, "two columns side by side"
    assert state["pageWidth"] <= 1280


def _canvas_column(path):
    """{Canvas user id: the lab's cell} of a Canvas gradebook CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    column = rows[0].index(demo.CANVAS_COLUMN)
    return {row[1]: row[column] for row in rows[2:]}


@pytest.mark.slow
def test_the_canvas_export_comes_back_with_the_totals(demo_run):
    root, outcome = demo_run
    path = outcome["lms"].paths["canvas_gradebook_import.csv"]
    assert path == root / "reports" / "clustering" / "lms" / "canvas_gradebook_import.csv"
    assert _canvas_column(path) == {"20260001": "23", "20260002": "1", "20260003": "5", "20260004": "23",
                                    "20260005": ""}  # not graded: left as exported, never a silent 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["canvas_feedback_files.zip", "canvas_gradebook_import.csv"]


@pytest.mark.slow
def test_the_canvas_students_pages_go_back_to_their_own_submissions(demo_run):
    root, outcome = demo_run
    handed_in = {}
    with zipfile.ZipFile(root / "downloads" / "canvas_submissions.zip") as download:
        for name in download.namelist():
            user, file_id = canvas_name_ids(name)
            handed_in.setdefault(user, set()).add(file_id)
    with zipfile.ZipFile(outcome["lms"].paths["canvas_feedback_files.zip"]) as returned:
        pages = {canvas_reupload_match(name, handed_in)[0]: returned.read(name) for name in returned.namelist()}
    assert sorted(pages) == [20260001, 20260002, 20260003, 20260004]  # 20260005 was not graded: no page
    for user, data in pages.items():
        assert data == outcome["feedback"][str(user)].read_bytes()


@pytest.mark.slow
def test_class_report_has_its_plots(demo_run):
    _, outcome = demo_run
    page = outcome["reports"]["class_report"].read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "20260005" in page and "not a readable notebook" in page


def test_exit_code_says_when_something_could_not_be_graded(capsys):
    cli.configure_logging()  # as main() does, onto the captured stderr
    ok = [GradeResult("a", GRADED, 1.0, 2.0)]
    assert cli._exit_for(ok) == 0
    assert cli._exit_for(ok + [GradeResult("b", FAILED, None, 2.0, "kernel died")]) == 2
    assert "1 submission(s) could not be graded: b" in capsys.readouterr().err


@pytest.mark.slow
def test_written_answers_graded_in_formgrader_reach_grades_csv_and_feedback(demo_run, tmp_path):
    """Manual grades entered through nbgrader's API (as formgrader does), then feedback and report rerun."""
    root, _ = demo_run
    course = tmp_path / "course"
    shutil.copytree(root, course)  # the module's other tests keep the class as graded
    manual = {"question1": 2.0, "question2": 1.0, "question3": 0.5}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for grade_id, points in manual.items():
            # What formgrader's GradeHandler.put does with a score typed in.
            grade = gradebook.find_grade(grade_id, "clustering", "clustering", "20260001")
            grade.manual_score = points
            grade.needs_manual_grade = False
        gradebook.find_comment("question1", "clustering", "clustering", "20260001").manual_comment = "Well argued."
        gradebook.db.commit()

    pages = feedback.generate_feedback(course, "clustering", students=["20260001"])
    report.write_report(course, "clustering")
    canvas = lms.write_lms_files(course, "clustering", canvas_export=course / "downloads" / "canvas_gradebook_export.csv")

    with open(course / "reports" / "clustering" / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert float(rows["20260001"]["total"]) == 23 + 3.5
    assert float(rows["20260003"]["total"]) == 5, "other students unchanged"
    assert _canvas_column(canvas.paths["canvas_gradebook_import.csv"])["20260001"] == "26.5"
    page = pages["20260001"].read_text(encoding="utf-8")
    top = page[:page.index('id="notebook"')]
    assert "Your score: <strong>26.5</strong>" in top and "still to come" not in top
    assert re.search(r'href="#question1">Question 1</a></td>\s*<td class="points">2 / 2</td>\s*'
                     r'<td class="message">graded by hand</td>', top)
    assert re.search(r'href="#question3">Question 3</a></td>\s*<td class="points">0.5 / 1</td>', top)
    assert "Well argued." in page


# --- The course and the server --------------------------------------------------------


@pytest.fixture(scope="module")
def course(demo_run, tmp_path_factory):
    """A copy of the graded demo class for formgrader to change, and the autograded scores."""
    root, outcome = demo_run
    copy = tmp_path_factory.mktemp("formgrader") / "course"
    shutil.copytree(root, copy)  # the module's other tests keep the class as graded
    scores = {r.student: r.score for r in outcome["results"] if r.status == GRADED}
    assert len(scores) >= 2, "formgrader needs two graded students here"
    return copy, scores


@pytest.fixture(scope="module")
def jupyterlab(course, tmp_path_factory):
    """JupyterLab serving the scratch course, started as ``make formgrader`` does; yields (url, token).

    nbgrader (formgrader included) takes the course folder from
    ``nbgrader_config.py`` in the folder it runs in, the repository, and that
    file from ``COURSEKIT_COURSE_ROOT``: ``--CourseDirectory.root`` on the
    server's command line would be overridden by the file.
    """
    root, _ = course
    with jupyterlab_server(root, tmp_path_factory.mktemp("jupyter"), env={"COURSEKIT_COURSE_ROOT": str(root)}) as server:
        yield server


# --- The browser ---------------------------------------------------------------------------


class Session:
    """One Chromium page on JupyterLab, with what went wrong on it: JavaScript errors and requests off this machine."""

    def __init__(self, browser, url, token):
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.url, self.token = url, token
        self.errors, self.outside = [], []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: None if request.url.startswith(url) or request.url.startswith("data:")
                     else self.outside.append(request.url))

    def shot(self, name):
        self.page.screenshot(path=SCREENSHOTS / f"formgrader_{name}.png")

    def open_formgrader(self):
        """JupyterLab, then Nbgrader menu, Formgrader: returns the formgrader panel (an iframe)."""
        self.page.goto(f"{self.url}/lab?token={self.token}")
        self.page.get_by_role("menuitem", name="Nbgrader").click()
        self.page.get_by_role("menuitem", name="Formgrader", exact=True).click()
        panel = self.page.frame_locator(FORMGRADER_IFRAME)
        panel.get_by_role("heading", name="Manage Assignments").wait_for()
        return panel

    @property
    def frame(self):
        """The formgrader panel's frame (the same one after each page it goes to)."""
        return self.page.locator(FORMGRADER_IFRAME).element_handle().content_frame()

    def check(self):
        assert self.errors == [], f"JavaScript errors: {self.errors}"
        assert self.outside == [], f"requests off this machine: {self.outside}"


@pytest.fixture
def session(jupyterlab, chromium):
    url, token = jupyterlab
    session = Session(chromium, url, token)
    yield session
    session.page.close()
    print(f"\nformgrader screenshots: {SCREENSHOTS}")


def _open_submission_list(panel):
    """Manual Grading, the assignment, the notebook: the submissions, their names shown."""
    panel.get_by_role("link", name="Manual Grading").click()
    # The assignment and its notebook are both links named "clustering": each is found by where it leads, so
    # the second click waits for the notebook's page (on a busy machine it hit the assignment's link again).
    panel.locator(f"a[href$='/formgrader/gradebook/{ASSIGNMENT}']", has_text=ASSIGNMENT).click()  # the assignment
    panel.locator(f"a[href$='/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}']", has_text=ASSIGNMENT).click()  # its notebook
    # The button works once the list has loaded (names are hidden for anonymous grading).
    panel.get_by_role("link", name="Submission #1").wait_for()
    panel.get_by_role("button", name="Show All Names").click()


def _saved(kind):
    """Matches the response to formgrader saving a score (kind "grade") or a comment."""
    return lambda response: f"/formgrader/api/{kind}/" in response.url and response.request.method == "PUT"


def _grade_written_answers(session, panel, typed):
    """Type points and a comment into each written answer, as a TA: click, type, Tab (which saves)."""
    page = session.page
    for question, (points, comment) in typed.items():
        panel.locator(f"#{question}").click()  # the score box
        page.keyboard.type(format_number(points))
        with page.expect_response(_saved("grade")):
            page.keyboard.press("Tab")
        panel.locator(f"#{question}-comment").click()
        page.keyboard.type(comment)
        with page.expect_response(_saved("comment")):
            page.keyboard.press("Tab")


def _student_shown(panel):
    """The student of the open submission: the eye icon shows the name (hidden at first, for anonymous grading)."""
    panel.locator("span.glyphicon-eye-open.name-hidden").click()
    return panel.locator("a.name-shown").inner_text().strip()


def _show_last_answer(session, panel, question):
    """Scroll the answer just graded into view, for the screenshot."""
    # The last Tab went round to the "Next" link, and formgrader is scrolling up to it: let that finish first.
    session.frame.wait_for_function("() => jQuery(':animated').length === 0")
    panel.locator(f"#{question}-comment").scroll_into_view_if_needed()


def _get_json(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_grading_page(session):
    # formgrade.js binds the score and comment boxes to the gradebook when the
    # page has loaded; typed before that, a score would not be saved.
    session.frame.wait_for_function(
        "() => window.formgrader && formgrader.loaded && formgrader.grades.loaded && formgrader.comments.loaded")


# --- The tests ----------------------------------------------------------------------------


def test_the_course_has_its_own_exchange_unless_a_jupyter_config_sets_one(tmp_path, monkeypatch):
    """nbgrader_config.py: the course folder from COURSEKIT_COURSE_ROOT, its exchange inside it, or the hub's."""
    course = tmp_path / "course"
    monkeypatch.setenv("COURSEKIT_COURSE_ROOT", str(course))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    config = build.load_course_config(ROOT)
    assert config.CourseDirectory.root == str(course)
    assert config.Exchange.root == str(course / "exchange") and (course / "exchange").is_dir()

    # A shared hub's exchange, set in a Jupyter config folder nbgrader reads before this file, is kept.
    (tmp_path / "jupyter-config").mkdir()
    (tmp_path / "jupyter-config" / "nbgrader_config.py").write_text('c.Exchange.root = "/srv/nbgrader/exchange"\n')
    assert "root" not in build.load_course_config(ROOT).Exchange


@pytest.mark.slow
def test_formgrader_opens_from_the_nbgrader_menu_without_warnings_and_lists_students_by_name(session):
    panel = session.open_formgrader()
    panel.get_by_role("link", name=ASSIGNMENT, exact=True).wait_for()  # the list of assignments has loaded
    session.shot("1_manage_assignments")
    # nbgrader's default exchange, /usr/local/share/nbgrader/exchange, is missing here: the course has its own.
    assert panel.locator("#warning-exchange").count() == 0
    assert "does not exist" not in panel.locator("body").inner_text()
    assert panel.locator("#warning-course-id").count() == 0

    _open_submission_list(panel)
    names = panel.locator("td a.name-shown")
    graded = ["Lovelace, Ada", "Blank, Bo", "Partial, Pat", "Colab, Casey"]  # the cut-off file is not graded
    panel.get_by_role("link", name=graded[0]).wait_for()
    session.shot("2_submissions")
    assert sorted(names.all_inner_texts()) == sorted(graded)

    # What formgrader's pages are drawn from, its API on the same server.
    assignments = _get_json(f"{session.url}/formgrader/api/assignments", session.token)
    assert [a["name"] for a in assignments] == [ASSIGNMENT]
    assert assignments[0]["max_score"] == 27 and assignments[0]["max_written_score"] == 4
    submissions = _get_json(f"{session.url}/formgrader/api/submissions/{ASSIGNMENT}", session.token)
    assert {s["student"] for s in submissions if s["autograded"]} == {"20260001", "20260002", "20260003", "20260004"}
    assert all(s["needs_manual_grade"] for s in submissions if s["student"] == "20260001")

    panel.get_by_role("link", name="Manage Students").click()
    students = panel.locator("td.name a")
    students.first.wait_for()
    session.shot("3_students")
    # Only the student whose file was cut off has no name: there was no NAME to read. Their id stands in.
    assert sorted(students.all_inner_texts()) == sorted(graded + ["20260005, (no name found)"])
    session.check()


@pytest.mark.slow
def test_written_answers_graded_in_formgrader_reach_grades_report_and_feedback(session, course):
    root, autograded = course
    panel = session.open_formgrader()
    _open_submission_list(panel)
    # The list's first row; formgrader's numbers and its Next follow the list (coursekit.pages.formgrade_order).
    links = panel.locator("td a.name-shown")
    links.first.wait_for()
    listed = [name.strip() for name in links.all_inner_texts()]
    links.first.click()

    graded_by_hand = {}
    for turn, typed in enumerate(TYPED, start=1):
        _wait_for_grading_page(session)
        number = panel.locator("li.live-notebook a.name-hidden").inner_text().strip()
        name = _student_shown(panel)
        assert (number, name) == (f"Submission #{turn}", listed[turn - 1]), "the grading page is not the list's next row"
        assert name in STUDENT_IDS, f"formgrader shows {name!r}, not a student's name"
        _grade_written_answers(session, panel, typed)
        graded_by_hand[name] = typed
        _show_last_answer(session, panel, list(typed)[-1])
        session.shot(f"{3 + turn}_graded_{STUDENT_IDS[name]}")
        if turn == 1:  # formgrader's submission view, the page a TA works in
            inaccessible = accessibility_problems(session.frame, "formgrader_submission")
        if turn < len(TYPED):
            # Ctrl+. : formgrader's shortcut for the same box of the next submission.
            session.page.keyboard.press("Control+Period")
            panel.locator("a.name-shown", has_not_text=name).wait_for(state="attached")
    session.check()
    assert inaccessible == [], inaccessible

    # What the TA runs next: the feedback of the students graded by hand, then the report of the class.
    hand_graded = [STUDENT_IDS[name] for name in graded_by_hand]
    for step, students in (("feedback", hand_graded), ("report", [])):
        done = subprocess.run([sys.executable, "-m", "coursekit", step, "--root", str(root), *students], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"coursekit {step}:\n{done.stdout}\n{done.stderr}"

    reports = root / "reports" / ASSIGNMENT
    with open(reports / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    for name, typed in graded_by_hand.items():
        student = STUDENT_IDS[name]
        row = rows[student]
        for question, (points, _) in typed.items():
            assert float(row[f"{question} ({WRITTEN[question]})"]) == points, (student, question)
        # The written answers scored 0 before (needing a grader, or not answered).
        assert float(row["total"]) == autograded[student] + sum(points for points, _ in typed.values()), student
        assert "awaiting manual grading" not in row["reason"], student

    totals = [float(row["total"]) for row in rows.values() if row["status"] == GRADED]
    class_report = (reports / "class_report.html").read_text(encoding="utf-8")
    assert (f"mean {format_number(np.mean(totals), 2)}, median {format_number(np.median(totals), 2)}, "
            f"lowest {format_number(min(totals))}, highest {format_number(max(totals))}.") in class_report
    pending = sum(row["reason"].startswith("awaiting manual grading") for row in rows.values())
    assert f"awaiting manual grading: {pending}." in class_report

    for name, typed in graded_by_hand.items():
        page = (root / "feedback" / STUDENT_IDS[name] / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(encoding="utf-8")
        for question, (_, comment) in typed.items():
            assert comment in page, (name, question)
        others = [comment for other, answers in graded_by_hand.items() if other != name
                  for _, comment in answers.values()]
        assert not any(comment in page for comment in others), f"{name}'s page has another student's comment"
        total = format_number(autograded[STUDENT_IDS[name]] + sum(points for points, _ in typed.values()))
        assert re.search(rf"Your score: <strong>{re.escape(total)}</strong>", page), name


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def _formgrader_get(url, token, path):
    """(status, Location header) of a GET to formgrader, redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"token {token}"})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers.get("Location"), response.read()
    except urllib.error.HTTPError as answer:  # a redirect not followed arrives as one
        return answer.code, answer.headers.get("Location"), b""


@pytest.mark.slow
def test_formgraders_numbers_and_next_follow_its_list_and_next_after_the_last_goes_to_what_is_left(jupyterlab, course):
    url, token = jupyterlab
    root, _ = course
    _, _, body = _formgrader_get(url, token, f"/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}")
    listed = json.loads(body)  # in the list's order
    assert [s["index"] for s in listed] == list(range(len(listed))), "Submission #n is not the list's n-th row"
    ids = [s["id"] for s in listed]
    for here, there in zip(ids, ids[1:]):
        status, location, _ = _formgrader_get(url, token, f"/formgrader/submissions/{here}/next")
        assert status == 302 and location.endswith(f"/formgrader/submissions/{there}"), (status, location)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        to_do = [i for i in ids[:-1] if gradebook.find_submission_notebook_by_id(i).needs_manual_grade]
    status, location, _ = _formgrader_get(url, token, f"/formgrader/submissions/{ids[-1]}/next")
    expected = f"/formgrader/submissions/{to_do[0]}" if to_do else f"/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}"
    assert status == 302 and location.endswith(expected), (status, location, to_do)
    # Once nothing is left to grade by hand, Next after the last goes back to the list.
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for submission_id in ids:
            for grade in gradebook.find_submission_notebook_by_id(submission_id).grades:
                if grade.needs_manual_grade:
                    grade.manual_score, grade.needs_manual_grade = grade.auto_score or 0, False
        gradebook.db.commit()
    status, location, _ = _formgrader_get(url, token, f"/formgrader/submissions/{ids[-1]}/next")
    assert status == 302 and location.endswith(f"/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}"), location
