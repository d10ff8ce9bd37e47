"""Benchmark: what hostile submissions cost the grader, with the course's real limits.

Grades, one at a time with one worker and the settings of ``nbgrader_config.py``
(calibrated time limits, output and disk bounds), a perfect submission (the
baseline, measured in the same rounds) and the hostile ones of the trust
issue: loops in the three Part 1 functions, 300 MB of long lines printed,
48 files of 128 MB written, links left in the working folder. For each it
reports the median wall time of ``--rounds`` rounds, the ratio to the
perfect submission, the score, the size of the graded notebook and of the
autograded folder, and how much the grader's disk filled.

Usage::

    .venv/bin/python -m bench.bench_hostile [--rounds 3] [--out bench/results/hostile.md]
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

from coursekit import build, demo, notebooks
from coursekit.grade import grade

ASSIGNMENT = "clustering"


def _cell(nb, grade_id):
    return next(c for c in nb.cells if notebooks.grade_id(c) == grade_id)


def _loops(nb):
    for name in ("assign_clusters", "update_representatives", "clustering_objective"):
        cell = _cell(nb, name)
        cell.source = re.sub(rf"^(def {name}\(.*\):\n)", r"\1    while True:\n        pass\n", cell.source, flags=re.M)


def _after(nb, grade_id, code):
    index = nb.cells.index(_cell(nb, grade_id))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))


CASES = {
    "perfect": lambda nb: None,
    "loops in the 3 Part 1 functions": _loops,
    "300 lines of 1 MB printed": lambda nb: _after(nb, "assign_clusters_test", "for _ in range(300):\n    print('x' * 1_000_000)"),
    "48 files of 128 MB written": lambda nb: nb.cells.append(nbformat.v4.new_code_cell(
        "for i in range(48):\n    open(f'big{i}.bin', 'wb').write(b'0' * (128 << 20))")),
    "links and a FIFO left behind": lambda nb: _after(nb, "preprocess_img", (
        "import os\nos.symlink('/etc/passwd', 'passwd.txt')\nos.symlink('../../..', 'course')\nos.mkfifo('pipe')")),
}


def _folder_bytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


def grade_one(name, change, config):
    """Grade one submission in a fresh scratch course; return its measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as scratch:
        course = Path(scratch) / "course"
        demo.prepare_demo_course(course)
        master = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        nb = copy.deepcopy(demo.with_student(master, "Ada", "20260001"))
        change(nb)
        folder = course / "submitted" / "s1" / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")
        free = shutil.disk_usage(scratch).free
        start = time.perf_counter()
        (result,) = grade(course, ASSIGNMENT, progress=False, config=copy.deepcopy(config))
        seconds = time.perf_counter() - start
        graded = course / "autograded" / "s1" / ASSIGNMENT
        return {
            "seconds": seconds, "score": result.score, "status": result.status,
            "notebook_mb": (graded / f"{ASSIGNMENT}.ipynb").stat().st_size / 1e6,
            "folder_mb": _folder_bytes(graded) / 1e6,
            "disk_mb": max(0, free - shutil.disk_usage(scratch).free) / 1e6,
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hostile.md")
    args = parser.parse_args(argv)
    config = build.load_course_config(ROOT)
    runs = {name: [] for name in CASES}
    for round_ in range(args.rounds):
        for name, change in CASES.items():  # interleaved: a drift of the machine hits every case alike
            runs[name].append(grade_one(name, change, config))
            print(f"round {round_ + 1}: {name}: {runs[name][-1]['seconds']:.1f} s", flush=True)
    base = statistics.median(r["seconds"] for r in runs["perfect"])
    lines = [
        f"# Hostile submissions, graded alone with the course's limits (median of {args.rounds} rounds)", "",
        "| submission | wall time | x perfect | score | graded notebook | autograded folder | grader's disk used |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        last = results[-1]
        lines.append(
            f"| {name} | {seconds:.1f} s ({', '.join(format(r['seconds'], '.1f') for r in results)}) | {seconds / base:.2f}x "
            f"| {last['score']:g} / 23 ({last['status']}) | {last['notebook_mb']:.2f} MB | {last['folder_mb']:.2f} MB "
            f"| {last['disk_mb']:.1f} MB |"
        )
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
