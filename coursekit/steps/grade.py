"""The grade step: autograde every collected submission with nbgrader.

``python -m coursekit grade [STUDENT ...]`` (``make grade``):

1. :func:`~coursekit.grading.gradebook.register_assignment` puts the master's cells into the course
   gradebook (nbgrader's ``generate_assignment``, in this process, with the release written to a
   scratch folder, so ``release/`` stays what the build made);
2. :func:`~coursekit.grading.gradebook.find_roster` lists the students: every ``submitted/<id>/<assignment>/``
   plus every student already in the gradebook (those without a submission are
   "not submitted", never silently 0);
3. :func:`~coursekit.grading.autograde.grade_student` autogrades one submission through nbgrader's Python
   API, in this process (no start-up cost per student), and reads the score
   back from the gradebook;
4. each student's result goes to the gradebook and then to
   ``reports/<assignment>/grading_status.json`` (for the feedback and report
   steps) as soon as that student is graded, and a summary table is printed.

One bad submission never stops the batch: its failure becomes that student's
status, with the reason. Ctrl-C or SIGTERM does: what was finished stays in
the gradebook and the status file, and a rerun grades only the rest
(:class:`coursekit.common.errors.GradingInterrupted`).
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import nbformat
from nbgrader.api import MissingEntry
from sqlalchemy.exc import SAWarning
from tqdm import tqdm

from coursekit.common.course import require_course
from coursekit.common.errors import CourseError
from coursekit.common.files import text_table
from coursekit.common.paths import ROOT
from coursekit.common.results import (
    GRADED,
    NOT_SUBMITTED,
    GradeResult,
    StatusFile,
    load_results,
    status_path,
)
from coursekit.grading import autograde
from coursekit.grading.bwrap import matplotlib_font_list
from coursekit.grading.gradebook import (
    ensure_tools_on_path,
    find_roster,
    gradebook_url,
    known_students,
    max_score,
    nbgrader_api,
    read_score,
    register_assignment,
    set_student_names,
)
from coursekit.grading.parallel import (
    GradingInterrupted,
    StopOnSignals,
    grade_in_parallel,
    remove_dead_batches,
    shard_of,
)
from coursekit.grading.sandbox import (
    KernelDoesNotStart,
    Sandbox,
    SandboxUnavailable,
    check_kernel,
    check_sandbox,
    warm_up_for,
)
from coursekit.grading.socket_folders import temporary_folder_problem
from coursekit.grading.warm import (
    close_zygotes,
    imported_modules,
    needed_preload,
    wait_for_warm_up,
)
from coursekit.steps import build
from coursekit.steps.collect import student_names

log = logging.getLogger(__name__)


def _count_submitted(course_root, assignment):
    """How many students have a folder for ``assignment`` in ``submitted/`` (cheap: no notebook is read)."""
    return sum(1 for _ in (Path(course_root) / "submitted").glob(f"*/{assignment}"))


def preload_for(config, master):
    """``config`` with ``c.Sandbox.preload`` cut down to what the assignment's notebook imports.

    The warm parent imports only the entries that the master ``master`` or a
    Python file beside it (the course's helper) imports
    (:func:`~coursekit.grading.warm.needed_preload`): one ``preload`` serves
    every assignment of a course, each paying only for its own modules. The
    kernels of this batch and its warm parent read it from the same config.
    """
    preload = list(Sandbox(config=config).preload)
    needed = needed_preload(preload, imported_modules(nbformat.read(master, as_version=4),
                                                      sorted(Path(master).parent.glob("*.py"))))
    if needed == preload:
        return config
    log.debug("warm kernels: %s not preloaded (the notebook does not import them)",
              ", ".join(m for m in preload if m not in needed))
    narrowed = copy.deepcopy(config)
    narrowed.Sandbox.preload = needed
    return narrowed


def largest_first(course_root, assignment, students):
    """``students`` in the order their batch hands them out: largest submission first, then by id.

    A solved notebook runs every exercise and figure, a blank one mostly stops
    at its errors, so the size of what a student handed in is a cheap measure
    of the work. Starting the longest first leaves the short ones for the end,
    so the workers finish together instead of one waiting for the other's last
    long notebook (longest processing time first). The order changes no score.
    Nothing is read but the size of each notebook that is a regular file.
    """
    def size(student):
        try:
            with os.scandir(Path(course_root) / "submitted" / student / assignment) as entries:
                return sum(entry.stat(follow_symlinks=False).st_size for entry in entries
                           if entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False))
        except OSError:
            return 0

    return sorted(students, key=lambda student: (-size(student), student))


def unchanged_results(course_root, assignment, students, db, path=None, settings=""):
    """Earlier results still valid: graded before, and neither the submission, the master nor the grading settings changed.

    ``path`` is the status file to read (default: the assignment's);
    ``settings`` the grading settings (:func:`coursekit.grading.autograde.grading_settings`).
    """
    try:
        earlier = {r.student: r for r in load_results(path or status_path(course_root, assignment))}
    except FileNotFoundError:
        return {}
    kept = {}
    for student in students:
        previous = earlier.get(student)
        if previous and previous.status == GRADED and previous.fingerprint == autograde.fingerprint(course_root, assignment, student, settings):
            try:
                score, best = read_score(db, assignment, student)
            except MissingEntry:
                continue
            kept[student] = replace(previous, score=score, max_score=best)
    return kept


#: Longest rule under the summary's header: a terminal of 80 columns (a long reason runs past it).
RULE_WIDTH = 77


def summary_table(results):
    """A plain-text table: student, score, max, status (with the reason)."""
    rows = [("student", "score", "max", "status")]
    for r in sorted(results, key=lambda r: r.student):
        score = "" if r.score is None else f"{r.score:g}"
        status = r.status + (f": {r.reason}" if r.reason else "") + "".join(f"; {note}" for note in r.notes)
        rows.append((r.student, score, f"{r.max_score:g}", status))
    lines = text_table(rows)
    lines.insert(1, "-" * min(max(len(line) for line in lines), RULE_WIDTH))
    return "\n".join(lines)


class GradeError(CourseError):
    """Grading cannot start (for example: no sandbox and the risk not accepted)."""


def require_sandbox(allow_unsandboxed, config=None, meanwhile=None):
    """Refuse to run student code without a sandbox, unless the risk is accepted.

    Where a sandbox can be made, one trial kernel is started in it: a sandbox
    that cannot run a kernel (an environment it cannot see, limits too tight)
    is a set-up error of the grading machine, reported once with the
    kernel's own stderr, before any student is graded. ``meanwhile`` (no
    arguments) is called just before the trial kernel starts, for work that
    runs beside it in the background (the kernels' warm parent).
    """
    try:
        check_sandbox()
    except SandboxUnavailable as reason:
        if not allow_unsandboxed:
            raise GradeError(
                f"cannot sandbox student code: {reason}. Grading refused; rerun with --allow-unsandboxed "
                "(c.Sandbox.allow_unsandboxed = True) to grade anyway, with student code able to read and "
                "change the course folder and the gradebook."
            ) from None
        log.warning(f"grading without a sandbox ({reason}); student code runs with the grader's rights")
        return
    settings = Sandbox(config=config) if config is not None else None
    if settings is not None and not settings.enabled:
        return
    problem = temporary_folder_problem()
    if problem:
        raise GradeError(f"grading not started, nobody was graded: {problem}")
    if meanwhile is not None:
        meanwhile()
    try:
        check_kernel(settings)
    except KernelDoesNotStart as reason:
        close_zygotes()  # what ``meanwhile`` started is of no use now
        raise GradeError(f"grading not started, nobody was graded: {reason}") from None


def grade(course_root=ROOT, assignment="clustering", students=None, workers=1, force=False, shard=None,
          gradebook=None, progress=True, allow_unsandboxed=False, config=None):
    """Autograde the collected submissions and record every student's status.

    Parameters
    ----------
    course_root : path-like
        The course folder (gradebook.db, source/, submitted/).
    assignment : str
        The assignment to grade.
    students : list of str, optional
        Only these students (default: everyone with a submission or in the gradebook).
    workers : int
        Processes grading at the same time; scores and feedback are the same
        for any number (each kernel gets the same BLAS threads).
    force : bool
        Regrade everyone; by default a student graded before whose submission
        and master are unchanged keeps the earlier result.
    shard : (int, int), optional
        Grade only shard i of N of the roster (for separate machines).
    gradebook : path-like, optional
        Gradebook file to grade into (default ``course_root/gradebook.db``);
        shards use one each, merged afterwards with :func:`coursekit.grading.gradebook.merge_gradebooks`.
    progress : bool
        Show a progress bar.
    allow_unsandboxed : bool
        Grade even where no sandbox can be made (the risk is the caller's).
    config : traitlets.config.Config, optional
        nbgrader settings (default: ``nbgrader_config.py`` of the repository).

    Returns
    -------
    list of GradeResult
        One per student, sorted by id.

    Raises
    ------
    GradingInterrupted
        On SIGINT (Ctrl-C) or SIGTERM while the batch runs. Every student
        finished before is in the gradebook and the status file; a rerun
        grades the others.
    """
    ensure_tools_on_path()
    config = config or build.load_course_config(ROOT)
    course_root = Path(course_root).resolve()
    master = require_course(course_root, assignment)
    # The kernels' warm parent starts beside the trial kernel and the gradebook's work, if there is more than
    # one to grade.
    notebooks = len(students) if students else _count_submitted(course_root, assignment)
    config = preload_for(config, master)
    require_sandbox(allow_unsandboxed, config, meanwhile=lambda: warm_up_for(Sandbox(config=config), workers, notebooks))
    db = gradebook_url(course_root, config, gradebook)
    register_assignment(course_root, assignment, db=db)
    submitted, missing = find_roster(course_root, assignment, students, db=db)
    unknown = sorted(set(missing) - known_students(db)) if students else []
    if unknown:  # a mistyped id would become a student who "did not submit", in every report after
        raise GradeError(f"no student {', '.join(unknown)} in {course_root}: no folder submitted/<id>/{assignment}/ "
                         "and not in the gradebook; check the id, or collect the submission first")
    # An unreadable notebook names nobody: formgrader then shows the student's id.
    set_student_names(db, student_names(course_root, assignment, submitted, f"{assignment}.ipynb"), submitted)
    if shard:
        roster = set(shard_of(submitted + missing, *shard))
        submitted, missing = [s for s in submitted if s in roster], [s for s in missing if s in roster]
    path = status_path(course_root, assignment, shard)  # a shard keeps its own, merged afterwards
    kept = {} if force else unchanged_results(course_root, assignment, submitted, db, path,
                                              autograde.grading_settings(config))
    todo = largest_first(course_root, assignment, [s for s in submitted if s not in kept])
    if kept:
        log.info(f"{len(kept)} submission(s) unchanged since they were graded: kept (use --force to regrade)")
    best = max_score(db, assignment)
    absent = [GradeResult(student, NOT_SUBMITTED, None, best, "no submission found") for student in missing]
    earlier = _carried_over(course_root, assignment, students, shard, todo)
    status = StatusFile(path, earlier + list(kept.values()) + absent)

    config.CourseDirectory.db_url = db
    config.SandboxedKernelManager.workers = workers
    graded = _grade_batch(course_root, assignment, todo, workers, config, db, allow_unsandboxed, status,
                          progress=progress)
    results = sorted(list(kept.values()) + graded + absent, key=lambda r: r.student)
    log.info(summary_table(results))
    return results


def _grade_batch(course_root, assignment, todo, workers, config, db, allow_unsandboxed, status, progress=True):
    """Grade ``todo``; each result goes to the gradebook, then to ``status``, as soon as it is ready.

    SIGINT and SIGTERM stop the batch: what was finished stays saved, a line
    says how far it got, and :class:`GradingInterrupted` is raised.

    Returns
    -------
    list of GradeResult
        In the order they finished.
    """
    finished = []
    remove_dead_batches(course_root)  # what a batch killed with SIGKILL left behind
    wait_for_warm_up()  # before the workers are forked: they share it
    try:
        with StopOnSignals() as stop, warnings.catch_warnings(), tqdm(
                total=len(todo), desc=f"grading {assignment}", unit="submission", disable=not progress) as bar:
            # nbgrader's own session handling trips SQLAlchemy's autoflush warning; it is harmless noise.
            warnings.simplefilter("ignore", SAWarning)

            def on_done(result):
                status.add(result)
                finished.append(result)
                bar.update()

            if workers > 1 and len(todo) > 1:
                matplotlib_font_list()  # built once here, inherited by the forked workers
                # Looked up now, so that a test can put another per-student function in its place.
                grade_in_parallel(course_root, assignment, todo, workers, config, db, autograde.grade_student,
                                  nbgrader_api, allow_unsandboxed, on_done=on_done, stop=stop)
            else:
                api = nbgrader_api(course_root, config=config, allow_unsandboxed=allow_unsandboxed)
                _grade_here(api, course_root, assignment, todo, db, on_done, stop)
            stop.check()  # a signal that came as the last student finished is still obeyed
    except GradingInterrupted:
        log.warning(f"interrupted: {len(finished)} of {len(todo)} graded and saved; "
                    "rerun `coursekit grade` to grade the rest")
        raise
    return finished


def _grade_here(api, course_root, assignment, students, db, on_done, stop):
    """Grade ``students`` one after the other in this process, passing each result to ``on_done``.

    A signal (``stop``) ends the student being graded at once; nbgrader
    reports that run as failed, which is not a result: the student is left
    for the rerun.
    """
    for student in students:
        with stop.interruptible():
            result = autograde.grade_student(api, course_root, assignment, student, db=db)
        stop.check()
        on_done(result)


def _carried_over(course_root, assignment, students, shard, todo):
    """Earlier entries the status file keeps: grading some students updates only theirs.

    The students about to be graded lose theirs until they are graded again,
    so that the file never vouches for a grade that is being replaced.
    """
    if shard or not students:
        return []
    regraded = set(todo)
    return [r for r in _earlier_results(course_root, assignment) if r.student not in regraded]


def _earlier_results(course_root, assignment):
    try:
        return load_results(status_path(course_root, assignment))
    except FileNotFoundError:
        return []
