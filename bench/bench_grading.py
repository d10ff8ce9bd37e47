"""Benchmark: grading throughput and overhead against plain nbgrader, same inputs, same run.

Makes N synthetic submissions of the real assignment (perfect, partial, blank
and adversarial: warnings, a deleted test, a Colab-stripped copy, an infinite
loop, os._exit), then grades the same set three ways, each in a fresh copy of
a scratch course, and reports submissions per minute and the ratios (median
of ``--rounds`` interleaved rounds of plain nbgrader and 2 workers, so that a
drift of the machine's speed hits both alike; the 1-worker run, slow and not
the target, runs in the first round only):

- ``nbgrader``: plain serial ``nbgrader autograde`` (nbgrader's defaults, no
  course configuration, the same per-cell time limit) on the master of
  ``--baseline`` (default: the last one whose hidden tests all ran inside the
  student's kernel). That is the fair baseline: plain nbgrader cannot run the
  checker, and on today's master its guard line fails every hidden test at
  once, doing less work than grading does;
- ``coursekit x1``: ``coursekit grade --workers 1`` (sandboxed, guarded);
- ``coursekit x2``: ``coursekit grade --workers 2``.

With ``--baseline REV`` (default: the commit before issue 16's checker) it
also grades the class with 2 workers against the master of that commit, whose
hidden tests all ran inside the student's kernel, and checks that every honest
submission (perfect, partial, blank) gets the same per-cell scores as with
the checker (the solutions and visible tests of the two masters are the same).

It also checks that the 1- and 2-worker runs give identical per-cell scores,
counts on how many submissions plain nbgrader agrees, and measures the
overhead per submission beyond executing the notebook: grading K perfect
submissions with one worker, minus executing the same K notebooks with plain
nbclient (one BLAS thread, like the graded kernels), divided by K.

Usage::

    .venv/bin/python -m bench.bench_grading [--submissions 40] [--rounds 3] [--quick] [--baseline REV | --no-baseline]
                                            [--out bench/results/grading.md]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

from coursekit.common import notebooks
from coursekit.grading.warm import close_zygotes
from coursekit.steps import build, demo
from coursekit.steps.grade import grade

ASSIGNMENT = "clustering"
CELL_TIMEOUT = 30  # nbgrader's default, for all three runs
#: The last commit whose master judged every hidden test inside the student's kernel (before issue 16).
IN_KERNEL_MASTER = "4deee5e"
HONEST = ("perfect", "partial", "blank")


def make_submissions(count):
    master = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)

    def solved(i):
        return demo.with_student(master, f"Student {i}", f"2026{i:04d}")

    def appended(nb, grade_id, code):
        nb = copy.deepcopy(nb)
        cell = next(c for c in nb.cells if notebooks.grade_id(c) == grade_id)
        cell.source += "\n\n" + code
        return nb

    def stripped(nb):
        nb = demo.colab_saved(nb)
        for cell in nb.cells:
            cell.metadata.pop("nbgrader", None)
        return nb

    def no_kmeans_test(nb):
        nb = copy.deepcopy(nb)
        nb.cells = [c for c in nb.cells if notebooks.grade_id(c) != "kmeans_test"]
        return nb

    warn = "import warnings\nwarnings.warn('only a warning')"
    adversarial = [
        lambda i: appended(solved(i), "assign_clusters", warn),
        lambda i: appended(solved(i), "preprocess_img", warn),
        lambda i: no_kmeans_test(solved(i)),
        lambda i: no_kmeans_test(solved(i)),
        lambda i: stripped(solved(i)),
        lambda i: stripped(solved(i)),
        lambda i: appended(solved(i), "assign_clusters", "while True:\n    pass"),
        lambda i: appended(solved(i), "clustering_objective", "import os\nos._exit(1)"),
    ]
    kinds = []
    n_adv = max(1, count // 5)
    n_perfect, n_partial = int(count * 0.35), count // 4
    n_blank = count - n_adv - n_perfect - n_partial
    kinds += [("perfect", solved)] * n_perfect
    kinds += [("partial", lambda i: demo.partial_submission(master, release))] * n_partial
    kinds += [("blank", lambda i: demo.with_student(release, f"Student {i}", f"2026{i:04d}"))] * n_blank
    kinds += [("adversarial", adversarial[k % len(adversarial)]) for k in range(n_adv)]
    # A real class is in no particular order of difficulty: shuffle (seeded) so that, say, all
    # the slow adversarial submissions do not come last and leave a worker idle at the end.
    order = random.Random(0).sample(range(len(kinds)), len(kinds))
    return {f"s{i:03d}": (kinds[k][0], kinds[k][1](i)) for i, k in enumerate(order)}


def make_course(folder, submissions):
    demo.prepare_demo_course(folder)
    build.sync_course_files(folder / "source" / ASSIGNMENT, build.course_files(ROOT))
    for student, (_, nb) in submissions.items():
        target = folder / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        nbformat.write(nb, target / f"{ASSIGNMENT}.ipynb")
    return folder


def plain_nbgrader(course, master=IN_KERNEL_MASTER):
    """Serial `nbgrader autograde` with nbgrader's own settings, on the in-kernel master of ``master``; returns seconds."""
    with_master_of(course, master)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    root = [f"--CourseDirectory.root={course}"]
    # Run from the scratch course, which has no nbgrader_config.py: nothing of the course's.
    subprocess.run(nbgrader + ["generate_assignment", ASSIGNMENT, "--force"] + root, cwd=course, env=env,
                   capture_output=True, check=True)
    start = time.perf_counter()
    subprocess.run(nbgrader + ["autograde", ASSIGNMENT, "--create", f"--Execute.timeout={CELL_TIMEOUT}"] + root,
                   cwd=course, env=env, capture_output=True)
    return time.perf_counter() - start


