"""Benchmark: what hostile submissions cost the grader, with the course's real limits.

Grades, one at a time with one worker and the settings of ``nbgrader_config.py``
(calibrated time limits, output and disk bounds), a perfect submission (the
baseline, measured in the same rounds) and the hostile ones of the trust
issue: loops in the three Part 1 functions, 300 MB of long lines printed,
48 files of 128 MB written early and left there, links left in the working
folder, and four forked processes of 1.5 GB each (6 GB together, over the
sandbox's ceiling of 3 GB). For each it reports the median wall time of
``--rounds`` rounds, the ratio to the perfect submission, the score, the
size of the graded notebook and of the autograded folder, how much the
grader's disk filled, and the host's memory growth while it was graded
(``MemAvailable`` sampled every 50 ms, the largest drop from before).

Usage::

    .venv/bin/python -m bench.bench_hostile [--rounds 3] [--only NAME ...] [--out bench/results/hostile.md]
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

from coursekit.common import notebooks
from coursekit.grading import ceiling
from coursekit.steps import build, demo
from coursekit.steps.grade import grade

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
    "48 files of 128 MB written early": lambda nb: _after(nb, "part1_imports",
                                                           "for i in range(48):\n    open(f'big{i}.bin', 'wb').write(b'0' * (128 << 20))"),
    "4 forks of 1.5 GB": lambda nb: _after(nb, "assign_clusters_test", (
        "import os, time\nchildren = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
        "        block = b'\\x01' * (1536 << 20)\n        time.sleep(5)\n        os._exit(0)\n    children.append(pid)\n"
        "print([os.waitpid(p, 0)[1] for p in children])")),
    "links and a FIFO left behind": lambda nb: _after(nb, "preprocess_img", (
        "import os\nos.symlink('/etc/passwd', 'passwd.txt')\nos.symlink('../../..', 'course')\nos.mkfifo('pipe')")),
}


def _folder_bytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


def _available():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class MemoryGrowth:
    """The largest drop of the host's available memory while it is entered, sampled every 50 ms."""

    def __enter__(self):
        self.before = self.lowest = _available()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self.lowest = min(self.lowest, _available())

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.bytes = max(0, self.before - self.lowest)
        return False


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
        with MemoryGrowth() as memory:
            (result,) = grade(course, ASSIGNMENT, progress=False, config=copy.deepcopy(config))
        seconds = time.perf_counter() - start
        graded = course / "autograded" / "s1" / ASSIGNMENT
        return {
            "seconds": seconds, "score": result.score, "status": result.status,
            "notebook_mb": (graded / f"{ASSIGNMENT}.ipynb").stat().st_size / 1e6,
            "folder_mb": _folder_bytes(graded) / 1e6,
            "disk_mb": max(0, free - shutil.disk_usage(scratch).free) / 1e6,
            "memory_gb": memory.bytes / 2**30,
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hostile.md")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="only these cases (and the perfect submission)")
    parser.add_argument("--ceiling", help='c.Sandbox.ceiling for this run ("none": each process limited alone, as '
                        "before the whole-sandbox ceiling)")
    args = parser.parse_args(argv)
    config = build.load_course_config(ROOT)
    if args.ceiling:
        config.Sandbox.ceiling = args.ceiling
    cases = {name: change for name, change in CASES.items()
             if not args.only or name == "perfect" or any(part in name for part in args.only)}
    runs = {name: [] for name in cases}
    for round_ in range(args.rounds):
        for name, change in cases.items():  # interleaved: a drift of the machine hits every case alike
            runs[name].append(grade_one(name, change, config))
            print(f"round {round_ + 1}: {name}: {runs[name][-1]['seconds']:.1f} s", flush=True)
    base = statistics.median(r["seconds"] for r in runs["perfect"])
    lines = [
        f"# Hostile submissions, graded alone with the course's limits (median of {args.rounds} rounds)", "",
        f"Memory ceiling of the sandbox: {config.Sandbox.memory_limit_mb} MB "
        f"({config.Sandbox.ceiling if args.ceiling else ceiling.machine_kind()}).", "",
        "| submission | wall time | x perfect | score | graded notebook | autograded folder | grader's disk used "
        "| host memory growth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        last = results[-1]
        lines.append(
            f"| {name} | {seconds:.1f} s ({', '.join(format(r['seconds'], '.1f') for r in results)}) | {seconds / base:.2f}x "
            f"| {last['score']:g} / 23 ({last['status']}) | {last['notebook_mb']:.2f} MB | {last['folder_mb']:.2f} MB "
            f"| {last['disk_mb']:.1f} MB | {max(r['memory_gb'] for r in results):.2f} GB |"
        )
    table = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
