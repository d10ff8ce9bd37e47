"""Shared fixtures.

Grading fixtures: the master and release notebooks (read once), a scratch
course with the master already registered in its gradebook (built once, copied
by each test that grades), and the one way a test hands in a submission.
"""

import contextlib
import copy
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from coursekit.grading.bwrap import thread_env

# One BLAS/OpenMP thread for every process the tests start (this one, Jupyter and its kernels, the build's
# kernel, Slurm's jobs), as grading kernels have: `make test` runs two test processes on two cores, and two
# threads each made OpenMP spin against the other process (scikit-learn's k-means took twice as long).
# Set before NumPy is first imported here.
os.environ.update(thread_env(1))

import nbformat  # noqa: E402
import pytest  # noqa: E402
from nbgrader.api import Gradebook  # noqa: E402

from coursekit.cli import MessageFormatter  # noqa: E402
from coursekit.common import notebooks  # noqa: E402
from coursekit.common.paths import ROOT  # noqa: E402
from coursekit.grading.gradebook import register_assignment  # noqa: E402
from coursekit.steps import demo

ASSIGNMENT = "clustering"


#: Seconds each module took in ``make test`` on 2 cores with three workers (``PYTEST_ARGS="--durations=0"``,
#: setup, call and teardown summed per module; December 5, 2026, evening). Only their order matters: see
#: :func:`pytest_collection_modifyitems`.
MODULE_SECONDS = {
    "test_ordinary_user": 149, "test_pipeline": 136, "test_browser_notebook": 123, "test_doc_commands": 94,
    "test_adversarial": 84, "test_inert_pages": 58, "test_sandbox": 56, "test_interrupt": 44, "test_docs": 42,
    "test_slurm": 38, "test_checker": 29, "test_fuzz_notebooks": 28, "test_first_day": 23, "test_warm": 22,
    "test_parallel": 22, "test_similarity_class": 19, "test_autograde_release": 18, "test_environment": 18,
    "test_kmeans_helper": 13, "test_similarity": 12, "test_postgres": 11, "test_report": 11, "test_data": 8,
    "test_repair": 6, "test_exchange": 5, "test_colab_setup": 2, "test_download": 2, "test_collect": 1,
    "test_preprocessors": 1, "test_lms": 1, "test_architecture": 1, "test_deploy": 0, "test_sanitize": 0,
    "test_failures": 0, "test_feedback_page": 0, "test_release": 0, "test_build_checks": 0, "test_outputs": 0,
    "test_plain_data": 0,
}


def pytest_collection_modifyitems(config, items):
    """The longest modules first (the order within a module kept).

    Test modules run three at a time, a module on one worker (``make test``),
    each worker taking the next module when it is free, in this order
    (``--no-loadscope-reorder``: xdist would order them by their number of
    tests otherwise). Started last, a module that grades whole notebooks
    would keep one worker busy long after the other has run out of work;
    started first, the quick modules fill the end (longest processing time
    first). A module not in :data:`MODULE_SECONDS` (a new one) goes first, in
    case it is long.
    """
    first_seen = {name: index for index, name in enumerate(dict.fromkeys(item.module.__name__ for item in items))}

    def weight(name):
        return MODULE_SECONDS.get(name.rpartition(".")[2], float("inf"))

    items.sort(key=lambda item: (-weight(item.module.__name__), first_seen[item.module.__name__]))


class _Route:
    def __init__(self, body, status=200, declared_length=None):
        self.body = body
        self.status = status
        self.declared_length = len(body) if declared_length is None else declared_length


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        self.send_response(route.status)
        self.send_header("Content-Length", str(route.declared_length))
        self.end_headers()
        # A declared length longer than the body simulates a transfer cut short.
        self.wfile.write(route.body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


class LogLines:
    """The package's log lines so far, as the command line shows them (``warning: `` before warnings)."""

    def __init__(self, caplog):
        self._caplog = caplog
        self._formatter = MessageFormatter("%(message)s")

    def _lines(self):
        return [self._formatter.format(record) for record in self._caplog.records
                if record.name.startswith("coursekit")]

    def __iter__(self):
        return iter(self._lines())

    def __getitem__(self, index):
        return self._lines()[index]

    def __len__(self):
        return len(self._lines())


def signal_state():
    """This thread's handlers of SIGINT and SIGTERM and its blocked signals: what a child process inherits."""
    return (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
            frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, [])))


