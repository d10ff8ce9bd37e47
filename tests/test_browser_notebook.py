"""The student's notebook as people see it: JupyterLab 4 and Notebook 7 in Chromium.

One Jupyter server for the module, started the way a student starts one
(``jupyter lab`` on 127.0.0.1 with a token), with fresh Jupyter folders, so
nothing is trusted or configured beforehand. It serves a folder holding the
release and copies of its notebook:

- ``solved_lab.ipynb``: the release with the solutions filled in, run with
  "Run All" in JupyterLab;
- ``solved_nb7.ipynb``: the same up to the animation (Parts 0 and 1), run with
  "Run All" in Notebook 7;
- ``untouched.ipynb``: the release as handed out, run cell by cell;
- ``master_right/tiny.ipynb``, ``master_wrong/tiny.ipynb``: one-exercise masters with a
  checker test, validated with the toolbar's Validate button;
- ``lecture.ipynb``: the executed master of ``notebooks/``, opened but not run;
- ``colab/clustering.ipynb``: the notebook's first cells, up to its setup
  cell, alone in a folder, with a fake ``google.colab`` package beside it and
  the course files served from 127.0.0.1, where its setup cell runs as in
  Colab.

Screenshots go to ``tests/screenshots/notebook_*.png``. Any uncaught
JavaScript error fails the test.
"""

import copy
import functools
import http.server
import json
import re
import shutil
import threading
import time
import urllib.request

import nbformat
import pytest
from conftest import SCREENSHOTS, accessibility_problems, jupyterlab_server, launched_chromium
from test_checker import RIGHT_DOUBLE, _tiny_master

from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.steps import demo

pytestmark = pytest.mark.slow

RELEASE_DIR = ROOT / "release" / "clustering"
LECTURE = ROOT / "notebooks" / "clustering_solution.ipynb"
RUN_TIMEOUT_MS = 240_000
#: The last cell of Notebook 7's run (JupyterLab runs them all): Parts 0 and 1, the animation included.
NB7_UNTIL = "animation"


def solved_release(master, release):
    """The release with every answer cell replaced by the master's, and a name filled in."""
    answers = {notebooks.grade_id(c): c.source for c in master.cells if notebooks.is_solution_cell(c)}
    nb = demo.with_student(release, "Ada Lovelace", "20260001")
    for cell in nb.cells:
        if cell.cell_type == "code" and notebooks.grade_id(cell) in answers:
            cell.source = answers[notebooks.grade_id(cell)]
    return nb


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def course_files_server():
    """The release folder over HTTP on 127.0.0.1, as Colab fetches it from the course repository."""
    handler = functools.partial(_QuietFiles, directory=str(RELEASE_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory, master_notebook, release_notebook, course_files_server):
    """A Jupyter server on 127.0.0.1 serving the folder described in the module docstring."""
    base = tmp_path_factory.mktemp("browser")
    folder = base / "lab"
    shutil.copytree(RELEASE_DIR, folder)
    solved = solved_release(master_notebook, release_notebook)
    nbformat.write(solved, folder / "solved_lab.ipynb")
    shorter = copy.deepcopy(solved)
    shorter.cells = _up_to(shorter.cells, NB7_UNTIL)
    nbformat.write(shorter, folder / "solved_nb7.ipynb")
    nbformat.write(release_notebook, folder / "untouched.ipynb")
    # Two one-exercise masters with a checker test, for the toolbar's Validate button (tests/test_checker.py).
    _tiny_master(folder / "master_right", RIGHT_DOUBLE)
    _tiny_master(folder / "master_wrong", "import numpy as np\ndef double(x):\n    return x * 2 if np.ndim(x) == 0 else x + 2")
    shutil.copy(LECTURE, folder / "lecture.ipynb")
    colab = folder / "colab"
    (colab / "google" / "colab").mkdir(parents=True)
    (colab / "google" / "__init__.py").write_text("")
    (colab / "google" / "colab" / "__init__.py").write_text("# stands in for Colab's module\n")
    in_colab = copy.deepcopy(solved)
    setup = next(c for c in in_colab.cells if notebooks.grade_id(c) == "colab_setup")
    in_colab.cells = in_colab.cells[:in_colab.cells.index(setup) + 1]  # only the setup cell runs there
    setup.source = re.sub(r"^COURSE_BASE_URL = .*$", f'COURSE_BASE_URL = "{course_files_server}"', setup.source,
                          count=1, flags=re.MULTILINE)
    nbformat.write(in_colab, colab / "clustering.ipynb")

    # A fresh profile: nothing trusted, no workspace.
    with jupyterlab_server(folder, base) as (url, token):
        yield type("Jupyter", (), {"url": url, "token": token, "folder": folder})


#: Errors of Notebook 7.6's own front end (its bundle, not an output of ours),
#: thrown on every notebook page it opens here, before any cell runs.
NOTEBOOK7_OWN_ERRORS = (
    "Cannot read properties of undefined (reading 'schema')",  # its settings plugin, at load
    "Command 'filebrowser:open-path' not registered.",  # the notebook page has no file browser
)


def script_errors(page):
    """The uncaught script errors of the page, less the known ones of Notebook 7's own bundle."""
    return [error for error in page.script_errors
            if not (error.split("\n")[0] in NOTEBOOK7_OWN_ERRORS and "/static/notebook/notebook_core." in error)]


@pytest.fixture(scope="module")
def chromium():
    """One browser for the module, each test in contexts of its own: this process runs no kernel (the server does)."""
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium):
    """A page of a fresh browser context, 1280x900, recording uncaught script errors in ``page.script_errors``."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.script_errors = []
    page.on("pageerror", lambda error: page.script_errors.append(f"{error}\n{error.stack}"))
    yield page
    context.close()


# --------------------------------------------------------------------------
# Driving the notebook as a person does
# --------------------------------------------------------------------------
def open_notebook(page, jupyter, path, ui="JupyterLab"):
    """Open ``path`` alone: in JupyterLab in a workspace of its own, reset (no tabs of an earlier test)."""
    if ui == "JupyterLab":
        workspace = re.sub(r"\W", "-", path)
        page.goto(f"{jupyter.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={jupyter.token}")
    else:
        page.goto(f"{jupyter.url}/notebooks/{path}?token={jupyter.token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    wait_for_an_idle_kernel(jupyter, path)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=60_000)


def wait_for_an_idle_kernel(jupyter, path, timeout=90):
    """Wait until the server says the notebook's kernel has started and is idle.

    The page's own indicator says "idle" before its kernel is connected, and
    "Run All" then runs nothing (seen on a busy machine).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{jupyter.url}/api/sessions?token={jupyter.token}", timeout=5) as response:
            sessions = json.load(response)
        if any(s["path"] == path and (s.get("kernel") or {}).get("execution_state") == "idle" for s in sessions):
            return
        time.sleep(0.25)
    pytest.fail(f"{path}: no idle kernel after {timeout} s (sessions: {sessions})")