def ours(course, workers):
    config = build.load_course_config(ROOT)
    config.Execute.timeout = CELL_TIMEOUT
    from coursekit.grading.gradebook import register_assignment

    register_assignment(course, ASSIGNMENT)  # both runs start with the assignment known
    start = time.perf_counter()
    grade(course, ASSIGNMENT, workers=workers, force=True, progress=False, config=config)
    close_zygotes()  # stopped inside the timing: each run starts its own warm parent, as `make grade` does
    return time.perf_counter() - start


def with_master_of(course, revision):
    """Put the master (and its cell times) of git ``revision`` in the course's source folder."""
    for name in (f"{ASSIGNMENT}.ipynb", "cell_times.json"):
        text = subprocess.run(["git", "show", f"{revision}:source/{ASSIGNMENT}/{name}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        (course / "source" / ASSIGNMENT / name).write_text(text)
    return course


def cell_scores(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {}
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            for nb in submission.notebooks:
                for g in nb.grades:
                    scores[(submission.student.id, g.cell.name)] = g.auto_score
        return scores


def totals(scores):
    out = {}
    for (student, _), value in scores.items():
        out[student] = out.get(student, 0) + (value or 0)
    return out


def execute_only(notebook_paths, folder):
    """Seconds to execute the notebooks with plain nbclient, one BLAS thread, no grading.

    Each runs in a copy of the student's working folder (notebook, helper, data).
    """
    from nbclient import NotebookClient

    runs = []
    for index, path in enumerate(notebook_paths):
        work = Path(folder) / f"run{index}"
        work.mkdir(parents=True)
        for name, origin in build.course_files(ROOT).items():
            shutil.copyfile(origin, work / name)
        shutil.copyfile(path, work / path.name)
        runs.append(work / path.name)

    env_threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    try:
        start = time.perf_counter()
        for path in runs:
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        return time.perf_counter() - start
    finally:
        for key, value in env_threads.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--overhead-sample", type=int, default=6, help="perfect submissions used for the overhead")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of plain nbgrader and 2 workers")
    parser.add_argument("--quick", action="store_true", help="8 submissions, 1 round, overhead on 3")
    parser.add_argument("--baseline", default=IN_KERNEL_MASTER,
                        help="git revision whose master judged hidden tests in the kernel (compared per cell)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_const", const=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.submissions, args.overhead_sample, args.rounds = 8, 3, 1

    subs = make_submissions(args.submissions)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        scratch = Path(scratch)
        plain_master = args.baseline or IN_KERNEL_MASTER
        runs = {"nbgrader": lambda c: plain_nbgrader(c, plain_master), "coursekit x1": lambda c: ours(c, 1), "coursekit x2": lambda c: ours(c, 2)}
        samples, scores, unstable = {name: [] for name in runs}, {}, set()
        for round_ in range(args.rounds):
            for name, run in runs.items():
                if name == "coursekit x1" and round_ > 0:
                    continue
                course = make_course(scratch / f"{name.replace(' ', '_')}-{round_}", subs)
                samples[name].append(run(course))
                graded = cell_scores(course)
                if scores.setdefault(name, graded) != graded:
                    unstable.add(name)
                shutil.rmtree(course)
                print(f"round {round_ + 1}, {name}: {samples[name][-1]:.1f} s for {len(subs)} submissions", flush=True)
        timings = {name: statistics.median(values) for name, values in samples.items()}

        if args.baseline:
            course = with_master_of(make_course(scratch / "baseline", subs), args.baseline)
            baseline_s = ours(course, 2)
            baseline = cell_scores(course)
            shutil.rmtree(course)
            print(f"baseline ({args.baseline}, hidden tests in the kernel), coursekit x2: {baseline_s:.1f} s", flush=True)

        sample = [s for s, (kind, _) in subs.items() if kind == "perfect"][: args.overhead_sample]
        sample_subs = {s: subs[s] for s in sample}
        course = make_course(scratch / "overhead", sample_subs)
        graded_s = ours(course, 1)
        exec_s = execute_only([course / "submitted" / s / ASSIGNMENT / f"{ASSIGNMENT}.ipynb" for s in sample],
                              scratch / "execute-only")
        overhead = (graded_s - exec_s) / len(sample)

    identical = scores["coursekit x1"] == scores["coursekit x2"]
    plain, mine = totals(scores["nbgrader"]), totals(scores["coursekit x1"])
    agree = {kind: 0 for kind in ("perfect", "partial", "blank", "adversarial")}
    counts = dict.fromkeys(agree, 0)
    for student, (kind, _) in subs.items():
        counts[kind] += 1
        agree[kind] += plain.get(student) == mine.get(student)
    base = len(subs) / timings["nbgrader"] * 60
    lines = [
        f"Grading {len(subs)} submissions of the real assignment ({', '.join(f'{counts[k]} {k}' for k in counts)}), "
        f"per-cell limit {CELL_TIMEOUT} s, on {os.cpu_count()} cores; median of {args.rounds} rounds "
        "(1 round for x1):",
        "",
        "| run | seconds (median) | all rounds | submissions / min | x plain nbgrader |",
        "|---|---|---|---|---|",
    ]
    for name, seconds in timings.items():
        rate = len(subs) / seconds * 60
        each = ", ".join(f"{value:.1f}" for value in samples[name])
        lines.append(f"| {name} | {seconds:.1f} | {each} | {rate:.2f} | {rate / base:.2f} |")
    lines += [
        "",
        f"- per-cell scores identical with 1 and 2 workers: {'yes' if identical else 'NO'}",
        f"- per-cell scores identical from round to round: {'NO for ' + ', '.join(sorted(unstable)) if unstable else 'yes'}",
        f"- plain nbgrader graded the master of {plain_master}, whose hidden tests run in the student's kernel",
        "- totals equal to plain nbgrader's: " + ", ".join(f"{agree[k]}/{counts[k]} {k}" for k in counts)
        + " (honest submissions should all agree; adversarial ones are where the two differ by design)",
        f"- overhead per submission beyond executing it ({len(sample)} perfect submissions, 1 worker): "
        f"{overhead:.2f} s (graded in {graded_s:.1f} s, executed alone in {exec_s:.1f} s)",
    ]
    changed = {}
    if args.baseline:
        checker = scores["coursekit x2"]
        for (student, cell), value in checker.items():
            if value != baseline.get((student, cell)):
                changed.setdefault(subs[student][0], []).append(f"{student}/{cell}: {baseline.get((student, cell))} -> {value}")
        honest = sum(counts[k] for k in HONEST)
        lines += [
            f"- with the hidden tests judged inside the kernel (master of {args.baseline}), coursekit x2: "
            f"{baseline_s:.1f} s (1 run); against the checker's median: {timings['coursekit x2'] / baseline_s:.2f}x the time",
            f"- per-cell scores of the {honest} honest submissions (perfect, partial, blank) equal to those "
            f"with the hidden tests in the kernel: " + ("yes" if not any(changed.get(k) for k in HONEST) else
                                                      "NO: " + "; ".join(c for k in HONEST for c in changed.get(k, []))),
            f"- per-cell scores of the adversarial submissions that differ: {len(changed.get('adversarial', []))}"
            + "".join(f" ({c})" for c in changed.get("adversarial", [])),
        ]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({
            "timings_s": timings, "rounds_s": samples, "identical_1_vs_2_workers": identical,
            "identical_across_rounds": not unstable, "overhead_s": overhead,
            "agreement_with_nbgrader": agree, "counts": counts, "baseline": args.baseline,
            "baseline_s": baseline_s if args.baseline else None, "changed_from_baseline": changed}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
