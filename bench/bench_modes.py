"""Benchmark: grading time in the sandbox's two modes, on the same class (issue 29).

One class (solved notebooks without their slowest demonstrations, partial
ones and untouched releases) is graded with ``python -m coursekit grade
--workers 2`` by the same Python (the ordinary account's install, Debian's
3.11), in interleaved rounds:

- ``root, warm``: as root, kernels forked from a warm parent (root mode's default);
- ``root, cold``: as root, each kernel started in a sandbox of its own
  (``c.Sandbox.warm_kernels = False``);
- ``ordinary user, warm`` and ``ordinary user, cold``: the same as the tests'
  ordinary account (``coursekit-ta``), in user-namespace mode, from its own
  copy of the repository. Each pair differs by the mode alone.

Reports the median seconds of each, its ratio to root's default, and whether
every cell's score, flag and comment is the same in all runs. Needs root (it
makes the account and runs the others through ``runuser``).

Usage::

    .venv/bin/python -m bench.bench_modes [--solved 4 --partial 2 --blank 2] [--rounds 3] [--out bench/results/modes.md]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat

from coursekit.grading.gradebook import register_assignment
from coursekit.steps import demo

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "clustering"
sys.path.insert(0, str(ROOT / "tests"))
from conftest import (  # noqa: E402  (the tests' ordinary account and class helpers)
    ORDINARY_ACCOUNT,
    as_ordinary_account,
    gradebook_contents,
    ordinary_repository,
    without_slow_demonstrations,
    write_submission,
)

RUNS = ("root, warm", "root, cold", "ordinary user, warm", "ordinary user, cold")


def _class(solved, partial, blank):
    master = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    lean = without_slow_demonstrations(master)
    students = {f"solved{i}": demo.with_student(lean, f"Solved {i}", f"2026100{i}") for i in range(solved)}
    students.update({f"partial{i}": demo.partial_submission(lean, release) for i in range(partial)})
    students.update({f"blank{i}": demo.with_student(release, f"Blank {i}", f"2026300{i}") for i in range(blank)})
    return students


def _grade(run, course, repository, environment):
    """Seconds ``python -m coursekit grade --workers 2`` takes on ``course`` in ``run``."""
    python = str(repository / ".venv" / "bin" / "python")
    command = [python, "-m", "coursekit", "grade", "--root", str(course), "--workers", "2"]
    started = time.perf_counter()
    if run.startswith("ordinary user"):
        done = as_ordinary_account(command, cwd=repository, env=environment, timeout=1800)
    else:  # root's own home, so that nothing root writes lands in the account's
        done = subprocess.run(command, cwd=repository, env={**environment, "HOME": "/root", "USER": "root",
                                                              "LOGNAME": "root"},
                              capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{run}: grading failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    said = done.stdout + done.stderr
    expected = "user-namespace mode" if run.startswith("ordinary user") else "root mode"
    kernels = "forked warm" if run.endswith("warm") else "each started in a sandbox of its own"
    for line in (f"sandbox: {expected}", f"kernels: {kernels}"):
        if line not in said:
            raise RuntimeError(f"{run}: the trial kernel did not say '{line}':\n{said[-3000:]}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solved", type=int, default=4)
    parser.add_argument("--partial", type=int, default=2)
    parser.add_argument("--blank", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    subprocess.run([str(ROOT / "tools" / "ensure_ta_venv.sh")], check=True)

    base = Path(tempfile.mkdtemp(prefix="coursekit bench modes ", dir="/tmp"))
    try:
        repository, environment = ordinary_repository(base)
        registered = demo.prepare_demo_course(base / "registered")
        register_assignment(registered, ASSIGNMENT)
        for student, notebook in _class(args.solved, args.partial, args.blank).items():
            write_submission(registered, student, notebook)
        seconds = {run: [] for run in RUNS}
        contents = {}
        for round_number in range(args.rounds):
            for run in RUNS:
                course = base / f"{run.replace(', ', '-').replace(' ', '-')}-{round_number}"
                shutil.copytree(registered, course)
                if run.startswith("ordinary user"):
                    subprocess.run(["chown", "-R", f"{ORDINARY_ACCOUNT}:", str(course)], check=True)
                # grade reads the repository's nbgrader_config.py (the one place for settings), not the course's.
                config = repository / "nbgrader_config.py"
                settings = config.read_text()
                if run.endswith("cold"):
                    config.write_text(settings + "\nc.Sandbox.warm_kernels = False\n")
                try:
                    seconds[run].append(_grade(run, course, repository, environment))
                finally:
                    config.write_text(settings)
                contents[(run, round_number)] = gradebook_contents(course)
                print(f"round {round_number + 1}: {run}: {seconds[run][-1]:.1f} s", flush=True)
                shutil.rmtree(course)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    same = all(found == contents[(RUNS[0], 0)] for found in contents.values())
    base_s = statistics.median(seconds[RUNS[0]])
    students = args.solved + args.partial + args.blank
    lines = [
        f"# Grading in the sandbox's two modes ({date.today():%B %d, %Y}; "
        f"`python -m bench.bench_modes --rounds {args.rounds}`)",
        "",
        f"{students} submissions ({args.solved} solved without their slowest demonstrations, {args.partial} partial, "
        f"{args.blank} untouched releases), `coursekit grade --workers 2`, the ordinary account's install (Debian's "
        f"Python) for every run; median of {args.rounds} interleaved rounds:",
        "",
        "| run | seconds (median) | all rounds | x root, warm |",
        "|---|---|---|---|",
    ]
    for run in RUNS:
        median = statistics.median(seconds[run])
        lines.append(f"| {run} | {median:.1f} | {', '.join(f'{s:.1f}' for s in seconds[run])} | "
                     f"{median / base_s:.2f} |")
    medians = {run: statistics.median(seconds[run]) for run in RUNS}
    lines += [
        "",
        f"- every cell's score, flag and comment the same in every run: {'yes' if same else 'NO'}",
        f"- the mode itself (ordinary user against root, the same kernels): "
        f"{medians['ordinary user, warm'] / medians['root, warm']:.2f}x warm, "
        f"{medians['ordinary user, cold'] / medians['root, cold']:.2f}x cold",
        f"- warm kernels against cold ones: {medians['root, warm'] / medians['root, cold']:.2f}x as root, "
        f"{medians['ordinary user, warm'] / medians['ordinary user, cold']:.2f}x as an ordinary user",
    ]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