def run_all(page):
    """Run > Run All Cells, from the menu bar (the same in JupyterLab and Notebook 7); wait until it starts."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").first.filter(
        has_text=re.compile(r"\[(\d+|\*)\]")).wait_for(timeout=60_000)


def wait_until_every_code_cell_ran(page, name, timeout=RUN_TIMEOUT_MS):
    """Wait until every code cell has an execution count; on a timeout, say where the run stands."""
    try:
        page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""", timeout=timeout, polling=250)
    except Exception:
        page.screenshot(path=SCREENSHOTS / f"notebook_{name}_stuck.png")
        prompts = page.evaluate("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
                                ".map(p => p.textContent).join(' ')")
        errors = [error for error in page.evaluate(NOTEBOOK_STATE)["errors"] if error]
        raise AssertionError(f"not every cell ran within {timeout / 1000:.0f} s: {prompts}\n{errors}") from None


NOTEBOOK_STATE = """() => {
    const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
    const output = (cell, mime) => [...cell.querySelectorAll(`.jp-OutputArea-output[data-mime-type="${mime}"]`)]
        .map(o => o.textContent.trim());
    return {
        codeCells: cells.length,
        // JupyterLab shows a traceback as stderr: either is a failure to the student.
        errors: cells.map(c => output(c, 'application/vnd.jupyter.stderr').join('\\n')),
        stdout: cells.map(c => output(c, 'application/vnd.jupyter.stdout').join('\\n')),
        figures: [...document.querySelectorAll('.jp-OutputArea-output img')]
            .filter(i => !i.closest('.kmeans-player'))
            .map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]),
    };
}"""

PLAYER_STATE = """player => {
    const img = player.querySelector('.kmeans-player-frame');
    const controls = player.querySelector('.kmeans-player-controls');
    return {
        src: img.getAttribute('src').slice(0, 15),
        size: [img.naturalWidth, img.naturalHeight, Math.round(img.getBoundingClientRect().width)],
        counter: player.querySelector('.kmeans-player-counter').textContent,
        controlsHeight: controls.getBoundingClientRect().height,
        slider: player.querySelector('.kmeans-player-slider').value,
    };
}"""


