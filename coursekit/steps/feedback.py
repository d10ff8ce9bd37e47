"""The feedback step: one HTML page per graded student, without hidden tests.

``python -m coursekit feedback [STUDENT ...]`` runs nbgrader's
``generate_feedback`` for every student the grade step graded; the course's
:class:`coursekit.common.preprocessors.HideHiddenTests` (configured in
``nbgrader_config.py``) removes hidden-test code and the traceback lines that
quote it, while each test's points and error message stay;
:class:`coursekit.common.preprocessors.SummarizeExercises` lists the exercises at the
top, and :mod:`coursekit.pages.feedback_page` renders a page that needs no network
(formulas as MathML, the course's template).

Only the page leaves. nbgrader's ``generate_feedback`` copies every file of
the student's autograded folder into the feedback folder, following links;
here it runs in a scratch course that holds nothing but a copy of the graded
notebook, read as a regular file of bounded size and written anew by nbformat
(:func:`copy_graded_notebook`). ``feedback/<student>/<assignment>/`` then holds
the one HTML file: no data, no helper, nothing the student's code left behind.
A submission that came through nbgrader's exchange (``nbgrader submit`` then
``nbgrader collect``) also gets its ``timestamp.txt`` and
``submission_secret.txt`` back beside the page, checked to be what nbgrader
writes (:func:`exchange_receipts`): ``nbgrader release_feedback`` needs both
to address the page to the student who submitted.

As a last line of defence every page is scanned for the master's hidden-test
and solution lines before it is kept: a page that would leak is deleted and
reported, never handed out.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from coursekit.common import notebooks
from coursekit.common.errors import CourseError
from coursekit.common.files import UnsafeFile, read_regular_file, write_atomically
from coursekit.common.paths import ROOT
from coursekit.common.results import GRADED, load_results, status_path
from coursekit.grading.gradebook import ensure_tools_on_path, gradebook_url, nbgrader_api
from coursekit.steps import build

log = logging.getLogger(__name__)

#: What ``nbgrader submit`` writes: an ISO time, and ``secrets.token_hex(64)``.
_RECEIPTS = {
    "timestamp.txt": re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( ?[A-Za-z]+|[+-]\d{2}:?\d{2})?\s*"),
    "submission_secret.txt": re.compile(r"[0-9a-f]{32,256}\s*"),
}
_RECEIPT_MAX_BYTES = 512


class FeedbackError(CourseError):
    """Feedback could not be produced safely for some students."""


def secret_lines(master):
    """The hidden-test lines of the master: never shown to students.

    Solution lines are not included: a student may well write the same code.
    """
    return notebooks.secret_lines(master, include_solutions=False)


def leaked_lines(page_text, secrets):
    """The secret lines that appear in an HTML page.

    Compared on the page's text: tags removed (syntax highlighting wraps every
    token of a code line in its own tag) and entities unescaped.
    """
    text = html.unescape(re.sub(r"<[^>]*>", "", page_text))
    return sorted(line for line in secrets if line in text)


def feedback_path(course_root, assignment, student):
    return Path(course_root) / "feedback" / student / assignment / f"{assignment}.html"


def copy_graded_notebook(course_root, assignment, student, scratch):
    """Put a clean copy of the student's graded notebook into the scratch course ``scratch``.

    The notebook is read without following links, parsed, and written anew:
    whatever else lies in ``autograded/<student>/<assignment>/`` stays there.
    """
    name = f"{assignment}.ipynb"
    nb = notebooks.read_graded_notebook(course_root, assignment, student)
    folder = Path(scratch) / "autograded" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / name)


def exchange_receipts(course_root, assignment, student):
    """The ``timestamp.txt`` and ``submission_secret.txt`` of an exchange submission, if they are sound.

    nbgrader's ``release_feedback`` reads both from the feedback folder. They
    come from the student's side of the exchange, so each is taken only as a
    regular file of a few bytes that reads like what nbgrader writes (an ISO
    time; 32 to 256 hexadecimal digits).

    Returns
    -------
    dict
        {file name: bytes}, possibly empty (not an exchange submission).
    """
    folder = Path(course_root) / "submitted" / student / assignment
    receipts = {}
    for name, pattern in _RECEIPTS.items():
        if not (folder / name).exists() and not (folder / name).is_symlink():
            continue
        try:
            data = read_regular_file(folder / name, _RECEIPT_MAX_BYTES)
            text = data.decode("ascii")
        except (UnsafeFile, UnicodeDecodeError) as error:
            log.warning(f"{folder / name}: not used ({error}); nbgrader's release_feedback will skip {student}")
            continue
        if not pattern.fullmatch(text):
            log.warning(f"{folder / name}: not what nbgrader writes; nbgrader's release_feedback will skip {student}")
            continue
        receipts[name] = data
    return receipts


def _install_page(page, destination, receipts):
    """Make ``destination``'s folder hold exactly the page and the receipts (old copies of data files go)."""
    folder = destination.parent
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)  # never follows links inside
    folder.mkdir(parents=True)
    write_atomically(destination, page.read_bytes())
    for name, data in receipts.items():
        write_atomically(folder / name, data)


