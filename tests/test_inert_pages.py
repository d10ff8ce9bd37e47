"""What a student hands in stays inert on every page a person opens (issue 24), in a real browser.

Two hostile students (Mallory and Trudy, the same code, so the class report
also has a similar pair) hand in the solved notebook carrying the payload
battery of ``tests/payloads.py`` everywhere a student can put it:

- an answer cell's outputs: every HTML payload displayed, an SVG with a script,
  a JavaScript output, a Markdown output with links, a widget;
- a written answer (Question 1): every HTML and Markdown payload;
- NAME, cell tags, a cell id, the notebook's widget metadata;
- an error message: Exercise 2.1's function raises an error whose message is HTML,
  so it reaches the feedback summary and the class report's failure groups.

The class is graded through the real pipeline (grade, feedback, report);
then chromium opens each page a person looks at: the feedback page (and its
LMS copy is the same file), the class report, the similar pair's page, and
formgrader's grading page in JupyterLab's server. A listener on 127.0.0.1
counts every request a payload makes; a payload that runs sets ``top.PWNED``.
Expected: no request, no flag, no Content-Security-Policy violation (the
course's own scripts are allowed, and nothing else is there to block), while
figures, the animation and formgrader's controls still work. Screenshots:
``tests/screenshots/inert_*.png``.
"""

import copy
import http.server
import json
import shutil
import threading

import nbformat
import pytest
from conftest import SCREENSHOTS, SLOW_DEMONSTRATIONS, jupyterlab_server, launched_chromium
from nbformat.v4 import new_code_cell
from payloads import FLAG, HTML_PAYLOADS, JAVASCRIPT_PAYLOAD, MARKDOWN_PAYLOADS, SVG_PAYLOAD

from coursekit.common.notebooks import grade_id
from coursekit.common.paths import ROOT
from coursekit.common.results import GRADED
from coursekit.steps.demo import with_student
from coursekit.steps.feedback import generate_feedback
from coursekit.steps.grade import grade
from coursekit.steps.report import write_report

pytestmark = pytest.mark.slow
ASSIGNMENT = "clustering"
HOSTILE = {"30000001": "Mallory", "30000002": "Trudy"}
#: The error message a student's function raises (Exercise 2.1).
ERROR_PAYLOAD = "<img src=x onerror=" + FLAG + "><b>bold</b>"

#: Collects Content-Security-Policy violations and uncaught errors, before any of the page's scripts run.
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


class Listener:
    """An HTTP server on 127.0.0.1 that answers everything and records each request's path."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"hit")

            do_POST = do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def hostile_notebook(master, name, student_id, url):
    """The solution, with the payloads put everywhere a student can put them (see the module's docstring)."""
    keep = {"run_kmeans", "animation"}  # the animation stays: it must still play for the TA
    nb = with_student(master, f"{name} <img src=x onerror={FLAG}><script>{FLAG}</script>", student_id)
    nb.cells = [c for c in nb.cells if grade_id(c) not in set(SLOW_DEMONSTRATIONS) - keep]
    payloads = [payload.format(url=url) for _, payload in HTML_PAYLOADS]
    markdown = [payload.format(url=url) for _, payload in MARKDOWN_PAYLOADS]
    for cell in nb.cells:
        if grade_id(cell) == "assign_clusters":
            cell.source += "\n\n" + "\n".join([
                "from IPython.display import HTML, Javascript, Markdown, SVG, display",
                f"for _payload in {payloads!r}:",
                "    display(HTML(_payload))",
                f"display(SVG({SVG_PAYLOAD.format(url=url)!r}))",
                f"display(Javascript({JAVASCRIPT_PAYLOAD.format(url=url)!r}))",
                f"display(Markdown({chr(10).join(markdown)!r}))",
                "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'x', 'version_major': 2,"
                " 'version_minor': 0}, 'text/plain': 'a widget'}, raw=True)",
            ])
            cell.metadata["tags"] = ['"><img src=x onerror=' + FLAG + ">"]
            cell.metadata["alt"] = '"><img src=x onerror=' + FLAG + ">"  # a figure description is student-editable too
        elif grade_id(cell) == "question1":
            cell.source = "My answer.\n\n" + "\n\n".join(payloads + markdown)
        elif grade_id(cell) == "preprocess_img":
            cell.source = f"def preprocess_img(image):\n    raise ValueError({ERROR_PAYLOAD!r})\n"
    nb.cells.append(new_code_cell(f"raise RuntimeError({ERROR_PAYLOAD!r})"))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0, "note": "</script><script>" + FLAG + "</script>"}}
    return nb


@pytest.fixture(scope="module")
def chromium(hostile_class):
    """One browser for the module, each page in a context of its own, opened once the class is graded.

    The grading (kernels started with ``asyncio.run``) comes first: Playwright's event loop runs in this
    thread while the browser is open (``conftest.chromium``).
    """
    with launched_chromium() as browser:
        yield browser