@pytest.fixture(autouse=True)
def signals_left_as_found(request):
    """Every test leaves SIGINT and SIGTERM (handlers and blocked mask) as it found them.

    Processes the tests start inherit them: a test that left SIGINT ignored or
    blocked would make a later Ctrl-C test of the same worker fail.
    """
    before = signal_state()
    yield
    assert signal_state() == before, f"{request.node.nodeid} changed this process's SIGINT/SIGTERM handling"


@pytest.fixture
def log_lines(caplog):
    """Live view of the log lines the code under test writes (INFO and up)."""
    caplog.set_level("INFO", logger="coursekit")
    return LogLines(caplog)


#: Screenshots the browser tests take, for a person to look at (not committed).
SCREENSHOTS = ROOT / "tests" / "screenshots"


@contextlib.contextmanager
def launched_chromium():
    """Debian's chromium, driven by Playwright (its own browser download is not needed).

    Skipped where chromium is missing, except under CI (``make test`` installs
    it there with apt-get), where a missing browser is a failure.
    """
    path = shutil.which("chromium")
    if path is None:
        message = "needs Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def chromium():
    """A browser for one test (:func:`launched_chromium`); each test makes its own contexts in it.

    One per test, set up after the wider fixtures: Playwright's sync API runs
    an event loop in this thread while it is open, and kernels (nbclient's
    ``asyncio.run``) cannot start meanwhile. A module whose process runs no
    kernel once its browser is open may override this fixture with a
    module-scoped one (about 1.2 s of CPU saved per test).
    """
    with launched_chromium() as browser:
        yield browser


@contextlib.contextmanager
def jupyterlab_server(root_dir, scratch, env=None, cwd=ROOT):
    """``jupyter lab`` on 127.0.0.1 as a person starts it, with a fresh profile; yields (url, token).

    Jupyter's folders (config, data, runtime, workspaces, settings) are new
    under ``scratch``, so nothing is trusted or remembered, and JupyterLab's
    news toast is off (it covers a corner of every screenshot). ``env`` adds
    variables; the server's log is ``scratch/jupyterlab.log``.
    """
    settings = scratch / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false"}\n')
    environment = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                       JUPYTERLAB_SETTINGS_DIR=str(settings), **(env or {}))
    for name, folder in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:
        environment[name] = str(scratch / folder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root_dir}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = scratch / "jupyterlab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.25)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def http_server():
    """A throw-away HTTP server on 127.0.0.1; ``serve(path, body, ...)`` adds a route.

    Yields an object with ``url(path)`` and ``serve(path, body, status=200,
    declared_length=None)``.
    """
    handler = type("Handler", (_Handler,), {"routes": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Server:
        @staticmethod
        def url(path):
            return f"http://127.0.0.1:{server.server_address[1]}{path}"

        @staticmethod
        def serve(path, body, status=200, declared_length=None):
            handler.routes[path] = _Route(body, status, declared_length)

    try:
        yield Server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def master_notebook():
    """The master notebook (solutions and hidden tests), read once. Read-only: copy before changing it."""
    return nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


@pytest.fixture(scope="session")
def release_notebook():
    """The committed student release of the notebook, read once. Read-only: copy before changing it."""
    return nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)


#: The master's demonstration cells that take most of its run time (the animation, the colour
#: sweep, the k sweep over MNIST and what uses its models, the twenty starts, the cat in 16 colours and
#: the first digits): 9.4 of its 10.3 seconds, and most of its figures. No test cell needs them.
SLOW_DEMONSTRATIONS = ("run_kmeans", "animation", "starts", "compress_cat", "quality_sweep", "show_digits",
                       "evaluate_10", "k_sweep", "centroids", "predict_photo")


def without_slow_demonstrations(nb):
    """A copy of ``nb`` without the cells of :data:`SLOW_DEMONSTRATIONS`, as if the student deleted them.

    For tests that need a whole solved notebook but not its slowest figures (the
    attack class, the docs' commands, the first day; the tests of workers and
    shards grade :func:`small_assignment` instead): grading does
    not restore deleted cells that carry no points, so each such submission
    costs about a third of the time (kernel start and imports stay). The whole notebook is graded end to end
    elsewhere (test_pipeline, test_autograde_release, test_browser_notebook).
    """
    lean = copy.deepcopy(nb)
    lean.cells = [c for c in lean.cells if notebooks.grade_id(c) not in SLOW_DEMONSTRATIONS]
    return lean


def write_submission(course, student, notebook, assignment=ASSIGNMENT):
    """Hand in ``notebook`` as ``student``: write ``submitted/<student>/<assignment>/<assignment>.ipynb``.

    ``notebook`` is a notebook, or bytes written as they are (a corrupt file).
    Returns the path written.
    """
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    path = folder / f"{assignment}.ipynb"
    if isinstance(notebook, bytes):
        path.write_bytes(notebook)
    else:
        nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="session")
