"""nbgrader settings for the course: the one place for them.

nbgrader reads this file from the folder it runs in (the repository root); the
coursekit commands load it too, so plain ``nbgrader`` commands and ``make``
targets behave the same. ``coursekit`` is installed in the course's
environment (editable) by ``make venv``.

The course folder is this repository, unless the environment variable
``COURSEKIT_COURSE_ROOT`` names another one (the demo class in
``demo-course/``, a test's scratch course): formgrader takes its course folder
from this file only (``--CourseDirectory.root`` on the server's command line is
overridden by it), so that is how formgrader is pointed at another course.
"""

import os

from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback
from nbgrader.preprocessors import CheckCellMetadata, ClearSolutions, Execute, GetGrades, OverwriteCells, SaveAutoGrades
from nbgrader.validator import Validator

from coursekit.common.preprocessors import (
    CheckCellMetadataOnce,
    ClearStudentInfo,
    FlagUnansweredForGrading,
    HideHiddenTests,
    NameUnfinishedExercises,
    RestoreLockedCells,
    SummarizeExercises,
)
from coursekit.grading.execute import GuardedExecute, StderrIsNotFailure, ValidateWithChecker
from coursekit.grading.repair import RepairSubmission
from coursekit.pages import feedback_page, formgrade_page
from coursekit.pages.sanitize import SanitizeStudentContent
from coursekit.steps.collect import NBGRADER_ZIP_COLLECT_REGEXP

HERE = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

# --- The course ------------------------------------------------------------
c.CourseDirectory.course_id = "clustering-lab"
COURSE_ROOT = os.path.abspath(os.path.join(HERE, os.environ.get("COURSEKIT_COURSE_ROOT") or "."))
c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# The solution's cell times (written by `make build`, read while grading) stay
# out of the release and out of the students' folders.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "cell_times.json", "*.part"]
# What the notebook writes when it runs where the master is (opened in JupyterLab
# in source/, or validated by an nbgrader without this config) stays out of the
# release and out of a grading kernel's files.
c.CourseDirectory.ignore += ["cat_compressed_*.png", "palette_check.png"]

# --- The exchange (nbgrader's release_assignment, collect; formgrader) -----------
# A folder in the course, for a single-user setup (formgrader otherwise warns
# that /usr/local/share/nbgrader/exchange, nbgrader's default, does not exist).
# nbgrader needs it to exist and be writable, and does not create it, so it is
# made here, when nbgrader or coursekit first reads this file. On a shared
# JupyterHub the admin sets c.Exchange.root to the shared folder in the
# system-wide nbgrader config (/etc/jupyter/nbgrader_config.py); nbgrader reads
# this file after that one, and this one wins, so the course-local folder is
# set only when no other nbgrader config in Jupyter's config path sets one.