def _up_to(cells, grade_id):
    """``cells`` up to and including the cell ``grade_id``."""
    return cells[:next(i for i, cell in enumerate(cells) if notebooks.grade_id(cell) == grade_id) + 1]


def figures_in(nb, until=None):
    """How many image outputs (matplotlib figures) the executed notebook ``nb`` has, up to the cell ``until``."""
    cells = _up_to(nb.cells, until) if until else nb.cells
    return sum(1 for cell in cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {}))


def check_the_player(page, name):
    """Frame 0 without a click; "next" shows frame 1; "play" reaches the last frame."""
    player = page.locator(".kmeans-player").first
    player.scroll_into_view_if_needed()
    state = player.evaluate(PLAYER_STATE)
    page.screenshot(path=SCREENSHOTS / f"notebook_{name}_player.png")
    assert state["src"] == "data:image/png;", "the script put frame 0 in place of the animated preview"
    assert state["size"][:2] == [480, 400] and state["size"][2] > 200, state
    assert state["controlsHeight"] > 0, "the buttons are shown"
    count = int(re.match(r"frame 1 of (\d+): k = 3, iteration 0: initial representatives$", state["counter"]).group(1))
    player.get_by_role("button", name="Next frame").click()
    state = player.evaluate(PLAYER_STATE)
    assert re.match(rf"frame 2 of {count}: k = 3, iteration 1: assignment step J_clust = [\d.]+$", state["counter"])
    assert state["slider"] == "1"
    player.get_by_role("button", name="Play", exact=True).click()
    player.locator(".kmeans-player-counter", has_text=f"frame {count} of {count}").wait_for(timeout=30_000)
    assert "(converged)" in player.evaluate(PLAYER_STATE)["counter"]


# --------------------------------------------------------------------------
# 1. The solved notebook: Run All, then every figure and the animation
# --------------------------------------------------------------------------
@pytest.mark.parametrize("ui, path", [("JupyterLab", "solved_lab.ipynb"), ("Notebook 7", "solved_nb7.ipynb")])
def test_the_solved_notebook_runs_all_with_its_figures_and_animation(jupyter, page, ui, path):
    name = "lab" if ui == "JupyterLab" else "nb7"
    open_notebook(page, jupyter, path, ui)
    run_all(page)
    wait_until_every_code_cell_ran(page, name)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
    state = page.evaluate(NOTEBOOK_STATE)
    page.screenshot(path=SCREENSHOTS / f"notebook_{name}_end.png")
    assert [error for error in state["errors"] if error] == []
    expected = figures_in(nbformat.read(LECTURE, as_version=4), until=NB7_UNTIL if ui == "Notebook 7" else None)
    assert len(state["figures"]) == expected and expected >= (9 if ui == "JupyterLab" else 2), state["figures"]
    assert all(width > 0 and height > 0 and shown > 0 for width, height, shown in state["figures"]), state["figures"]
    assert any("same groups as scikit-learn: True" in text for text in state["stdout"])
    check_the_player(page, name)
    assert script_errors(page) == []


# --------------------------------------------------------------------------
# 2. The untouched release, run cell by cell (Shift+Enter, waiting for each)
# --------------------------------------------------------------------------
def test_the_untouched_release_says_which_exercise_each_failure_needs(jupyter, page, release_notebook):
    open_notebook(page, jupyter, "untouched.ipynb")
    # What the course writes, as JupyterLab renders it: the text of the release's markdown cells. (JupyterLab's own
    # editors and panels are JupyterLab's: axe-core finds unnamed editors and buttons there in any notebook.)
    inaccessible = accessibility_problems(page, "jupyterlab_release", include=[".jp-MarkdownCell .jp-RenderedMarkdown"])
    assert inaccessible == [], inaccessible
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")  # command mode: Shift+Enter runs the cell and selects the next
    code_seen = 0
    for index, cell in enumerate(release_notebook.cells):
        # Shift+Enter on the last cell would add a new one: Ctrl+Enter runs it in place.
        page.keyboard.press("Control+Enter" if index == len(release_notebook.cells) - 1 else "Shift+Enter")
        if cell.cell_type == "code":
            code_seen += 1
            try:
                page.wait_for_function(
                    """n => { const p = document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')[n - 1];
                              return p && /\\[\\d+\\]/.test(p.textContent); }""", arg=code_seen, timeout=60_000)
            except Exception:
                page.screenshot(path=SCREENSHOTS / "notebook_untouched_stuck.png")
                raise AssertionError(f"code cell {code_seen} ({notebooks.grade_id(cell)}) did not run: "
                                     f"{page.evaluate(NOTEBOOK_STATE)}")
    state = page.evaluate(NOTEBOOK_STATE)
    page.screenshot(path=SCREENSHOTS / "notebook_untouched_end.png")
    code = [cell for cell in release_notebook.cells if cell.cell_type == "code"]
    assert state["codeCells"] == len(code)
    failures = {notebooks.grade_id(cell): error for cell, error in zip(code, state["errors"]) if error}
    assert 'AssertionError: Write your name between the quotes: NAME = "Your Name"' in failures.pop("student_info_test")
    assert {cell: error for cell, error in failures.items() if not re.search(r"Exercises? \d\.\d", error)} == {}
    for cell in ("assign_clusters_test", "run_kmeans", "compress_cat", "show_digits", "evaluate_10", "centroids",
                 "predict_photo", "prepare_digit_image_test"):
        assert cell in failures, cell
    assert "NotImplementedError: Exercise 1.1 is not done yet" in failures["assign_clusters_test"]
    assert "NameError" not in " ".join(failures.values()) and "KeyError" not in " ".join(failures.values())
    assert script_errors(page) == []