def submit():
    """``submit(course, student, notebook, assignment="clustering")``: see :func:`write_submission`."""
    return write_submission


@pytest.fixture(scope="session")
def registered_course(tmp_path_factory):
    """A scratch course (the demo course's layout) whose gradebook.db already holds the master; nothing submitted.

    Registering runs nbgrader's ``generate_assignment`` (about 3 s). It also leaves
    ``gradebook.db.registered`` beside the gradebook, saying which master it
    holds, so grading a copy of this folder skips the registration. Never
    grade in it: take a copy with ``copy_course``.
    """
    course = demo.prepare_demo_course(tmp_path_factory.mktemp("registered") / "course")
    register_assignment(course, ASSIGNMENT)
    return course


def _copier(template):
    """``copy(path, submissions=None)``: a copy of the course ``template`` at ``path``, returned.

    ``submissions`` maps student ids to what they hand in (see :func:`write_submission`).
    """
    def copy(path, submissions=None):
        shutil.copytree(template, path)
        for student, notebook in (submissions or {}).items():
            write_submission(path, student, notebook)
        return path

    return copy


@pytest.fixture(scope="session")
def copy_course(registered_course):
    """``copy_course(path, submissions=None)``: a copy of ``registered_course`` at ``path``, returned.

    ``submissions`` maps student ids to what they hand in (see :func:`write_submission`).
    """
    return _copier(registered_course)


#: The cells of the small assignment (:func:`small_assignment`): Part 0, Exercises 1.1 to 1.3 and Question 1.
SMALL_ASSIGNMENT = ("student_info_test", "part1_imports", "assign_clusters", "assign_clusters_test",
                    "update_representatives", "update_representatives_test", "clustering_objective",
                    "clustering_objective_test", "question1")
#: The small assignment's autograded points: Part 0 (1), Exercises 1.1 (2), 1.2 (2) and 1.3 (1).
SMALL_FULL = 6


def small_assignment(nb):
    """A copy of ``nb`` (the master, the release or a submission) with only the cells of :data:`SMALL_ASSIGNMENT`.

    The NAME and STUDENT_ID cell is kept too. For the tests of the grading
    machinery (workers, shards, Slurm, PostgreSQL, interrupted batches, the
    exchange, the ordinary user's account), graded in a course whose master
    is this excerpt of the real one (:func:`registered_small_course`): real
    solution, test and checker cells and a written answer, graded in about a
    fifth of the time of the whole notebook without its slowest cells. The
    whole notebook is graded end to end in test_pipeline,
    test_autograde_release, test_doc_commands and test_adversarial.
    """
    small = copy.deepcopy(nb)
    small.cells = [c for c in small.cells if notebooks.grade_id(c) in SMALL_ASSIGNMENT
                   or (c.cell_type == "code" and c.source.lstrip().startswith("NAME"))]
    return small


@pytest.fixture(scope="session")
def small_master(master_notebook):
    """The master of the small assignment (:func:`small_assignment`). Read-only."""
    return small_assignment(master_notebook)


