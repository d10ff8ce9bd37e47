"""A course folder of its own, one per term or section: ``python -m coursekit new-course FOLDER``.

The repository is the course's home: the master notebook, the helper, the
data, ``nbgrader_config.py`` and the release students get. A term's grading
(its submissions, gradebook, feedback pages and reports) can live in a folder
of its own, so that terms and sections never share a gradebook and a new
term starts empty:

1. :func:`new_course` makes ``FOLDER/source/<assignment>/`` holding a copy of
   the master notebook as it is today, its calibrated cell times, and the
   helper and data files. That copy is what the term is graded against, even
   after the master changes for a later term.
2. Every step then takes the folder: ``make grade-all COURSE=FOLDER
   SUBMISSIONS=...`` (``python -m coursekit all --root FOLDER ...``),
   ``make formgrader COURSE=FOLDER`` and so on. The settings stay the
   repository's ``nbgrader_config.py``.
"""

import logging
import shutil
from pathlib import Path

from coursekit.common.course import course_files, sync_course_files
from coursekit.common.errors import CourseError
from coursekit.common.paths import ROOT
from coursekit.grading.timing import CELL_TIMES

log = logging.getLogger(__name__)


class NewCourseError(CourseError):
    """The course folder cannot be made; the message says why and what to do."""


def new_course(folder, assignment="clustering", repository=ROOT, say_next=True):
    """Make a course folder for one term's grading, with a copy of today's master.

    Parameters
    ----------
    folder : path-like
        The new course folder. It may exist only if it is empty.
    assignment : str, default="clustering"
        The assignment whose master is copied.
    repository : path-like
        The course repository holding ``source/<assignment>/``.
    say_next : bool, default=True
        Log the commands a TA runs next (the demo, which runs them itself, does not).

    Returns
    -------
    pathlib.Path
        The course folder, absolute.

    Raises
    ------
    NewCourseError
        When ``folder`` holds anything already, or the master is missing.
    """
    folder = Path(folder).absolute()
    repository = Path(repository)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NewCourseError(f"{folder}: already exists and is not an empty folder; a course folder starts empty "
                             f"(name a new one, or grade in that one with COURSE={folder})")
    master_dir = repository / "source" / assignment
    master = master_dir / f"{assignment}.ipynb"
    if not master.is_file():
        raise NewCourseError(f"{master}: the master notebook is missing; run this from the course repository")
    source = folder / "source" / assignment
    source.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(master, source / master.name)
    if (master_dir / CELL_TIMES).is_file():
        shutil.copyfile(master_dir / CELL_TIMES, source / CELL_TIMES)
    sync_course_files(source, course_files(repository))
    log.info(f"made the course folder {folder}: a copy of today's master ({master.name}), its cell times, "
             "the helper and the data")
    if say_next:
        log.info(f"next: make grade-all COURSE=\"{folder}\" SUBMISSIONS=<the LMS download>; "
                 f"grade written answers with make formgrader COURSE=\"{folder}\"")
    return folder