@pytest.fixture(autouse=True)
def no_page_outlives_its_test(request):
    """Every context a test opened is closed after it, failed or not: a payload left running would count against the next test."""
    yield
    if "chromium" in request.fixturenames:
        for context in request.getfixturevalue("chromium").contexts:
            context.close()


@pytest.fixture(scope="module")
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, copy_course, master_notebook, listener):
    """The two hostile students graded, their feedback written and the class report made."""
    course = tmp_path_factory.mktemp("inert") / "course"
    submissions = {sid: hostile_notebook(master_notebook, name, sid, listener.url) for sid, name in HOSTILE.items()}
    copy_course(course, submissions)
    # The cell id: nbformat refuses to write one like this, a student's editor need not.
    for sid in HOSTILE:
        path = course / "submitted" / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        raw = json.loads(path.read_text())
        raw["cells"][3]["id"] = 'x"><img src=x onerror=' + FLAG + ">"
        path.write_text(json.dumps(raw))
    results = {r.student: r for r in grade(course, ASSIGNMENT, workers=2, progress=False)}
    pages = generate_feedback(course, ASSIGNMENT)
    reports = write_report(course, ASSIGNMENT, results=list(results.values()))
    assert listener.hits == [], f"grading itself made requests: {listener.hits}"
    return dict(course=course, results=results, pages=pages, reports=reports)


def test_the_hostile_class_is_graded_with_its_points(hostile_class):
    results = hostile_class["results"]
    assert {sid: r.status for sid, r in results.items()} == {sid: GRADED for sid in HOSTILE}
    # All but Exercise 2.1 (1 point), whose function raises the HTML error on purpose.
    assert {sid: r.score for sid, r in results.items()} == {sid: 22 for sid in HOSTILE}


def _open(browser, url, name, listener, login=None):
    """Open ``url`` in a fresh context (logged in at ``login`` first), let every payload try; return the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(WATCH)
    page = context.new_page()
    if login:
        page.goto(login)  # a token in the URL logs the browser in (a cookie), as a TA's first visit does
    errors, outside = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: outside.append(request.url) if request.url.startswith(listener.url) else None)
    page.goto(url)
    page.wait_for_load_state("load")
    page.mouse.wheel(0, 100_000)  # scrolled to the end: lazy images, autofocus, anything that waits for view
    page.wait_for_timeout(1500)  # timers, meta refresh
    page.screenshot(path=SCREENSHOTS / f"inert_{name}.png", full_page=False)
    state = page.evaluate("() => ({flag: window.top.PWNED || null, violations: window.__violations})")
    assert state["flag"] is None, f"{name}: a payload's script ran"
    assert outside == [] and listener.hits == [], f"{name}: requests to the listener: {outside or listener.hits}"
    # nbgrader's inlined bootstrap.css names its glyph fonts beside the page (file:, not there): the policy
    # stops that lookup; everything else the policy would have to block is a failure.
    violations = [v for v in state["violations"] if v != "font-src file"]
    assert violations == [], f"{name}: blocked by the Content-Security-Policy: {violations}"
    assert errors == [], f"{name}: script errors: {errors}"
    return page


def _player_works(page):
    """The course's player drives the first animation: frame 0 shown, controls shown, 'next' shows frame 2."""
    player = page.locator(".kmeans-player").first
    player.scroll_into_view_if_needed()
    frame = player.locator("img.kmeans-player-frame")
    assert frame.evaluate("img => img.naturalWidth") > 0
    player.locator(".kmeans-player-controls").wait_for(state="visible")
    counter = player.locator(".kmeans-player-counter")
    assert counter.inner_text().startswith("frame 1 of ")
    player.locator("button[data-action=next]").click()
    assert counter.inner_text().startswith("frame 2 of ")


def test_feedback_pages_stay_inert_and_still_show_figures_and_the_animation(hostile_class, chromium, listener):
    for sid in HOSTILE:
        page = _open(chromium, hostile_class["pages"][sid].as_uri(), f"feedback_{sid}", listener)
        figures = page.evaluate("() => [...document.images].filter(i => i.naturalWidth > 0).length")
        assert figures >= 3, "the figures of the notebook are shown"
        assert page.locator("img[src^='data:image/svg+xml']").count() >= 1, "the SVG figure, as an image"
        _player_works(page)
        summary = page.locator(".summary").inner_text()
        assert "<img src=x onerror=" in summary, "the error message is shown as text"
        page.screenshot(path=SCREENSHOTS / f"inert_feedback_{sid}_player.png")
        page.context.close()


