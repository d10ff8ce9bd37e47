"""nbgrader's exchange, the JupyterHub route, end to end with the course's own steps.

release_assignment -> two students fetch_assignment and submit (one solved,
one partial) -> collect -> ``coursekit grade`` -> ``coursekit feedback`` ->
release_feedback -> each student fetch_feedback gets their own page, and only it.

The exchange is a local folder (``Exchange.root``). Each side calls nbgrader's
exchange in-process, as the Jupyter server does for the Assignments panel
(students) and formgrader (instructor, through ``NbGraderAPI``). nbgrader
names a student after the process's user, except for the user ``jovyan``
(the user of the Jupyter Docker stacks behind JupyterHub), where
``JUPYTERHUB_USER`` names them: the students' calls run that way, with a home
folder each.
"""

import os
import re
import shutil
import stat

import nbformat
import nbgrader.utils
import pytest
from conftest import SMALL_FULL
from nbformat.v4 import new_code_cell
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange import ExchangeFactory
from traitlets.config import Config

from coursekit.common.paths import ROOT
from coursekit.common.results import GRADED
from coursekit.grading.gradebook import nbgrader_api
from coursekit.steps import build
from coursekit.steps.demo import partial_submission, with_student
from coursekit.steps.exchange import copy_regular_files
from coursekit.steps.feedback import exchange_receipts, generate_feedback
from coursekit.steps.grade import grade

ASSIGNMENT = "clustering"
COURSE_ID = "clustering-lab"  # nbgrader_config.py


def instructor(action, course, exchange):
    """``NbGraderAPI.<action>(assignment)`` on the scratch course, with the course's nbgrader_config.py."""
    config = build.load_course_config(ROOT)
    config.Exchange.root = str(exchange)
    outcome = getattr(nbgrader_api(course, config=config), action)(ASSIGNMENT)
    assert outcome["success"], f"{action}: {outcome.get('error')}\n{outcome.get('log', '')[-3000:]}"


def student(name, home, action, exchange):
    """The exchange's ``action`` (FetchAssignment, Submit, FetchFeedback) as JupyterHub user ``name``."""
    config = Config()
    config.CourseDirectory.course_id = COURSE_ID
    config.Exchange.root = str(exchange)
    config.Exchange.assignment_dir = str(home)
    config.Exchange.cache = str(home / ".local" / "share" / "jupyter" / "nbgrader_cache")
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = ASSIGNMENT
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nbgrader.utils, "get_osusername", lambda: "jovyan")
        patch.setenv("JUPYTERHUB_USER", name)
        exchange_class = getattr(ExchangeFactory(config=config), action)
        exchange_class(coursedir=coursedir, authenticator=Authenticator(config=config), config=config).start()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, copy_small_course, small_master, small_release):
    """The whole round trip, once; returns the students' homes and the grade results.

    The students hand in the small assignment (``conftest.small_assignment``), graded against its master; the
    exchange hands out the course's whole release, as `make build` made it.
    """
    base = tmp_path_factory.mktemp("hub")
    course = copy_small_course(base / "course")
    shutil.copytree(ROOT / "release" / ASSIGNMENT, course / "release" / ASSIGNMENT)  # as `make build` made it
    exchange = base / "exchange"
    exchange.mkdir()
    instructor("release_assignment", course, exchange)

    # Eve solves it, then tries to reach the course through what she handed in (see leave_links_in_inbound).
    eve = with_student(small_master, "Eve Evil", "20260013")
    eve.cells.append(new_code_cell(EVE_READS))
    answers = {"ann": with_student(small_master, "Ann Able", "20260011"),
               "bob": with_student(partial_submission(small_master, small_release), "Bob Busy", "20260012"),
               "eve": eve}
    homes = {}
    for name, notebook in answers.items():
        homes[name] = base / "home" / name
        homes[name].mkdir(parents=True)
        student(name, homes[name], "FetchAssignment", exchange)
        fetched = homes[name] / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert fetched.is_file() and (homes[name] / ASSIGNMENT / "KmeansAnimate2D.py").is_file()
        nbformat.write(notebook, fetched)  # the student's work
        student(name, homes[name], "Submit", exchange)
    leave_links_in_inbound(exchange, "eve", course)

    instructor("collect", course, exchange)
    results = {r.student: r for r in grade(course, ASSIGNMENT, workers=2, progress=False)}
    pages = generate_feedback(course, ASSIGNMENT)
    instructor("release_feedback", course, exchange)
    for name, home in homes.items():
        student(name, home, "FetchFeedback", exchange)
    return dict(course=course, homes=homes, results=results, pages=pages)


