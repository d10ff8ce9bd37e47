"""Benchmark: what one shard costs, for choosing the number of Slurm array tasks.

A task of ``deploy/grade.slurm`` is ``coursekit grade --shard i/N`` in a
process of its own. Its time is a fixed part (start Python, register the
assignment in the shard's gradebook, start the trial sandboxed kernel, write
the status file) plus the students it grades. This measures both on the real
assignment, with 1 worker, as ``python -m coursekit grade`` runs it:

- ``t1``, ``t3``: a shard of 1 and of 3 solved submissions (whole notebook),
  each into a fresh gradebook, median of ``--rounds``;
- per student: ``(t3 - t1) / 2``; fixed part: ``t1 -`` per student;
- the same for the feedback pages the task then writes (``grade --feedback``
  does what ``coursekit feedback --gradebook`` does, timed here on its own
  after each shard).

And the merge (``coursekit merge``, the dependent job), which grows with the
class, not with the work of grading: for a class of 300 in 10 shards and of
3,000 in 50, shard gradebooks are filled with copies of one graded
submission (nbgrader's own records, through :func:`coursekit.grading.gradebook.import_submission`)
and merged into a fresh course gradebook.

Usage::

    .venv/bin/python -m bench.bench_shards [--rounds 3] [--out bench/results/shards.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from coursekit.common.results import GRADED, GradeResult, save_results, status_path
from coursekit.grading.gradebook import export_submission, import_submission, register_assignment
from coursekit.grading.parallel import merge_shards
from coursekit.steps import build, demo

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "clustering"


def make_course(folder, students):
    demo.prepare_demo_course(folder)
    build.sync_course_files(folder / "source" / ASSIGNMENT, build.course_files(ROOT))
    master = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for number, student in enumerate(students):
        target = folder / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        nbformat.write(demo.with_student(master, f"Student {number}", f"2026{number:04d}"), target / f"{ASSIGNMENT}.ipynb")
    return folder


def time_shard(course, students, gradebook):
    """Seconds for ``coursekit grade`` of ``students`` into a fresh ``gradebook``, as a task runs it."""
    gradebook.unlink(missing_ok=True)
    command = [sys.executable, "-m", "coursekit", "grade", "--root", str(course), "--workers", "1", "--force",
               "--gradebook", str(gradebook), "-q", *students]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def time_feedback(course, students, gradebook):
    """Seconds for ``coursekit feedback`` of ``students`` from ``gradebook`` (graded just before)."""
    command = [sys.executable, "-m", "coursekit", "feedback", "--root", str(course), "--gradebook", str(gradebook),
               "-q", *students]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def time_merge(course, graded_db, class_size, shards, scratch):
    """Seconds for :func:`merge_shards` of a class of ``class_size`` in ``shards`` shard gradebooks."""
    data = export_submission(f"sqlite:///{graded_db}", ASSIGNMENT, "s1")
    folder = Path(tempfile.mkdtemp(dir=scratch))
    status = status_path(course, ASSIGNMENT)
    for stale in status.parent.glob("grading_status*.json"):
        stale.unlink()
    paths = []
    for index in range(1, shards + 1):
        path = folder / f"gradebook-shard-{index}.db"
        register_assignment(course, ASSIGNMENT, db=f"sqlite:///{path}")
        members = [f"x{n:05d}" for n in range(index - 1, class_size, shards)]
        with Gradebook(f"sqlite:///{path}") as gradebook, warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's session handling; harmless
            for student in members:
                import_submission(gradebook, ASSIGNMENT, dict(data, student=dict(data["student"], id=student)))
        save_results(status_path(course, ASSIGNMENT, (index, shards)),
                     [GradeResult(s, GRADED, 23, 27, "") for s in members])
        paths.append(path)
    target = folder / "gradebook.db"
    start = time.perf_counter()
    merged = merge_shards(course, ASSIGNMENT, paths, target_db=f"sqlite:///{target}")
    seconds = time.perf_counter() - start
    assert len(merged) == class_size, len(merged)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-shards-") as scratch:
        scratch = Path(scratch)
        course = make_course(scratch / "course", ["s1", "s2", "s3"])
        t1, t3, f1, f3 = [], [], [], []
        for round_ in range(args.rounds):
            t1.append(time_shard(course, ["s1"], scratch / "one.db"))
            f1.append(time_feedback(course, ["s1"], scratch / "one.db"))
            t3.append(time_shard(course, ["s1", "s2", "s3"], scratch / "three.db"))
            f3.append(time_feedback(course, ["s1", "s2", "s3"], scratch / "three.db"))
            print(f"round {round_ + 1}: 1 student {t1[-1]:.1f} s + feedback {f1[-1]:.1f} s, "
                  f"3 students {t3[-1]:.1f} s + feedback {f3[-1]:.1f} s", flush=True)
        one, three = statistics.median(t1), statistics.median(t3)
        per_student = (three - one) / 2
        fixed = one - per_student
        feedback_one, feedback_three = statistics.median(f1), statistics.median(f3)
        feedback_per_student = (feedback_three - feedback_one) / 2
        feedback_fixed = feedback_one - feedback_per_student
        merges = {}
        for size, shards in ((300, 10), (3000, 50)):
            merges[(size, shards)] = time_merge(course, scratch / "one.db", size, shards, scratch)
            print(f"merge of {size} students in {shards} shards: {merges[(size, shards)]:.1f} s", flush=True)

    lines = [
        f"One shard (`coursekit grade --shard`, 1 worker, whole notebook, solved submissions; {os.cpu_count()} cores; "
        f"median of {args.rounds}):",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| a shard of 1 student | {one:.1f} ({', '.join(f'{t:.1f}' for t in t1)}) |",
        f"| a shard of 3 students | {three:.1f} ({', '.join(f'{t:.1f}' for t in t3)}) |",
        f"| each student | {per_student:.1f} |",
        f"| the fixed part of a shard (start, registration, trial kernel) | {fixed:.1f} |",
        f"| feedback pages of 1 student | {feedback_one:.1f} ({', '.join(f'{t:.1f}' for t in f1)}) |",
        f"| feedback pages of 3 students | {feedback_three:.1f} ({', '.join(f'{t:.1f}' for t in f3)}) |",
        f"| each student's feedback page | {feedback_per_student:.2f} |",
        f"| the fixed part of the feedback (start, config, template) | {feedback_fixed:.1f} |",
    ]
    lines += [f"| merge of {size} students from {shards} shard gradebooks | {seconds:.1f} |"
              for (size, shards), seconds in merges.items()]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
