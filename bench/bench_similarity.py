"""Benchmark: the class report's similarity check, its speed on 300 students and what it finds.

Speed. A class of ``--students`` (300) notebooks is made from the synthetic
class's solutions (``bench/similarity_class.py``: each student a seeded random
choice of one of four solutions per answer cell and one of four phrasings per
sentence of the written answers; no copies added). Each round times, on the
same class:

- ``coursekit``: :func:`coursekit.insight.similarity.similar_pairs` on the answers
  read from the notebooks (tokenising, fingerprints, candidate pairs, scores);
- ``copydetect``: copydetect's own ``CopyDetector`` (the baseline) on the same
  code answers written one file per student, its default k-gram and window,
  all pairs compared (its ``run()``, without its HTML report).

It reports the median of ``--rounds`` rounds and the ratio of the two.

Quality. On the synthetic class proper (30 independent students and three
disguised copies), the highest score of an independent pair and the lowest
of a copied pair, beside the default threshold.

Usage::

    .venv/bin/python -m bench.bench_similarity [--students 300] [--rounds 3] [--out bench/results/similarity.md]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
from copydetect import CopyDetector

from bench import similarity_class
from coursekit.insight import similarity

ROOT = Path(__file__).resolve().parent.parent


def big_class(master, students, seed=1):
    """{student: notebook}: ``students`` random (seeded) combinations of the synthetic class's solutions."""
    rng = np.random.default_rng(seed)
    written_slots = {q: len(similarity_class.WRITTEN[q]) for q in similarity_class.WRITTEN_CELLS}
    notebooks = {}
    for number in range(1, students + 1):
        code = {g: int(rng.integers(similarity_class.N_VARIANTS)) for g in similarity_class.CODE_CELLS}
        written = {q: tuple(int(rng.integers(similarity_class.N_PHRASINGS)) for _ in range(slots))
                   for q, slots in written_slots.items()}
        student = f"s{number:03d}"
        notebooks[student] = similarity_class.solved_notebook(master, code, written, f"Student {number}", student)
    return notebooks


def time_coursekit(notebooks, templates):
    start = time.perf_counter()
    answers = {student: similarity.answers_of(nb, templates) for student, nb in notebooks.items()}
    pairs = similarity.similar_pairs(answers, templates)
    return time.perf_counter() - start, len(pairs)


def time_copydetect(folder):
    start = time.perf_counter()
    detector = CopyDetector(test_dirs=[str(folder)], extensions=["py"], silent=True, autoopen=False)
    detector.run()
    pairs = len(detector.get_copied_code_list())
    return time.perf_counter() - start, pairs


def write_code_files(notebooks, templates, folder):
    """One .py file per student holding the code answer cells, for copydetect's own detector."""
    folder.mkdir(parents=True)
    for student, nb in notebooks.items():
        answers = similarity.answers_of(nb, templates)
        (folder / f"{student}.py").write_text("\n\n".join(text for _, text in answers[similarity.CODE]))


def quality(master, templates):
    """(highest independent score, lowest copied score, pairs listed) on the synthetic class."""
    notebooks = similarity_class.synthetic_class(master)
    answers = {student: similarity.answers_of(nb, templates) for student, nb in notebooks.items()}
    everything = similarity.similar_pairs(answers, templates, threshold=1e-9)
    copies = {frozenset(pair) for pair in similarity_class.COPIED_PAIRS}
    independent = [p for p in everything if frozenset((p.first, p.second)) not in copies]
    copied = [p for p in everything if frozenset((p.first, p.second)) in copies]
    listed = [p for p in everything if p.score >= similarity.DEFAULT_THRESHOLD]
    return independent, copied, listed, len(notebooks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "similarity.md")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # copydetect logs a line per file

    master = nbformat.read(ROOT / "source" / "clustering" / "clustering.ipynb", as_version=4)
    templates = similarity.templates_from(master)
    notebooks = big_class(master, args.students)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "code"
        write_code_files(notebooks, templates, folder)
        for _ in range(args.rounds):
            seconds, ours_listed = time_coursekit(notebooks, templates)
            ours.append(seconds)
            seconds, copydetect_listed = time_copydetect(folder)
            theirs.append(seconds)
    independent, copied, listed, size = quality(master, templates)

    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    lines = [
        f"# Similarity check: {args.students} students, median of {args.rounds} rounds", "",
        "| what | seconds (median) | runs | pairs listed |", "|---|---|---|---|",
        f"| coursekit `similar_pairs` (code and written answers, default threshold {similarity.DEFAULT_THRESHOLD}) "
        f"| {ours_median:.2f} | {', '.join(f'{s:.2f}' for s in ours)} | {ours_listed} |",
        f"| copydetect `CopyDetector.run` (baseline: code only, all pairs, its defaults) "
        f"| {theirs_median:.2f} | {', '.join(f'{s:.2f}' for s in theirs)} | {copydetect_listed} |",
        "", f"Ratio coursekit / copydetect: {ours_median / theirs_median:.2f}.", "",
        f"## What it finds: the synthetic class ({size} students: 30 independent, 3 disguised copies)", "",
        f"- highest independent pair: {max(p.score for p in independent):.3f} "
        f"(code {max(p.code_score for p in independent):.3f}, written {max(p.written_score for p in independent):.3f})",
        f"- lowest copied pair: {min(p.score for p in copied):.3f} "
        + "; ".join(f"{p.first}/{p.second} code {p.code_score:.3f} written {p.written_score:.3f}" for p in copied),
        f"- listed at the default threshold {similarity.DEFAULT_THRESHOLD}: "
        + ", ".join(f"{p.first}/{p.second}" for p in listed), "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