def test_the_class_report_and_the_pair_page_stay_inert(hostile_class, chromium, listener):
    reports = hostile_class["reports"]
    page = _open(chromium, reports["class_report"].as_uri(), "class_report", listener)
    assert "<img src=x onerror=" in page.locator("body").text_content(), "the failure message is quoted as text"
    page.context.close()
    pairs = sorted(reports["pair_pages"].glob("*.html"))
    assert pairs, "Mallory and Trudy are a similar pair"
    page = _open(chromium, pairs[0].as_uri(), "similar_pair", listener)
    page.context.close()


@pytest.fixture(scope="module")
def formgrader(hostile_class, tmp_path_factory):
    course = hostile_class["course"]
    with jupyterlab_server(course, tmp_path_factory.mktemp("jupyter"), env={"COURSEKIT_COURSE_ROOT": str(course)}) \
            as (url, token):
        yield url, token


def _submission_ids(url, token):
    import urllib.request
    request = urllib.request.Request(f"{url}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {s["student"]: s["id"] for s in json.loads(response.read())}


def test_formgraders_grading_page_stays_inert_and_its_controls_still_work(formgrader, chromium, listener):
    url, token = formgrader
    ids = _submission_ids(url, token)
    first = min(ids.values())
    page = _open(chromium, f"{url}/formgrader/submissions/{first}/", "formgrader", listener,
                 login=f"{url}/formgrader?token={token}")
    response = page.context.request.get(f"{url}/formgrader/submissions/{first}/")
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert "connect-src 'self'" in policy and "base-uri 'none'" in policy
    page.wait_for_function(
        "() => window.formgrader && formgrader.loaded && formgrader.grades.loaded && formgrader.comments.loaded")
    _player_works(page)
    # A TA grades the written answer with the payloads in it: score, Tab saves, comment, Tab saves.
    page.locator("#question1").click()
    page.keyboard.type("1")
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT") as saved:
        page.keyboard.press("Tab")
    assert saved.value.ok
    page.locator("#question1-comment").click()
    page.keyboard.type("Payloads everywhere.")
    with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url and r.request.method == "PUT") as saved:
        page.keyboard.press("Tab")
    assert saved.value.ok
    page.screenshot(path=SCREENSHOTS / "inert_formgrader_graded.png")
    # The student's name (from NAME, payloads included) is shown as text; Ctrl+. moves to the next student.
    page.locator("span.glyphicon-eye-open.name-hidden").click()
    assert "onerror=" in page.locator("a.name-shown").inner_text()
    page.keyboard.press("Control+Period")
    page.wait_for_url(lambda u: f"/submissions/{first}/" not in u)
    page.wait_for_function("() => window.formgrader && formgrader.loaded")
    state = page.evaluate("() => ({flag: window.top.PWNED || null, violations: window.__violations})")
    assert state == {"flag": None, "violations": []} and listener.hits == []
    page.context.close()


@pytest.mark.parametrize("where", ["gradebook/clustering/clustering", "manage_students",
                                   "manage_students/30000001/clustering", "manage_submissions/clustering"])
def test_formgraders_lists_show_the_names_as_text(formgrader, chromium, listener, where):
    url, token = formgrader
    page = _open(chromium, f"{url}/formgrader/{where}", "formgrader_" + where.replace("/", "_"), listener,
                 login=f"{url}/formgrader?token={token}")
    page.wait_for_timeout(1000)  # the lists are drawn by formgrader's scripts from its API
    if where in ("gradebook/clustering/clustering", "manage_students"):  # the pages that list the names
        assert "onerror=" in page.locator("body").text_content()
    assert page.evaluate("() => window.top.PWNED || null") is None and listener.hits == []
    page.context.close()


def test_grades_cannot_be_changed_without_the_xsrf_value_and_the_page_exposes_neither_secret(
        formgrader, chromium):
    url, token = formgrader
    ids = _submission_ids(url, token)
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{url}/formgrader?token={token}")
    page.goto(f"{url}/formgrader/submissions/{min(ids.values())}/")
    page.wait_for_function("() => window.formgrader && formgrader.grades.loaded")
    grade = page.evaluate("() => formgrader.grades.models.map(g => g.toJSON()).find(g => g.name === 'question1')")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    # The browser's session cookie alone (what a script in the page would have): refused.
    refused = context.request.put(f"{url}/formgrader/api/grade/{grade['id']}",
                                  data=json.dumps({"manual_score": 0, "extra_credit": 0}))
    assert refused.status == 403, refused.status
    # With the XSRF value, as formgrade.js sends it: accepted (so the refusal above is the check, not a broken URL).
    accepted = context.request.put(f"{url}/formgrader/api/grade/{grade['id']}",
                                   data=json.dumps({"manual_score": 0, "extra_credit": 0}),
                                   headers={"X-XSRFToken": cookies["_xsrf"]})
    assert accepted.ok, accepted.status
    html = page.content()
    assert token not in html and cookies["_xsrf"] not in html
    context.close()