#: Eve's last cell: everything she left in the exchange, read and printed (base64) if the kernel can.
EVE_READS = """\
import base64, os
for name in ["notes.txt", "hard.txt", "pipe.txt", "more/master.ipynb", "more/source", "extra.txt"]:
    try:
        with open(name, "rb") as file:
            print(name, "READ", base64.b64encode(file.read(4000)).decode())
    except Exception as error:
        print(name, "refused:", type(error).__name__)
print("FILES", sorted(os.listdir(".")))
"""


def leave_links_in_inbound(exchange, name, course):
    """The four ways into the course from a submission in the exchange's inbound: a link, a hard link, a FIFO,
    a folder of links; and one plain extra file."""
    inbound = exchange / COURSE_ID / "inbound"
    [folder] = [p for p in inbound.iterdir() if p.name.startswith(f"{name}+{ASSIGNMENT}+")]
    master = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    (folder / "notes.txt").symlink_to(master)
    os.link(master, folder / "hard.txt")
    os.mkfifo(folder / "pipe.txt")
    (folder / "more").mkdir()
    (folder / "more" / "master.ipynb").symlink_to(master)
    (folder / "more" / "source").symlink_to(master.parent)
    (folder / "extra.txt").write_text("my own notes\n")


@pytest.mark.slow
def test_collected_submissions_are_graded(hub):
    results = hub["results"]
    assert sorted(results) == ["ann", "bob", "eve"]
    assert (results["ann"].status, results["ann"].score) == (GRADED, SMALL_FULL)
    assert (results["bob"].status, results["bob"].score) == (GRADED, 5)
    assert (results["eve"].status, results["eve"].score) == (GRADED, SMALL_FULL)