def generate_feedback(course_root=ROOT, assignment="clustering", students=None, shard=None, gradebook=None):
    """Write ``feedback/<student>/<assignment>/<assignment>.html`` for graded students.

    Parameters
    ----------
    course_root : path-like
        The course folder.
    assignment : str
        The assignment.
    students : list of str, optional
        Only these students (default: every student the grade step graded).
    shard : (int, int), optional
        Only the students shard i of N graded, as its own status file says
        (``grade --shard``): an array task writes its students' pages before
        the shards are merged, so that no single job writes them all.
    gradebook : path-like, optional
        The gradebook file the scores are read from (a shard's; default: the
        course's, ``c.CourseDirectory.db_url`` or ``gradebook.db``).

    Returns
    -------
    dict
        {student id: path of the feedback page}.

    Raises
    ------
    FeedbackError
        After trying every student, naming those whose feedback failed or would
        have leaked hidden tests.
    """
    ensure_tools_on_path()
    course_root = Path(course_root)
    results = load_results(status_path(course_root, assignment, shard))
    graded = [r.student for r in results if r.status == GRADED and (not students or r.student in students)]
    master = nbformat.read(course_root / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    secrets = secret_lines(master)
    written, problems = {}, []
    with tempfile.TemporaryDirectory(prefix="coursekit-feedback-") as scratch:
        scratch = Path(scratch)
        config = build.load_course_config(ROOT)
        config.CourseDirectory.db_url = gradebook_url(course_root, config, gradebook)
        # nbgrader reads the graded notebook from, and writes the page to, the scratch course.
        config.CourseDirectory.autograded_directory = str(scratch / "autograded")
        config.CourseDirectory.feedback_directory = str(scratch / "feedback")
        api = nbgrader_api(course_root, config=config)
        for student in graded:
            try:
                copy_graded_notebook(course_root, assignment, student, scratch)
            except (UnsafeFile, ValueError, UnicodeDecodeError) as error:
                problems.append(f"{student}: the graded notebook cannot be read safely: {error}")
                continue
            outcome = api.generate_feedback(assignment, student, force=True)
            page = scratch / "feedback" / student / assignment / f"{assignment}.html"
            if not outcome["success"] or not page.is_file():
                problems.append(f"{student}: nbgrader could not make feedback ({(outcome.get('error') or '').strip().splitlines()[-1:]})")
                continue
            leaks = leaked_lines(page.read_text(encoding="utf-8"), secrets)
            if leaks:
                problems.append(f"{student}: feedback withheld, it would show hidden tests ({leaks[0]!r} ...)")
                continue
            written[student] = feedback_path(course_root, assignment, student)
            _install_page(page, written[student], exchange_receipts(course_root, assignment, student))
            shutil.rmtree(scratch / "autograded" / student)
    for student, page in sorted(written.items()):
        log.info(f"feedback for {student}: {page}")
    if problems:
        raise FeedbackError("feedback failed for some students:\n  " + "\n  ".join(problems))
    return written
