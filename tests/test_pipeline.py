"""The whole job end to end on the real assignment: the demo class.

One module-scoped run of collect -> grade -> feedback -> report on five
made-up students (perfect, blank, partial and late, Colab-saved, broken),
then checks of what each role gets, and of formgrader's API on the result.
"""

import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import json
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import SCREENSHOTS
from coursekit import cli, demo, feedback, lms, report
from coursekit.results import FAILED, GRADED, GradeResult

EXPECTED = {
    "20260001": (GRADED, 23),  # perfect
    "20260002": (GRADED, 1),  # blank: only NAME and STUDENT_ID
    "20260003": (GRADED, 5),  # Part 0 + assign + update; J_clust summed breaks objective and kmeans
    "20260004": (GRADED, 23),  # saved from Colab under "Copy of clustering.ipynb"
    "20260005": (FAILED, None),  # cut-off JSON
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "course"
    outcome = demo.run_demo(root, build_first=False)
    return root, outcome


@pytest.mark.slow
def test_every_student_gets_the_expected_status_and_score(demo_run):
    _, outcome = demo_run
    got = {r.student: (r.status, r.score) for r in outcome["results"]}
    assert got == EXPECTED
    broken = next(r for r in outcome["results"] if r.status == FAILED)
    assert broken.reason == "not a readable notebook (invalid JSON)"


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
    for student, path in sorted(outcome["feedback"].items()):
        context, page, requested, script_errors = _offline_page(chromium, width=1280, height=800)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        state = page.evaluate(PAGE_STATE)
        page.screenshot(path=SCREENSHOTS / f"feedback_{student}.png")
        context.close()

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
        assert rows["Exercise 1.1: the partition step"][0] == ("0 / 2" if student == "20260002" else "2 / 2")
        assert rows["Question 1"] == (["0 / 2", "not answered"] if student == "20260002" else
                                      ["\u2013 / 2", "graded by hand; not graded yet"]), student
        if student == "20260003":  # partial: J_clust summed instead of averaged
            assert rows["Exercise 1.3: the clustering objective"][0] == "0 / 1"
            assert rows["Exercise 1.3: the clustering objective"][1].startswith("AssertionError: distances squared")
            assert rows["Exercise 2.1: from image to data matrix"] == [
                "0 / 1", "not answered yet: the answer still raises NotImplementedError"]
        if student == "20260001":
            assert state["players"] >= 1, "the animation player shows its first frame"
            assert len(state["buttons"]) == 9 and all(text and width > 20 for text, width in state["buttons"]), \
                state["buttons"]
            assert all(points.split(" / ")[0] == points.split(" / ")[1] for points, _ in rows.values()
                       if not points.startswith("\u2013")), rows


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
    context.close()
    assert requested == [] and script_errors == []
    assert len(state["images"]) == 3 and all(natural > 0 and shown > 0 for _, natural, shown in state["images"])
    assert state["pageWidth"] <= 1280
    assert state["summaryBottom"] < 800, "the counts and the totals are above the fold"
    assert any("failed" in row and "1" in row for row in state["statuses"]), state["statuses"]


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
    assert sorted(p.name for p in path.parent.iterdir()) == ["canvas_gradebook_import.csv"]


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


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_formgrader_lists_the_assignment_and_the_submissions(demo_run, tmp_path):
    root, _ = demo_run
    port, token = _free_port(), "coursekit-test-token"
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", f"--CourseDirectory.root={root}"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/formgrader/api"
        deadline = time.monotonic() + 60
        while True:
            try:
                assignments = _get_json(f"{base}/assignments", token)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        assert [a["name"] for a in assignments] == ["clustering"]
        assert assignments[0]["max_score"] == 27 and assignments[0]["max_written_score"] == 4
        submissions = _get_json(f"{base}/submissions/clustering", token)
        graded = {s["student"] for s in submissions if s["autograded"]}
        assert {"20260001", "20260002", "20260003", "20260004"} <= graded
        assert all(s["needs_manual_grade"] for s in submissions if s["student"] == "20260001")
        # Students by name (formgrader showed "None, None"): from NAME in their notebooks here.
        students = {s["id"]: (s["first_name"], s["last_name"]) for s in _get_json(f"{base}/students", token)}
        assert students["20260001"] == ("Ada", "Lovelace") and students["20260003"] == ("Pat", "Partial")
        assert students["20260005"] == (None, None)  # a cut-off file has no readable NAME
    finally:
        server.terminate()
        server.wait(timeout=20)


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
