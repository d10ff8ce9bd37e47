"""The build step: from the master notebook to the student release.

``python -m coursekit build`` (``make build``) runs, in order:

1. :func:`~coursekit.common.course.sync_course_files` copies the helper module and the data files into
   ``source/<assignment>/``, where nbgrader picks them up;
2. :func:`write_colab_manifest` writes the Colab base URL and the files'
   SHA-256 into the master's setup cell;
3. :func:`coursekit.common.notebooks.check_master` validates the master's nbgrader
   structure;
4. :func:`execute_master` runs the master top to bottom in a scratch folder and
   requires every test cell to pass with nothing on stderr; the time each cell
   took goes to ``source/<assignment>/cell_times.json``, from which grading
   calibrates its time limits (:mod:`coursekit.grading.timing`; written again only
   when the master changed, or with ``--recalibrate``);
5. :func:`generate_release` runs ``nbgrader generate_assignment`` in a scratch
   course and installs the result as ``release/<assignment>/``;
6. :func:`coursekit.common.notebooks.find_leaks` proves that no solution, hidden test
   or model answer reached the release;
7. the executed master becomes the companion notebook
   ``notebooks/<assignment>_solution.ipynb``.

Every output is written only after all checks pass, and the same inputs give
the same bytes, so a test can rebuild into a temporary folder and compare.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from traitlets import Unicode
from traitlets.config import Configurable

from coursekit.common import notebooks
from coursekit.common.course import (  # noqa: F401 (build.HELPER*: part of its API)
    HELPER,
    HELPER_MODULES,
    BuildError,
    course_files,
    load_course_config,
    sync_course_files,
)
from coursekit.common.files import sha256_file, write_atomically
from coursekit.common.paths import ROOT
from coursekit.grading import timing
from coursekit.grading.bwrap import thread_env
from coursekit.grading.checker import (
    CHECKER_GUARD,
    CheckerProcess,
    judge_cell,
    split_test_cell,
    unguarded_test_cells,
)
from coursekit.grading.repair import released_source
from coursekit.grading.requirements import unstated_requirements
from coursekit.grading.sandbox import Sandbox, thread_count

log = logging.getLogger(__name__)

class CourseBuild(Configurable):
    """Settings of the build, read from ``nbgrader_config.py`` (``c.CourseBuild.*``)."""

    assignment = Unicode("clustering", help="The assignment (folder under source/) to build").tag(config=True)
    colab_base_url = Unicode(
        "https://raw.githubusercontent.com/example-university/kmeans-lab/main/release/clustering/",
        help="URL of the release folder from which the Colab setup cell downloads the helper and data",
    ).tag(config=True)
    cell_timeout = Unicode("600", help="Seconds one cell of the master may run during the build").tag(config=True)


def colab_manifest_source(cell_source, base_url, hashes):
    """Return the setup cell's source with the base URL and file hashes filled in."""
    url_line = f'COURSE_BASE_URL = "{base_url}"'
    source, count = re.subn(r"^COURSE_BASE_URL = .*$", url_line, cell_source, count=1, flags=re.MULTILINE)
    if count != 1:
        raise BuildError("the Colab setup cell has no 'COURSE_BASE_URL = ...' line")
    entries = "".join(f'    "{name}": "{digest}",\n' for name, digest in sorted(hashes.items()))
    manifest = "COURSE_FILES = {  # file name -> SHA-256; written by `make build`\n" + entries + "}"
    source, count = re.subn(
        r"^COURSE_FILES = \{\}[^\n]*$|^COURSE_FILES = \{.*?^\}$", lambda _: manifest, source, count=1, flags=re.MULTILINE | re.DOTALL
    )
    if count != 1:
        raise BuildError("the Colab setup cell has no 'COURSE_FILES = {...}' block")
    return source


def write_colab_manifest(master_path, base_url, files):
    """Update the master's Colab setup cell in place when the URL or a hash changed.

    Returns
    -------
    bool
        True when the master was rewritten.
    """
    nb = nbformat.read(master_path, as_version=4)
    cell = next((c for c in nb.cells if notebooks.grade_id(c) == "colab_setup"), None)
    if cell is None:
        raise BuildError(f"{master_path}: no cell with grade_id 'colab_setup'")
    updated = colab_manifest_source(cell.source, base_url, {name: sha256_file(path) for name, path in files.items()})
    if updated == cell.source:
        return False
    cell.source = updated
    nbformat.write(nb, master_path)
    return True