# --------------------------------------------------------------------------
# 3. The lecture notebook in a fresh profile: not trusted, still animated
# --------------------------------------------------------------------------
def test_the_lecture_notebook_animates_without_being_trusted(jupyter, page):
    open_notebook(page, jupyter, "lecture.ipynb")
    player = page.locator(".kmeans-player").first
    player.scroll_into_view_if_needed()
    state = player.evaluate(PLAYER_STATE)
    assert page.evaluate("() => window.kmeansPlayerListening === undefined"), "no script of the output ran"
    assert state["src"] == "data:image/webp", "the animated preview plays where scripts do not run"
    assert state["size"][:2] == [480, 400] and state["controlsHeight"] == 0, state
    frame = player.locator("img")
    shots = [frame.screenshot()]
    time.sleep(1.2)  # the preview shows a frame every 500 ms
    shots.append(frame.screenshot())
    page.screenshot(path=SCREENSHOTS / "notebook_lecture_player.png")
    assert shots[0] != shots[1], "the picture moves"
    assert script_errors(page) == []


# --------------------------------------------------------------------------
# 4. Colab: the setup cell downloads and checks the course files
# --------------------------------------------------------------------------
def test_in_colab_the_setup_cell_fetches_and_checks_the_course_files(jupyter, page):
    open_notebook(page, jupyter, "colab/clustering.ipynb")
    page.locator(".jp-Notebook .jp-CodeCell").first.click()
    page.keyboard.press("Control+Enter")
    page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[1\]")) \
        .wait_for(timeout=60_000)
    page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-OutputArea-output").last.wait_for()
    state = page.evaluate(NOTEBOOK_STATE)
    page.screenshot(path=SCREENSHOTS / "notebook_colab_setup.png")
    assert state["errors"][0] == ""
    fetched = re.findall(r"downloaded (\S+) \([\d,]+ bytes, checksum ok\)", state["stdout"][0])
    shipped = sorted(path.name for path in RELEASE_DIR.iterdir() if path.suffix != ".ipynb")
    assert sorted(fetched) == shipped
    for name in shipped:
        assert (jupyter.folder / "colab" / name).read_bytes() == (RELEASE_DIR / name).read_bytes(), name
    assert script_errors(page) == []


# --------------------------------------------------------------------------
# 5. The master in JupyterLab: the toolbar's Validate button judges its hidden tests
# --------------------------------------------------------------------------
@pytest.mark.parametrize("folder, says", [
    ("master_right", "Success! Your notebook passes all the tests."),
    ("master_wrong", "double is wrong for an array"),
])
def test_the_validate_button_judges_a_master_s_hidden_tests(jupyter, page, folder, says):
    """As an instructor editing the master: Validate in the notebook's toolbar, in a server started from the course root."""
    open_notebook(page, jupyter, f"{folder}/tiny.ipynb")
    page.locator(".jp-Toolbar").get_by_text("Validate", exact=True).click()
    dialog = page.locator(".jp-Dialog-content")
    dialog.wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog-content').innerText.includes('Validating')",
                           timeout=120_000)
    text = dialog.inner_text()
    page.screenshot(path=SCREENSHOTS / f"notebook_validate_{folder}.png")
    assert says in text, text[:2000]
    assert "this hidden test was not run" not in text.split("### END HIDDEN TESTS")[-1], text[:2000]
    assert script_errors(page) == []
