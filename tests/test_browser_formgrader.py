"""Formgrader in a real browser: a TA grades the written answers of two students.

The demo class (five made-up students, four graded) is graded once into a
scratch course, and JupyterLab is started on it as ``make formgrader`` starts
it on the real course. In Chromium, by mouse and keyboard, the test goes the
README's way: Nbgrader menu, Formgrader, Manual Grading, the assignment, the
notebook, a student; it types points and a comment for each of the three
written questions, moves to the next student with formgrader's Ctrl+.
shortcut and does the same. Then ``python -m coursekit feedback`` and
``report`` must carry those points into grades.csv and the class report, and
the comments into each student's feedback page.

Along the way: formgrader says nothing about a missing exchange folder (the
course has its own, ``nbgrader_config.py``), lists the students by name, loads
nothing from outside the machine (its grading page took MathJax from a CDN,
and without it its keyboard shortcuts did not work) and raises no JavaScript
error. Screenshots of each screen go to ``tests/screenshots/formgrader_*.png``.
"""

import csv
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import SCREENSHOTS, jupyterlab_server
from coursekit import build, demo
from coursekit.paths import ROOT
from coursekit.report import format_number
from coursekit.results import GRADED

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


# --- The course and the server --------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The demo class graded in a scratch course (as test_pipeline's ``demo_run``), and the autograded scores."""
    root = tmp_path_factory.mktemp("formgrader") / "course"
    outcome = demo.run_demo(root, build_first=False)
    scores = {r.student: r.score for r in outcome["results"] if r.status == GRADED}
    assert len(scores) >= 2, "formgrader needs two graded students here"
    return root, scores


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
    panel.get_by_role("link", name=ASSIGNMENT, exact=True).click()  # the assignment
    panel.get_by_role("link", name=ASSIGNMENT, exact=True).click()  # its notebook
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

    panel.get_by_role("link", name="Manage Students").click()
    students = panel.locator("td.name a")
    students.first.wait_for()
    session.shot("3_students")
    # Only the student whose file was cut off has no name: there was no NAME to read.
    assert sorted(students.all_inner_texts()) == sorted(graded + ["None, None"])
    session.check()


@pytest.mark.slow
def test_written_answers_graded_in_formgrader_reach_grades_report_and_feedback(session, course):
    root, autograded = course
    panel = session.open_formgrader()
    _open_submission_list(panel)
    # formgrader's "next" goes through the submissions in the order of their ids
    # (random), not the list's: start at the first of them, so that there is a next.
    links = panel.locator("td a.name-shown")
    links.first.wait_for()
    first = min(links.evaluate_all("links => links.map(link => link.getAttribute('href'))"))
    panel.locator(f"td a.name-shown[href='{first}']").click()

    graded_by_hand = {}
    for turn, typed in enumerate(TYPED, start=1):
        _wait_for_grading_page(session)
        name = _student_shown(panel)
        assert name in STUDENT_IDS, f"formgrader shows {name!r}, not a student's name"
        assert name not in graded_by_hand, "formgrader's next showed the same student again"
        _grade_written_answers(session, panel, typed)
        graded_by_hand[name] = typed
        _show_last_answer(session, panel, list(typed)[-1])
        session.shot(f"{3 + turn}_graded_{STUDENT_IDS[name]}")
        if turn < len(TYPED):
            # Ctrl+. : formgrader's shortcut for the same box of the next submission.
            session.page.keyboard.press("Control+Period")
            panel.locator("a.name-shown", has_not_text=name).wait_for(state="attached")
    session.check()

    for step in ("feedback", "report"):
        done = subprocess.run([sys.executable, "-m", "coursekit", step, "--root", str(root)], cwd=ROOT,
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