def run_with_checker(client, nb, checker, threads=1):
    """Run every cell of ``nb`` with ``client``, test cells as grading runs them.

    A test cell runs in the kernel without its checker tests, which
    ``checker`` then judges (:func:`coursekit.grading.checker.judge_cell`), so the
    build proves each checker test passes on the solution as the grader will
    run it. The kernel gets ``threads`` BLAS/OpenMP threads, as a grading
    kernel does (``c.Sandbox.threads``), so that the cell times the build
    records are those of grading.
    """
    try:
        with client.setup_kernel(env={**os.environ, **thread_env(threads)}):
            info = client.wait_for_reply(client.kc.kernel_info())
            nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(nb.cells):
                tests = []
                if notebooks.is_test_cell(cell):
                    kernel_source, checker_source, tests = split_test_cell(cell.source)
                original = cell.source
                if tests:
                    cell.source = kernel_source
                try:
                    client.execute_cell(cell, index)
                finally:
                    cell.source = original
                if tests and not any(output.get("output_type") == "error" for output in cell.outputs):
                    judge_cell(client, cell, checker_source, tests, checker)
            client.set_widgets_metadata()
    finally:
        checker.close()


def execute_master(assignment_dir, notebook_name, timeout=600, threads=1):
    """Run a copy of the master top to bottom and check that every test passes.

    The copy runs in a scratch folder, so the files the notebook writes (the
    compressed cats) never land in ``source/``. Checker tests are judged as
    grading judges them (:func:`run_with_checker`), and the kernel has
    ``threads`` BLAS/OpenMP threads, as a grading kernel has.

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook (outputs kept, nbclient's timing metadata in
        each cell's ``metadata.execution``; :func:`normalize_executed` drops it).

    Raises
    ------
    BuildError
        Listing each cell that raised, and each test cell that wrote to stderr.
    """
    from nbclient import NotebookClient
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="coursekit-run-") as scratch:
        for item in Path(assignment_dir).iterdir():
            if item.is_file():
                shutil.copyfile(item, Path(scratch) / item.name)
        nb = nbformat.read(Path(scratch) / notebook_name, as_version=4)
        # The kernel's sockets are Unix sockets in the scratch folder, as grading's are: over TCP, even on
        # 127.0.0.1, ipykernel warns on every build that it "is running over TCP without encryption".
        # (Set through the configuration, so that the client makes, and shuts down, the kernel manager itself.)
        sockets = Config()
        sockets.KernelManager.transport = "ipc"
        sockets.KernelManager.ip = str(Path(scratch) / "kernel")
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=True, record_timing=True,
            coalesce_streams=True, resources={"metadata": {"path": scratch}}, config=sockets,
        )
        run_with_checker(client, nb, CheckerProcess([scratch]), threads=threads)
    problems = []
    for index, cell in enumerate(nb.cells):
        where = f"cell {index} ({notebooks.grade_id(cell) or 'ungraded'})"
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"{where} raised {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr" and notebooks.is_test_cell(cell):
                problems.append(f"{where} wrote to stderr (nbgrader would fail it): {output.text.strip()[:200]}")
    if problems:
        raise BuildError(f"{notebook_name}: the solution does not pass its own tests:\n  " + "\n  ".join(problems))
    return nb


def run_nbgrader(*args, cwd, fail_on_logged_errors=True):
    """Run an nbgrader command and return its log.

    nbgrader logs some failures (a broken nbgrader_config.py among them) and
    still exits 0; with ``fail_on_logged_errors`` any ERROR line fails too.
    """
    env = dict(os.environ)
    # nbgrader runs `alembic` from PATH to create the gradebook.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or (fail_on_logged_errors and " | ERROR]" in output):
        raise BuildError(f"nbgrader {' '.join(args)} failed:\n{output[-4000:]}")
    return output