def _exchange_set_elsewhere():
    """Whether an nbgrader config in Jupyter's config path (system-wide, ~/.jupyter) sets c.Exchange.root."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    for folder in jupyter_config_path():
        for name, loader in (("nbgrader_config.py", PyFileConfigLoader), ("nbgrader_config.json", JSONFileConfigLoader)):
            if not os.path.isfile(os.path.join(folder, name)) or os.path.realpath(folder) == os.path.realpath(HERE):
                continue
            try:
                config = loader(name, path=folder).load_config()
            except Exception:  # a broken file: nbgrader reports it when it reads it
                continue
            if "root" in config.get("Exchange", {}):
                return True
    return False


if not _exchange_set_elsewhere():
    c.Exchange.root = os.path.join(COURSE_ROOT, "exchange")
    try:
        os.makedirs(c.Exchange.root, exist_ok=True)
    except OSError:  # a read-only checkout: nbgrader then says the exchange is missing
        pass

# nbgrader's collect (and formgrader's Collect button) copies regular files only:
# a link a student adds to their submission in the exchange's inbound folder
# (to the master, say) is left there with a warning, never followed
# (coursekit/steps/exchange.py).
c.ExchangeFactory.collect = "coursekit.steps.exchange.RegularFilesCollect"

# --- The build (coursekit.steps.build) ----------------------------------------------
# Where Colab fetches the helper and the data: the release folder of the course
# repository, as raw files. Change it to your course's repository; `make build`
# writes it into the notebook's setup cell.
c.CourseBuild.colab_base_url = (
    "https://raw.githubusercontent.com/example-university/kmeans-lab/main/release/clustering/"
)

# --- Generating the release ---------------------------------------------------
# The master fills NAME and STUDENT_ID so its own tests pass; blank them for students.
_generate = list(GenerateAssignment.class_traits()["preprocessors"].default())
_generate.insert(_generate.index(ClearSolutions) + 1, ClearStudentInfo)
# Each `raise NotImplementedError()` stub names its exercise, so a cell far
# below that calls an unfinished function says which exercise to finish.
_generate.insert(_generate.index(ClearStudentInfo) + 1, NameUnfinishedExercises)
c.GenerateAssignment.preprocessors = _generate

# --- Autograding ----------------------------------------------------------------
# Same as nbgrader's OverwriteCells, without the false checksum warning of
# jupyter/nbgrader#1961 for test cells that hold hidden tests.
# Before that, RepairSubmission re-identifies cells whose nbgrader metadata was
# stripped (Colab) and puts back deleted test and answer cells.
_sanitize = list(Autograde.class_traits()["sanitize_preprocessors"].default())
_sanitize[_sanitize.index(OverwriteCells)] = RestoreLockedCells
_sanitize.insert(0, RepairSubmission)
# nbgrader's metadata check re-reads its JSON schema for every cell (0.2 s per
# submission); this one compiles it once and makes the same checks.
_sanitize[_sanitize.index(CheckCellMetadata)] = CheckCellMetadataOnce
c.Autograde.sanitize_preprocessors = _sanitize

# Student code runs in a sandboxed kernel with time limits, restarts after a
# timeout or a dead kernel, seeded tests (coursekit.grading.execute), and warnings on
# stderr do not fail a test.
_autograde = list(Autograde.class_traits()["autograde_preprocessors"].default())
_autograde[_autograde.index(Execute)] = GuardedExecute
_autograde.insert(_autograde.index(GuardedExecute) + 1, StderrIsNotFailure)
# A written answer left as released is 0 points, but still listed for the grader
# (nbgrader would mark it graded, and formgrader would never show it as to do).
_autograde[_autograde.index(SaveAutoGrades)] = FlagUnansweredForGrading
_autograde[_autograde.index(CheckCellMetadata)] = CheckCellMetadataOnce
c.Autograde.autograde_preprocessors = _autograde

# `nbgrader validate` on the master (and JupyterLab's Validate button) judges the
# hidden tests as grading does: nbgrader's validator runs its own Execute, in which
# a checker test is never run and the guard line fails. Its list of steps is not a
# setting, so its default is replaced here, in every process that reads this file;
# on a notebook without checker tests (a student's release) the step is nbgrader's
# Execute, as before (coursekit.grading.execute.ValidateWithChecker).
_validate = Validator.class_traits()["preprocessors"]
_validate.default_value = [ValidateWithChecker if step is Execute else step for step in _validate.default()]

# --- Limits while grading ------------------------------------------------------------
# Time: each cell may run max(floor, factor x the time the solution's cell took),
# from source/<assignment>/cell_times.json (written by `make build`); a cell the
# master does not have (a student's own) gets other_cells seconds. The notebook
# may run max(notebook_floor, notebook_factor x the solution's total). A loop in
# one function then costs seconds, and the parts after it still run.
# Every setting of this section is part of a graded submission's fingerprint:
# after a change, `make grade` grades everyone again.
c.TimeLimits.factor = 20
c.TimeLimits.floor = 10
c.TimeLimits.other_cells = 30
c.TimeLimits.notebook_factor = 6
c.TimeLimits.notebook_floor = 180
# Hard caps above the calibrated limits (and the limits when there is no
# cell_times.json): seconds per cell (nbgrader's default is 30) and per notebook.
c.Execute.timeout = 120
c.GuardedExecute.notebook_timeout = 600
# Output recorded while grading, as it arrives; the rest is replaced by a note
# (the solution's largest cell output, the animation, is about 0.85 MB).
c.GuardedExecute.max_output_bytes = 2_000_000
c.GuardedExecute.max_output_lines = 5_000
c.GuardedExecute.max_notebook_output_bytes = 8_000_000
# Files the notebook writes that are kept beside the graded notebook (copied out
# of the sandbox as regular files of at most keep_file_max_mb); anything else it
# leaves behind stays in the sandbox, and links, pipes and folders are reported.
c.GuardedExecute.keep_files = ["cat_compressed_*.png"]
c.GuardedExecute.keep_file_max_mb = 5
# On the way in: the kernel gets the notebook and the files the course ships
# with the assignment (those of source/<assignment>/), nothing else a student
# handed in (listed as an incident). fnmatch patterns of files students may
# hand in for their notebook to read (given to the kernel as regular files):
c.GuardedExecute.submission_files = []
# The sandbox of the kernel (coursekit.grading.sandbox): memory, CPU time, processes, and
# the size of everything it can write (working folder, /tmp, home: one tmpfs).
c.Sandbox.memory_limit_mb = 3072
c.Sandbox.cpu_time_limit_s = 1200
c.Sandbox.max_processes = 256
c.Sandbox.disk_limit_mb = 512
c.Sandbox.shm_limit_mb = 64
# Kernels are forked from a warm parent that has imported these once (coursekit.grading.warm):
# about 1.7 s less CPU per submission here, with what each kernel sees unchanged.
# List the heavy modules the notebook imports (a grading run preloads those its
# assignment's master or helper imports); c.Sandbox.warm_kernels = False starts
# every kernel from scratch instead.
c.Sandbox.preload = ["ipykernel.kernelapp", "ipykernel.debugger", "numpy", "scipy", "matplotlib.pyplot", "sklearn.cluster",
                     "PIL.Image", "skimage.io", "skimage.metrics"]

# nbconvert checks the notebook against its schema after every step of a
# pipeline (16 times a submission); once, after the last step, is enough.
c.Exporter.optimistic_validation = True

# --- Feedback ---------------------------------------------------------------------
# Students see each test's points and error message, never the hidden tests'
# code (nbgrader shows it by default: jupyter/nbgrader#917, #1363).
_feedback = list(GenerateFeedback.class_traits()["preprocessors"].default())
_feedback.insert(_feedback.index(GetGrades) + 1, HideHiddenTests)
# Then a summary at the top of the page: each exercise by its title, its points
# and the first message of a failed test.
_feedback.insert(_feedback.index(HideHiddenTests) + 1, SummarizeExercises)
# Last: everything the student's notebook carries is made inert (HTML cleaned,
# scripts and widgets dropped, SVG shown as an image, metadata cut down;
# coursekit/pages/sanitize.py), and the page carries a Content-Security-Policy.
_feedback.append(SanitizeStudentContent)
c.GenerateFeedback.preprocessors = _feedback
# One self-contained HTML file that works offline: formulas rendered to MathML
# when the page is made, no script or style from a CDN, long lines wrapped
# (coursekit/pages/feedback_page.py, coursekit/pages/templates/nbconvert/coursekit_feedback/).
feedback_page.configure(c)

# --- Formgrader ----------------------------------------------------------------------
# Its grading page draws formulas as MathML and loads nothing from a CDN; it
# loaded MathJax from cdnjs, and without it (offline) its keyboard shortcuts
# did not work (coursekit/pages/formgrade_page.py, coursekit/pages/templates/nbconvert/coursekit_formgrade/).
formgrade_page.configure(c)

# --- Plain `nbgrader zip_collect` -----------------------------------------------------
# `python -m coursekit collect` is the course's collector. For instructors who run
# nbgrader's own zip_collect on a Canvas download: nbgrader matches this regex with
# re.match against the *absolute* path of each extracted file, so a regex anchored at
# the file name silently collects nothing; this one starts with ".*".
c.FileNameCollectorPlugin.named_regexp = NBGRADER_ZIP_COLLECT_REGEXP
