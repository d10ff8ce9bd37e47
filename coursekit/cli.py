"""Command-line interface: ``python -m coursekit <step> ...``.

Each sub-command is a thin wrapper around one pipeline module; the modules do
the work and raise exceptions with messages meant for people, which are
printed here without a traceback.

Progress and messages go through :mod:`logging` (one logger per module,
``coursekit.<module>``); :func:`configure_logging` gives them one handler on
stderr: ``-q`` shows only warnings and errors (and no progress bars), ``-v``
adds the debug lines.

    data      build, verify or download the data files       (coursekit.steps.data)
    build     master notebook -> release/ and notebooks/     (coursekit.steps.build)
    collect   a folder or LMS zip -> submitted/              (coursekit.steps.collect)
    grade     autograde submitted/ -> gradebook + statuses   (coursekit.steps.grade; parallel, autograde, gradebook)
    merge     shard gradebooks -> gradebook.db               (coursekit.grading.parallel, coursekit.grading.gradebook)
    feedback  HTML feedback per graded student               (coursekit.steps.feedback)
    report    grades.csv, the class report and the LMS files (coursekit.steps.report, coursekit.steps.lms)
    all       build, collect, grade, feedback, report        (the whole job)
    demo      the whole job on a bundled demo class          (coursekit.steps.demo)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from coursekit.common.course import require_course
from coursekit.common.errors import CourseError, GradingInterrupted
from coursekit.common.paths import DATA_DIR, ROOT
from coursekit.common.results import FAILED
from coursekit.insight.similarity import DEFAULT_THRESHOLD
from coursekit.steps import data  # light; its defaults are the download command's

# Each command imports the steps it runs when it runs (as nbgrader's and Jupyter's subcommands are loaded):
# importing every step costs a command that needs one up to a second (the grading engine's ZeroMQ and
# nbclient, the demo, copydetect's matplotlib).

log = logging.getLogger(__name__)


class MessageFormatter(logging.Formatter):
    """Lines for people: the message alone, with ``warning:`` or ``error:`` before those."""

    def format(self, record):
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {text}"
        return text


def configure_logging(verbosity=0, stream=None):
    """Send the package's log to ``stream`` (default: stderr) through one handler.

    Parameters
    ----------
    verbosity : int
        -1 for warnings and errors only, 0 for progress lines too, 1 or more
        for debug lines as well.
    stream : file-like, optional
        Where the lines go; looked up when called, so a redirected
        ``sys.stderr`` is honoured.
    """
    logger = logging.getLogger("coursekit")
    root = logging.getLogger()
    for owner in (logger, root):
        for handler in [h for h in owner.handlers if getattr(h, "coursekit_cli", False)]:
            owner.removeHandler(handler)

    def handler(form):
        made = logging.StreamHandler(stream or sys.stderr)
        made.setFormatter(MessageFormatter(form))
        made.coursekit_cli = True
        return made

    logger.addHandler(handler("%(message)s"))
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG)
    # Other libraries' warnings and errors, named, once. A root logger with a handler also keeps a library
    # that calls logging.basicConfig on import (accessible-pygments, which pygments' style plugins load, sets
    # the root to INFO) from printing every INFO line of every library in its own format.
    others = handler("%(name)s: %(message)s")
    others.setLevel(logging.WARNING)
    others.addFilter(lambda record: not record.name.startswith("coursekit"))
    root.addHandler(others)


def _data_build(args):
    data.build_all(args.data_dir)
    data.verify_data(args.data_dir)


def _data_verify(args):
    sums = data.verify_data(args.data_dir)
    for name in data.DATA_FILES:
        log.info(f"ok  {sums[name]}  {name}")


def _data_download_mnist(args):
    dest = data.download_full_mnist(args.dest, url=args.url, sha256=args.sha256, progress=args.verbosity >= 0)
    (x_train, _), (x_test, _) = data.load_mnist_npz(dest)
    log.info(f"saved {dest}: {len(x_train):,} training and {len(x_test):,} test images, sha256 verified")


def _build(args):
    from coursekit.steps import build

    build.build(args.root, recalibrate=args.recalibrate)


def _collect(args):
    from coursekit.steps.collect import collect

    require_course(args.root, args.assignment)
    report = collect(args.source, args.root, assignment=args.assignment)
    return 0 if report.ok else 3


def _exit_for(results):
    failed = [r for r in results if r.status == FAILED]
    if failed:
        log.error(f"{len(failed)} submission(s) could not be graded: " + ", ".join(r.student for r in failed))
        return 2
    return 0


def _grade(args):
    from coursekit.steps.feedback import generate_feedback
    from coursekit.steps.grade import grade

    results = grade(
        args.root, args.assignment, students=args.students or None, workers=args.workers, force=args.force,
        shard=args.shard, gradebook=args.gradebook,
        allow_unsandboxed=args.allow_unsandboxed, progress=args.verbosity >= 0,
    )
    if args.feedback:
        # Also when a submission could not be graded: the others' pages are written, then exit 2.
        generate_feedback(args.root, args.assignment, students=args.students or None, shard=args.shard,
                          gradebook=args.gradebook)
    return _exit_for(results)


#: The exit code of ``merge`` when some submitted students were not graded by any shard.
UNGRADED_AFTER_MERGE = 3


def _merge(args):
    from coursekit.grading.gradebook import gradebook_url
    from coursekit.grading.parallel import merge_shards, ungraded_after_merge
    from coursekit.steps import build

    target = gradebook_url(args.root, build.load_course_config(ROOT))
    merged = merge_shards(args.root, args.assignment, args.gradebooks, target_db=target)
    log.info(f"merged {len(merged)} graded submission(s) into {target}")
    ungraded = ungraded_after_merge(args.root, args.assignment, args.gradebooks)
    if not ungraded:
        return 0
    shards = sorted({shard for _, shard in ungraded if shard})
    log.error(f"{len(ungraded)} submitted student(s) not graded by any shard: "
              + ", ".join(student + (f" (shard {shard[0]}/{shard[1]})" if shard else "") for student, shard in ungraded))
    for index, count in shards:
        log.error(f"rerun shard {index}/{count} (`coursekit grade --shard {index}/{count} --gradebook "
                  f"gradebook-shard-{index}.db`, or on Slurm `deploy/submit-slurm.sh {count} {index}`), then merge again")
    return UNGRADED_AFTER_MERGE


def _feedback(args):
    from coursekit.steps.feedback import generate_feedback

    require_course(args.root, args.assignment)
    generate_feedback(args.root, args.assignment, students=args.students or None, shard=args.shard,
                      gradebook=args.gradebook)


def _report(args):
    from coursekit.steps.lms import write_lms_files
    from coursekit.steps.report import write_report

    require_course(args.root, args.assignment)
    write_report(args.root, args.assignment, similarity_threshold=args.similarity_threshold)
    write_lms_files(args.root, args.assignment, canvas_export=args.canvas_export, canvas_column=args.canvas_column)


def _new_course(args):
    from coursekit.steps.new_course import new_course

    new_course(args.folder, assignment=args.assignment)


def _all(args):
    from coursekit.steps import build
    from coursekit.steps.collect import collect
    from coursekit.steps.feedback import generate_feedback
    from coursekit.steps.grade import grade
    from coursekit.steps.lms import check_canvas_export, write_lms_files
    from coursekit.steps.report import write_report

    if args.canvas_export:
        check_canvas_export(args.canvas_export, args.assignment, args.canvas_column)
    require_course(args.root, args.assignment)  # before collect makes a mistyped folder
    if Path(args.root).resolve() == ROOT.resolve():
        if build.build_is_current(args.root, args.assignment):
            log.info("the release is up to date: built from this master, settings and code, untouched since "
                     "(make build builds it again)")
        else:
            build.build(args.root)
    else:  # a term's course folder: graded against its own copy of the master; the release is the repository's
        log.info(f"course folder {args.root}: graded against its own copy of the master (the build is the repository's)")
    if args.source:
        collect(args.source, args.root, assignment=args.assignment)
    results = grade(args.root, args.assignment, workers=args.workers, force=args.force,
                    allow_unsandboxed=args.allow_unsandboxed, progress=args.verbosity >= 0)
    generate_feedback(args.root, args.assignment)
    write_report(args.root, args.assignment, results=results, similarity_threshold=args.similarity_threshold)
    write_lms_files(args.root, args.assignment, results=results, canvas_export=args.canvas_export,
                    canvas_column=args.canvas_column)
    return _exit_for(results)


def _demo(args):
    # The demo class includes a broken file on purpose: its "failed to grade"
    # row is the expected outcome, so the demo itself succeeds.
    from coursekit.steps.demo import DEMO_ROOT, run_demo

    run_demo(args.root or DEMO_ROOT, workers=args.workers)


def _workers_option(parser):
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="submissions graded at the same time (default: the number of cores)")


def _course_options(parser, students=False, grading=False):
    parser.add_argument("--root", type=Path, default=ROOT, help="the course folder (default: this repository)")
    parser.add_argument("--assignment", default="clustering")
    if grading:
        parser.add_argument("--allow-unsandboxed", action="store_true",
                            help="grade even where no sandbox can be made (student code then runs as you)")
        _workers_option(parser)
        parser.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    if students:
        parser.add_argument("students", nargs="*", help="only these student ids (default: all)")


def _existing_file(text):
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def _shard(text):
    from coursekit.grading.parallel import parse_shard

    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _share(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: a share between 0 (exclusive) and 1")
    return value


def _report_options(parser):
    parser.add_argument("--similarity-threshold", type=_share, default=DEFAULT_THRESHOLD, metavar="SHARE",
                        help="list pairs of students whose answers share at least this share (0..1] in the "
                             f"class report's similarity section (default: {DEFAULT_THRESHOLD})")
    parser.add_argument("--canvas-export", type=_existing_file, metavar="PATH",
                        help="a Canvas gradebook export (CSV) to fill with the totals: "
                             "reports/<assignment>/lms/canvas_gradebook_import.csv")
    parser.add_argument("--canvas-column", metavar="NAME",
                        help="the export's column for this assignment, its header or Canvas assignment id "
                             "(default: the one column whose title starts with the assignment's name)")


def _output_options():
    """-q and -v, accepted before the step's name and after it."""
    options = argparse.ArgumentParser(add_help=False)
    loudness = options.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=argparse.SUPPRESS,
                          help="only warnings and errors; no progress bars")
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=argparse.SUPPRESS,
                          help="debug lines too")
    return options


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-commands all take the output options."""

    def add_subparsers(self, **kwargs):
        steps = super().add_subparsers(**kwargs)
        add_parser = steps.add_parser

        def add_step(name, **options):
            return add_parser(name, parents=[_output_options()], **options)

        steps.add_parser = add_step
        return steps


def build_parser():
    parser = _Parser(prog="python -m coursekit", description=__doc__.splitlines()[0], parents=[_output_options()])
    steps = parser.add_subparsers(dest="step", required=True)

    data_parser = steps.add_parser("data", help="build, verify or download the data files in data/")
    data_steps = data_parser.add_subparsers(dest="action", required=True)
    data_build = data_steps.add_parser("build", help="rebuild every shipped data file offline and write SHA256SUMS")
    data_build.add_argument("--data-dir", type=Path, default=DATA_DIR)
    data_build.set_defaults(run=_data_build)
    verify = data_steps.add_parser("verify", help="check the data files against SHA256SUMS")
    verify.add_argument("--data-dir", type=Path, default=DATA_DIR)
    verify.set_defaults(run=_data_verify)
    download = data_steps.add_parser("download-mnist", help="download the full MNIST (needs a network)")
    download.add_argument("--dest", type=Path, default=DATA_DIR / data.FULL_MNIST_NAME)
    download.add_argument("--url", default=data.KERAS_MNIST_URL)
    download.add_argument("--sha256", default=data.KERAS_MNIST_SHA256, help="expected sha256 (default: the one keras publishes)")
    download.set_defaults(run=_data_download_mnist)

    step = steps.add_parser("build", help="validate the master, generate release/ and notebooks/, prove no leak")
    step.add_argument("--root", type=Path, default=ROOT, help="the course repository (default: this one)")
    step.add_argument("--recalibrate", action="store_true",
                      help="record the solution's cell times again (they set grading's time limits)")
    step.set_defaults(run=_build)

    step = steps.add_parser("collect", help="put a folder or LMS zip of notebooks into submitted/")
    step.add_argument("source", type=Path, help="a folder of .ipynb files or an LMS .zip download")
    _course_options(step)
    step.set_defaults(run=_collect)

    step = steps.add_parser("grade", help="autograde submitted/ (exit 2 when a submission could not be graded, "
                                          "130/143 when stopped by Ctrl-C/SIGTERM: what was graded is kept)")
    _course_options(step, students=True, grading=True)
    step.add_argument("--shard", type=_shard, metavar="i/N",
                      help="grade only shard i of N of the class, e.g. 2/3 (one per machine)")
    step.add_argument("--gradebook", type=Path, help="gradebook file to grade into (for a shard; default gradebook.db)")
    step.add_argument("--feedback", action="store_true",
                      help="then write the feedback pages of the students graded (what `feedback` with the same "
                           "--shard and --gradebook does; a cluster's array task writes its own students' pages)")
    step.set_defaults(run=_grade)

    step = steps.add_parser("merge", help="merge shard gradebooks (and their grading status) into gradebook.db")
    step.add_argument("gradebooks", type=Path, nargs="+", help="the shards' gradebook files")
    _course_options(step)
    step.set_defaults(run=_merge)

    step = steps.add_parser("feedback", help="HTML feedback per graded student, hidden tests removed")
    _course_options(step, students=True)
    step.add_argument("--shard", type=_shard, metavar="i/N",
                      help="only the students shard i of N graded, e.g. 2/3 (before the merge, by the shard's job)")
    step.add_argument("--gradebook", type=_existing_file,
                      help="the gradebook file to read scores from (a shard's; default gradebook.db)")
    step.set_defaults(run=_feedback)

    step = steps.add_parser("report", help="grades.csv, the class report, and the LMS files in reports/<assignment>/lms/")
    _course_options(step)
    _report_options(step)
    step.set_defaults(run=_report)

    step = steps.add_parser("new-course", help="a course folder for one term or section, with a copy of today's master")
    step.add_argument("folder", type=Path, help="the new folder (it may exist only if it is empty)")
    step.add_argument("--assignment", default="clustering")
    step.set_defaults(run=_new_course)

    step = steps.add_parser("all", help="the whole job: build, [collect SOURCE,] grade, feedback, report")
    step.add_argument("source", type=Path, nargs="?", help="a folder or LMS zip to collect first")
    _course_options(step, grading=True)
    _report_options(step)
    step.set_defaults(run=_all)

    step = steps.add_parser("demo", help="the whole job on a bundled demo class (in demo-course/)")
    step.add_argument("--root", type=Path, default=None, help="where to put the demo course (default: demo-course/)")
    _workers_option(step)
    step.set_defaults(run=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.verbosity = getattr(args, "verbosity", 0)
    configure_logging(args.verbosity)
    try:
        return args.run(args) or 0
    except GradingInterrupted as stopped:
        # Ctrl-C or SIGTERM while grading: what was finished is saved (grade() said how much).
        return stopped.exit_code
    except (CourseError, FileNotFoundError) as exc:
        log.error(str(exc))
        return 1
