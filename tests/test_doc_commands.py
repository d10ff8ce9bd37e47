"""The commands the docs give, run as written.

Every fenced block of README.md and of the manual (docs/) says its language.
Every shell block (``bash``) is one of:

- run here, in a copy of the repository whose path has a space in it, in the
  order of the pages, as a TA or instructor would type it: the data, the
  build, a Canvas download collected and graded, a regrade, feedback, the
  class report and the LMS files (the download and the Canvas exports the
  commands name are put where the docs say they are). The build there also
  proves the generated folders current: ``release/`` and the companion
  notebook it makes are the committed ones, byte for byte (else: run
  ``make build`` and commit the result);
- run by another test, named in an HTML comment above the block
  (``<!-- run by: tests/test_first_day.py -->``), which takes the block's text
  from the page (``doc_shell_block``);
- not run, with the reason in a comment above it (``<!-- not run: needs a
  Kubernetes cluster -->``).

A command that stops working fails here, with its page and line.
"""

import subprocess
import zipfile

import nbformat
import pytest
from conftest import (
    DOC_PAGES,
    SHELL_LANGUAGES,
    doc_blocks,
    scratch_repository,
    stale_generated_files,
    without_slow_demonstrations,
)

from coursekit.common.paths import ROOT
from coursekit.steps import demo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: The order a person goes through the pages run here: data and build first, then the TA's route.
ORDER = ["docs/instructors/data.md", "docs/instructors/build.md", "docs/tas/index.md", "docs/tas/grading.md",
         "docs/tas/feedback.md", "docs/tas/formgrader.md", "docs/tas/report.md", "docs/tas/lms.md"]


def _all_blocks():
    return [block for page in DOC_PAGES for block in doc_blocks(page)]


def test_every_fenced_block_says_its_language():
    assert [block for block in _all_blocks() if not block.language] == []


def test_every_shell_block_is_run_or_says_why_not():
    problems = []
    for block in _all_blocks():
        if block.language not in SHELL_LANGUAGES:
            continue
        if block.marker is None:
            if block.page not in ORDER:
                problems.append(f"{block}: run by nobody (add its page to ORDER here, or a marker)")
            continue
        kind, detail = block.marker
        if kind == "not run" and len(detail.split()) < 3:
            problems.append(f"{block}: 'not run' needs a reason")
        if kind == "run by":
            test = ROOT / detail
            if not (test.is_file() and block.page in test.read_text() and "doc_shell_block(" in test.read_text()):
                problems.append(f"{block}: {detail} does not take this block from {block.page}")
    assert problems == []


def _put_the_named_inputs_in_place(repository, master_notebook, release_notebook):
    """The files the commands name: a Canvas download in downloads/canvas.zip and two Canvas gradebook exports."""
    # Without the slowest demonstrations: graded twice each here (the whole notebook is graded in test_pipeline).
    solved = without_slow_demonstrations(demo.with_student(master_notebook, "Ada Lovelace", "20260001"))
    blank = without_slow_demonstrations(demo.with_student(release_notebook, "Bo Blank", "20260002"))
    (repository / "downloads").mkdir()
    with zipfile.ZipFile(repository / "downloads" / "canvas.zip", "w") as archive:
        archive.writestr(demo.PERFECT, nbformat.writes(solved))
        archive.writestr(demo.BLANK, nbformat.writes(blank))
    export = demo.make_demo_canvas_export(repository / "export.csv").read_text(encoding="utf-8")
    # The docs' example column is "Clustering lab (12345)".
    for name in ("export.csv", "2026-11-30T1605_Grades-LA101.csv"):
        (repository / name).write_text(export.replace(demo.CANVAS_COLUMN, "Clustering lab (12345)"), encoding="utf-8")


def test_the_commands_of_the_docs_run_as_written(tmp_path, master_notebook, release_notebook):
    repository = tmp_path / "a course copy"
    repository.mkdir()
    environment = scratch_repository(repository)
    # `python` in the docs is the course's (docs/instructors/commands.md): the environment activated.
    environment["PATH"] = f"{repository / '.venv' / 'bin'}:{environment['PATH']}"
    _put_the_named_inputs_in_place(repository, master_notebook, release_notebook)
    ran = []
    for page in ORDER:
        for block in doc_blocks(page):
            if block.language not in SHELL_LANGUAGES or block.marker is not None:
                continue
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=repository, env=environment,
                                  capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, f"{block} failed:\n{block.text}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            ran.append(str(block))
    assert {block.split(":")[0] for block in ran} == set(ORDER), ran  # every page of the route had its turn
    # What the route left, where the docs say it is.
    reports = repository / "reports" / "clustering"
    for made in ("grades.csv", "class_report.html", "lms/canvas_gradebook_import.csv", "lms/canvas_feedback_files.zip"):
        assert (reports / made).is_file(), made
    assert (repository / "feedback" / "20260001" / "clustering" / "clustering.html").is_file()
    stale = stale_generated_files(repository)
    assert stale == [], f"stale generated files {stale}: run `make build` and commit the result"
    assert not (ROOT / "downloads" / "canvas.zip").exists(), "nothing was written into the repository itself"