def generate_release(root, assignment, source_dir, release_dir):
    """Run ``nbgrader generate_assignment`` in a scratch course; install into ``release_dir``.

    The scratch course keeps the build from touching the instructor's
    gradebook; the grade step registers the assignment in its own.
    """
    with tempfile.TemporaryDirectory(prefix="coursekit-course-") as scratch:
        shutil.copytree(source_dir, Path(scratch) / "source" / assignment)
        run_nbgrader("generate_assignment", assignment, "--force", f"--CourseDirectory.root={scratch}", cwd=root)
        generated = Path(scratch) / "release" / assignment
        release_dir = Path(release_dir)
        staging = release_dir.with_name(release_dir.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(generated, staging)
    return staging


def _install(staging, target):
    """Replace ``target`` (a folder or file) by ``staging`` with as small a window as possible."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.is_dir():
        shutil.rmtree(old)
    elif old.exists():
        old.unlink()


def normalize_executed(nb):
    """Drop metadata that differs between otherwise identical runs."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


#: Where the build records what it was made from (:func:`build_fingerprint`), under the course root.
BUILD_RECORD = Path(".coursekit") / "build.json"


def build_fingerprint(root, assignment):
    """SHA-256 of everything a build reads and writes, or None when something it writes is missing.

    The master, the files synced beside it, ``nbgrader_config.py``, the
    course package's own code (its preprocessors shape the release), and what
    the build wrote: the release's files and the companion notebook. A change
    to any of them, a hand edit of the release included, changes it.
    """
    root = Path(root)
    package = Path(__file__).resolve().parents[1]
    release = root / "release" / assignment
    companion = root / "notebooks" / f"{assignment}_solution.ipynb"
    if not release.is_dir() or not companion.is_file():
        return None
    paths = [root / "source" / assignment / f"{assignment}.ipynb", root / "nbgrader_config.py", companion,
             *course_files(root).values(), *sorted(package.rglob("*.py")), *sorted(package.rglob("*.j2")),
             *sorted(p for p in release.rglob("*") if p.is_file())]
    digest = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            return None
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.relative_to(package)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_is_current(root=ROOT, assignment="clustering"):
    """Whether the last build of ``root`` was made from the master, settings and code there now, and is untouched."""
    record = Path(root) / BUILD_RECORD
    try:
        made_from = json.loads(record.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    return made_from is not None and made_from == build_fingerprint(root, assignment)


def build(root=ROOT, release_root=None, notebooks_dir=None, recalibrate=False):
    """Build the release and the companion notebook; see the module docstring.

    Parameters
    ----------
    root : path-like
        The course repository (holding nbgrader_config.py and source/).
    release_root, notebooks_dir : path-like, optional
        Where to write ``<assignment>/`` and the companion notebook; default
        ``root/release`` and ``root/notebooks``. Tests point them elsewhere to
        check that the committed copies are up to date.
    recalibrate : bool
        Write ``cell_times.json`` from this run even when it already holds
        the times of this master (for example after moving to a new machine).

    Returns
    -------
    dict
        Paths of what was written.
    """
    root = Path(root)
    config = load_course_config(root)
    settings = CourseBuild(config=config)
    assignment = settings.assignment
    source_dir = root / "source" / assignment
    master_path = source_dir / f"{assignment}.ipynb"
    release_root = Path(release_root) if release_root else root / "release"
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else root / "notebooks"
    if not master_path.is_file():
        raise BuildError(f"{master_path}: the master notebook is missing")

    files = course_files(root)
    copied = sync_course_files(source_dir, files)
    log.info(f"synced {', '.join(copied) if copied else 'nothing (helper and data up to date)'} into {source_dir}")
    if write_colab_manifest(master_path, settings.colab_base_url, files):
        log.info(f"updated the Colab setup cell of {master_path}")

    master = nbformat.read(master_path, as_version=4)
    problems = notebooks.check_master(master, name=str(master_path.relative_to(root)))
    problems += [f"{grade_id}: end its hidden tests with this line, after its checker tests (without it, nbgrader "
                 f"run without this course's config would pass them unjudged):\n    {CHECKER_GUARD}"
                 for grade_id in unguarded_test_cells(master)]
    problems += unstated_requirements(master)
    if problems:
        raise BuildError("the master notebook has problems:\n  " + "\n  ".join(problems))
    log.info(f"checked {master_path.name}: {len(notebooks.graded_cells(master))} graded cells, "
        f"{sum(notebooks.graded_cells(master).values()):g} points")

    executed = execute_master(source_dir, master_path.name, timeout=int(settings.cell_timeout),
                              threads=thread_count(Sandbox(config=config)))
    log.info("ran the solution: every test passes")
    times_path = source_dir / timing.CELL_TIMES
    if recalibrate or not timing.cell_times_current(times_path, master_path):
        table = timing.write_cell_times(times_path, master_path, timing.cell_seconds(executed, released_source))
        log.info(f"wrote {times_path.relative_to(root)}: the solution's cell times ({table['total_seconds']:.1f} s in all), "
            "from which grading sets its time limits")
    executed = normalize_executed(executed)

    release_root.mkdir(parents=True, exist_ok=True)
    staging = generate_release(root, assignment, source_dir, release_root / assignment)
    try:
        release_nb = nbformat.read(staging / master_path.name, as_version=4)
        leaks = notebooks.find_leaks(master, release_nb, name=f"release/{assignment}/{master_path.name}")
        for path in staging.iterdir():
            if path.suffix in (".py", ".md", ".txt") and any(m in path.read_text(errors="replace") for m in notebooks.MARKERS):
                leaks.append(f"release/{assignment}/{path.name}: contains solution or hidden-test markers")
        if leaks:
            raise BuildError("the release would leak:\n  " + "\n  ".join(leaks))
        _install(staging, release_root / assignment)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(f"wrote {release_root / assignment} (no solution, hidden test or model answer in it)")

    notebooks_dir.mkdir(parents=True, exist_ok=True)
    companion = notebooks_dir / f"{assignment}_solution.ipynb"
    write_atomically(companion, nbformat.writes(executed) + "\n")
    log.info(f"wrote {companion} (the executed solution, for lectures)")
    if release_root == root / "release" and notebooks_dir == root / "notebooks":
        record = root / BUILD_RECORD
        record.parent.mkdir(exist_ok=True)
        write_atomically(record, json.dumps({"fingerprint": build_fingerprint(root, assignment)}) + "\n")
    return {"release": release_root / assignment, "companion": companion}