@pytest.mark.slow
def test_nothing_of_the_course_reaches_submitted_the_kernel_or_the_feedback(hub, master_notebook):
    course = hub["course"]
    master = (course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()
    submitted = course / "submitted" / "eve" / ASSIGNMENT
    released = {p.name for p in (ROOT / "release" / ASSIGNMENT).iterdir()}
    got = sorted(str(p.relative_to(submitted)) for p in submitted.rglob("*") if p.name not in released)
    assert got == ["extra.txt", "more", "submission_secret.txt", "timestamp.txt"], got
    for path in submitted.rglob("*"):
        assert not path.is_symlink() and (path.is_dir() or stat.S_ISREG(path.lstat().st_mode))
        # (Eve's own notebook was made from the master, so it is the one file allowed to look like it.)
        assert path.is_dir() or path.name == f"{ASSIGNMENT}.ipynb" or master[:2000] not in path.read_bytes()
    page = hub["pages"]["eve"].read_text(encoding="utf-8")
    for name in ("notes.txt", "hard.txt", "pipe.txt", "more/master.ipynb", "more/source", "extra.txt"):
        assert f"{name} refused: FileNotFoundError" in page, name
    assert " READ " not in page
    listing = re.search(r"FILES (\[.*?\])", page).group(1)
    assert "extra.txt" not in listing and "more" not in listing and "KmeansAnimate2D.py" in listing
    assert any("handed in besides the notebook, not given to the kernel: extra.txt" in note
               for note in hub["results"]["eve"].notes), hub["results"]["eve"].notes
    fetched = (hub["homes"]["eve"] / ASSIGNMENT / "feedback").rglob("*.html")
    assert feedback_leaks(next(fetched).read_text(encoding="utf-8"), master_notebook) == []


def feedback_leaks(text, master):
    from coursekit.steps.feedback import leaked_lines, secret_lines
    return leaked_lines(text, secret_lines(master))


def test_collect_copies_regular_files_only(tmp_path):
    source, outside = tmp_path / "inbound" / "eve+clustering+1", tmp_path / "course"
    (source / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "master.ipynb").write_text("solutions")
    (source / "clustering.ipynb").write_text("{}")
    (source / "sub" / "ok.txt").write_text("fine")
    (source / "link.txt").symlink_to(outside / "master.ipynb")
    (source / "folder-link").symlink_to(outside)
    os.link(outside / "master.ipynb", source / "hard.txt")
    os.mkfifo(source / "pipe")
    with open(source / "huge.bin", "wb") as huge:  # 2 GB, sparse: nothing is written to the disk
        huge.truncate(2 << 30)
    (source / ".ipynb_checkpoints").mkdir()
    copied, left = copy_regular_files(source, tmp_path / "submitted", ignore=[".ipynb_checkpoints"],
                                      max_bytes=100_000_000)
    assert copied == ["clustering.ipynb", "sub/ok.txt"]
    assert dict(left) == {"folder-link": "a symbolic link", "hard.txt": "a hard link (the file has 2 names)",
                          "huge.bin": "larger than 100,000,000 bytes", "link.txt": "a symbolic link",
                          "pipe": "a FIFO"}
    assert sorted(str(p.relative_to(tmp_path / "submitted")) for p in (tmp_path / "submitted").rglob("*")) == \
        ["clustering.ipynb", "sub", "sub/ok.txt"]


@pytest.mark.slow
def test_the_feedback_folder_holds_the_page_and_what_release_feedback_needs(hub):
    for name in ("ann", "bob"):
        folder = hub["course"] / "feedback" / name / ASSIGNMENT
        assert sorted(p.name for p in folder.iterdir()) == [f"{ASSIGNMENT}.html", "submission_secret.txt",
                                                            "timestamp.txt"]


@pytest.mark.slow
def test_each_student_fetches_their_own_page_and_nothing_else(hub):
    pages = {}
    for name, home in hub["homes"].items():
        fetched = [p for p in (home / ASSIGNMENT / "feedback").rglob("*") if p.is_file()]
        assert [p.name for p in fetched] == [f"{ASSIGNMENT}.html"], fetched
        pages[name] = fetched[0].read_text(encoding="utf-8")
        assert pages[name] == hub["pages"][name].read_text(encoding="utf-8"), "the page the course made"
    assert re.search(rf"Your score: <strong>{SMALL_FULL}</strong>", pages["ann"]) and "Ann Able" in pages["ann"]
    assert re.search(r"Your score: <strong>5</strong>", pages["bob"]) and "Bob Busy" in pages["bob"]
    assert "Bob Busy" not in pages["ann"] and "Ann Able" not in pages["bob"]


# --------------------------------------------------------------------------
# The receipts come from the student's side: only sound ones are passed on
# --------------------------------------------------------------------------
TIMESTAMP = b"2026-11-30 16:09:57.524456 UTC"
SECRET = b"0123456789abcdef" * 8


def _submission(tmp_path, files):
    folder = tmp_path / "submitted" / "ann" / ASSIGNMENT
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_receipts_as_nbgrader_writes_them_are_passed_on(tmp_path):
    _submission(tmp_path, {"timestamp.txt": TIMESTAMP, "submission_secret.txt": SECRET})
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"timestamp.txt": TIMESTAMP,
                                                              "submission_secret.txt": SECRET}


def test_a_submission_from_elsewhere_has_none(tmp_path):
    _submission(tmp_path, {})
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {}


@pytest.mark.parametrize("secret", [b"<script>alert(1)</script>", b"ab" * 400, b"\xff\xfe", b"0" * 8])
def test_a_secret_that_is_not_what_nbgrader_writes_stays_behind(tmp_path, secret, log_lines):
    _submission(tmp_path, {"timestamp.txt": TIMESTAMP, "submission_secret.txt": secret})
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"timestamp.txt": TIMESTAMP}
    assert any(line.startswith("warning: ") and "submission_secret.txt" in line for line in log_lines)


def test_a_fifo_or_a_huge_receipt_stays_behind(tmp_path):
    folder = _submission(tmp_path, {"submission_secret.txt": SECRET})
    os.mkfifo(folder / "timestamp.txt")
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"submission_secret.txt": SECRET}
    (folder / "timestamp.txt").unlink()
    (folder / "timestamp.txt").write_bytes(TIMESTAMP + b" " * 10_000_000)
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"submission_secret.txt": SECRET}


def test_a_linked_receipt_is_not_followed(tmp_path):
    folder = _submission(tmp_path, {"timestamp.txt": TIMESTAMP})
    (tmp_path / "elsewhere.txt").write_bytes(SECRET)
    (folder / "submission_secret.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert exchange_receipts(tmp_path, ASSIGNMENT, "ann") == {"timestamp.txt": TIMESTAMP}