@pytest.fixture(scope="session")
def small_release(release_notebook):
    """The release of the small assignment (:func:`small_assignment` of the committed release). Read-only."""
    return small_assignment(release_notebook)


@pytest.fixture(scope="session")
def registered_small_course(tmp_path_factory, small_master):
    """Like :func:`registered_course`, with the small assignment's master (:func:`small_assignment`) registered.

    Its assignment is still ``clustering``, with the course's own files, data and
    calibrated time limits (``cell_times.json`` names cells by ``grade_id``), so
    every command runs on it as on the real course. Never grade in it: take a
    copy with ``copy_small_course``.
    """
    course = demo.prepare_demo_course(tmp_path_factory.mktemp("registered-small") / "course")
    nbformat.write(small_master, course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    register_assignment(course, ASSIGNMENT)
    return course


@pytest.fixture(scope="session")
def copy_small_course(registered_small_course):
    """``copy_small_course(path, submissions=None)``: a copy of ``registered_small_course`` at ``path``, returned."""
    return _copier(registered_small_course)


class GradingRun:
    """``python -m coursekit grade --root <course> <options>`` running in a process (group) of its own.

    Its stdout and stderr go to the file ``log`` (a full pipe would stall it).
    """

    def __init__(self, course, *options, log):
        self.log = Path(log)
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coursekit", "grade", "--root", str(course), *map(str, options)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def wait(self, timeout=600):
        """Wait until it ends; fail with the end of its output unless it succeeded."""
        if self.process.wait(timeout=timeout) != 0:
            pytest.fail(f"{' '.join(self.process.args)} ended with {self.process.returncode}:\n"
                        f"{self.log.read_text()[-3000:]}")

    def stop(self):
        """Kill it and its workers if it still runs (when something else failed first)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="session")
def start_grading():
    """``start_grading(course, *options, log=path)``: a :class:`GradingRun` started now.

    For gradings that run at the same time as others (shards, as on separate
    machines); ``run.wait()`` waits for it, ``run.stop()`` ends it early.
    """
    return GradingRun


def canvas_name_ids(name):
    """(user id, file id) as Canvas reads them from a file's name, or None when it ignores the file.

    canvas-lms ``infer_comment_context_from_filename`` (app/models/abstract_assignment.rb), which
    Re-Upload Submissions applies to each member of the zip: the base name only, split on ``_``
    without the ``LATE`` pieces; the first all-digit piece is the user id, the second the id of
    the file; ignored when there are not two, when the last piece starts with ``link`` or when
    the name starts with ``._``. (The names of Canvas's own download follow the same rule.)
    """
    filename = name.rsplit("/", 1)[-1]
    pieces = [piece for piece in filename.split("_") if piece != "LATE"]
    numbers = [int(piece) for piece in pieces if re.fullmatch(r"[0-9]+", piece)][:2]
    if len(numbers) < 2 or pieces[-1].startswith("link") or filename.startswith("._"):
        return None
    return tuple(numbers)


def canvas_reupload_match(name, handed_in):
    """The (user id, file id) whose submission Canvas attaches a re-uploaded file to, or None if it ignores it.

    ``handed_in`` is {user id: {ids of the files they handed in}}: Canvas ignores a
    file whose id is not one of that user's submission's files.
    """
    ids = canvas_name_ids(name)
    return ids if ids is not None and ids[1] in handed_in.get(ids[0], ()) else None


#: axe-core's reports of the pages the browser tests check, kept beside the screenshots.
ACCESSIBILITY_REPORTS = SCREENSHOTS / "accessibility"
#: The impacts a page may not have (axe-core's two highest).
BLOCKING_IMPACTS = ("serious", "critical")


#: Code inputs: syntax highlighting makes thousands of spans of a few kinds, and colour contrast, axe-core's
#: costliest rule, checks each. Each kind is checked once (see :func:`accessibility_problems`).
ONCE_PER_KIND = ".input_area"
#: Marks each element matching the selector whose class names (its own and its descendants') an earlier one
#: already had; returns how many it marked.
_MARK_REPEATS = """selector => {
  const seen = new Set();
  let marked = 0;
  for (const element of document.querySelectorAll(selector)) {
    const names = [element, ...element.querySelectorAll('[class]')].flatMap(e => [...e.classList]);
    if (names.some(name => !seen.has(name))) {
      names.forEach(name => seen.add(name));
    } else {
      element.setAttribute('data-axe-repeat', '');
      marked++;
    }
  }
  return marked;
}"""


def accessibility_problems(page, name, include=None):
    """axe-core's serious and critical violations on ``page`` (a Playwright page or frame), one line each.

    The whole report (every impact) goes to ``tests/screenshots/accessibility/<name>.json``.
    ``include``, a list of CSS selectors, limits the check to those parts of the page (the
    notebook's cells in JupyterLab, not JupyterLab's own interface). Code inputs
    (:data:`ONCE_PER_KIND`) are checked once per kind: one whose class names, its own and
    its descendants', an earlier one already had is left out (same classes, same colours):
    on a feedback page 5 s of axe-core's 7 went to contrast checks of repeated highlighting.
    """
    from axe_playwright_python.sync_playwright import Axe

    context = {"include": [[selector] for selector in include]} if include else {}
    if page.evaluate(_MARK_REPEATS, ONCE_PER_KIND):
        context["exclude"] = [["[data-axe-repeat]"]]
    response = Axe().run(page, context=context or None, options={"resultTypes": ["violations"]}).response
    ACCESSIBILITY_REPORTS.mkdir(parents=True, exist_ok=True)
    report = {"url": response.get("url"), "axe": response.get("testEngine", {}).get("version"),
              "violations": response["violations"]}
    (ACCESSIBILITY_REPORTS / f"{name}.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return [f"{violation['id']} ({violation['impact']}, {len(violation['nodes'])}x): {violation['help']}; "
            f"first: {violation['nodes'][0]['target']}" for violation in response["violations"]
            if violation["impact"] in BLOCKING_IMPACTS]


# --- The commands of the docs ------------------------------------------------------------------------

#: The pages whose shell blocks a user is meant to type: README.md and the manual's sources.
DOC_PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")
                                   if not {"_build", "_autosummary"} & set(p.parts))
#: Languages of the fenced blocks that hold commands to type.
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
_MARKER = re.compile(r"<!--\s*(not run|run by):\s*(.*?)\s*-->", re.DOTALL)


class DocBlock:
    """One fenced block of a page: where it is, its language, its text, and its marker.

    ``marker`` is ("not run", reason) or ("run by", test file) from an HTML
    comment right above the block, or None (the block is run by tests/test_doc_commands.py).
    """

    def __init__(self, page, line, language, text, marker):
        self.page, self.line, self.language, self.text, self.marker = page, line, language, text, marker

    def __repr__(self):
        return f"{self.page}:{self.line}"


def doc_blocks(page):
    """The fenced blocks of a page (path relative to the repository), in order, read with markdown-it."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse((ROOT / page).read_text(encoding="utf-8"))
    blocks = []
    for index, token in enumerate(tokens):
        if token.type != "fence":
            continue
        before = tokens[index - 1] if index else None
        found = _MARKER.search(before.content) if before is not None and before.type == "html_block" else None
        marker = (found[1], found[2]) if found else None
        blocks.append(DocBlock(page, token.map[0] + 1, token.info.strip(), token.content, marker))
    return blocks


def doc_shell_block(page, first_command):
    """The commands of the shell block of ``page`` whose first line starts with ``first_command``, as typed."""
    found = [b for b in doc_blocks(page) if b.language in SHELL_LANGUAGES and b.text.startswith(first_command)]
    assert len(found) == 1, f"{page}: {len(found)} shell blocks start with {first_command!r}"
    return found[0].text


def scratch_repository(folder, venv=ROOT / ".venv"):
    """A copy of the repository's tracked files in ``folder`` (its .venv linked to ``venv``), and the environment to run in it.

    Python there imports the copy's ``coursekit`` (``PYTHONPATH``), so every
    command writes into the copy, never into the repository. The linked
    environment is brought up to date first (``tools/ensure_venv.sh``, at once
    when it is): a ``make`` in the copy finding it stale would reinstall it,
    its editable ``coursekit`` then pointing into the copy, gone after the test.
    """
    if venv == ROOT / ".venv":
        subprocess.run([str(ROOT / "tools" / "ensure_venv.sh")], cwd=ROOT, check=True, capture_output=True)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    (folder / ".venv").symlink_to(venv)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("COURSEKIT_")}
    environment["PYTHONPATH"] = str(folder)
    return environment


def stale_generated_files(built):
    """What the build made in ``built`` (a copy of the repository) that differs from the repository's own.

    The generated files are ``release/<assignment>/`` and the companion
    notebook ``notebooks/<assignment>_solution.ipynb``; the answer lists the
    names that differ or are missing on either side (empty: the committed
    ones are what the build makes now).
    """
    stale = []
    fresh, committed = built / "release" / ASSIGNMENT, ROOT / "release" / ASSIGNMENT
    names = {p.name for p in fresh.iterdir()} | {p.name for p in committed.iterdir()}
    for name in sorted(names):
        if not ((fresh / name).is_file() and (committed / name).is_file()
                and (fresh / name).read_bytes() == (committed / name).read_bytes()):
            stale.append(f"release/{ASSIGNMENT}/{name}")
    companion = Path("notebooks") / f"{ASSIGNMENT}_solution.ipynb"
    if (built / companion).read_bytes() != (ROOT / companion).read_bytes():
        stale.append(str(companion))
    return stale


#: The ordinary account of the tests (a TA's, and a grader who is not root), and its own install of the course:
#: root's .venv links to pyenv's Python under /root, which no other account may read (tools/ensure_ta_venv.sh).
ORDINARY_ACCOUNT = "coursekit-ta"
ORDINARY_VENV = Path(os.environ.get("COURSEKIT_TA_VENV", "/opt/coursekit-ta-venv"))


def ordinary_account():
    """The ordinary account's name, made with ``useradd`` if missing.

    Skips without root or without the account's install; under CI (``CI=true``)
    that is a failure, since ``make test`` makes the install as root.
    """
    if os.geteuid() != 0 or not (ORDINARY_VENV / "bin" / "jupyter").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no install for an ordinary account at {ORDINARY_VENV}: make test makes it "
                        "(tools/ensure_ta_venv.sh) when run as root")
        pytest.skip(f"needs root and the ordinary account's install {ORDINARY_VENV} (make test makes it)")
    if subprocess.run(["id", ORDINARY_ACCOUNT], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", ORDINARY_ACCOUNT], check=True)
    return ORDINARY_ACCOUNT


def ordinary_repository(base):
    """A copy of the repository in ``base/<name>`` owned by :func:`ordinary_account`, with that account's install.

    ``base`` must be a folder the account can reach (not under root's private
    pytest folder). Returns (repository, environment for ``runuser``): the
    account's home, user name and ``PATH`` (its install's ``bin`` first).
    """
    account = ordinary_account()
    os.chmod(base, 0o755)
    repository = base / "the account's repository"
    repository.mkdir()
    environment = scratch_repository(repository, venv=ORDINARY_VENV)
    home = Path(f"~{account}").expanduser()
    environment.update(HOME=str(home), USER=account, LOGNAME=account,
                       PATH=f"{repository / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    subprocess.run(["chown", "-R", f"{account}:", str(repository)], check=True)
    return repository, environment


def as_ordinary_account(command, **kw):
    """``subprocess.run(command)`` as :data:`ORDINARY_ACCOUNT` (through ``runuser``); output captured as text."""
    return subprocess.run(["runuser", "-u", ORDINARY_ACCOUNT, "--", *command], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False, **kw)


def gradebook_contents(course, assignment=ASSIGNMENT):
    """Everything autograde wrote in ``course``'s gradebook: {(student, cell): (score, needs manual grade)} and
    {(student, cell, "comment"): comment}."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        contents = {}
        for submission in gradebook.assignment_submissions(assignment):
            for nb in submission.notebooks:
                for g in nb.grades:
                    contents[(submission.student.id, g.cell.name)] = (g.auto_score, g.needs_manual_grade)
                for c in nb.comments:
                    contents[(submission.student.id, c.cell.name, "comment")] = c.auto_comment
        return contents
