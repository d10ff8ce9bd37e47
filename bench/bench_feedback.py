"""Benchmark: what making student content inert costs the feedback step (issue 24's budget: at most +20%).

Grades a few solved submissions once (the whole notebook: its animation and
figures are the largest outputs a page carries), then writes their feedback
pages again and again, in interleaved rounds:

- ``inert``: as the course runs it (``SanitizeStudentContent`` on the whole
  notebook, Markdown cleaned after rendering);
- ``raw``: the same code with the sanitizer switched off in-process (the
  preprocessor returns the notebook unchanged, ``clean_html`` returns its
  input): what making content inert costs (without nbconvert's second parse,
  which the course's pages skip);
- ``parsed twice``: as the course runs it, with nbconvert's HTMLExporter's
  last step put back (it parses the finished page again with BeautifulSoup
  to describe images; the feedback exporter skips it since issue 26, the
  sanitizer describing them instead).

Reports the median seconds per student of each and their ratio, measured in
the same run. A hostile page (the payload battery of ``tests/payloads.py``)
is timed the same way, since it is the most HTML a page has to clean.

Usage::

    .venv/bin/python -m bench.bench_feedback [--students 4] [--rounds 5] [--out bench/results/feedback.md]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell

from coursekit.common.results import GRADED
from coursekit.grading.gradebook import register_assignment
from coursekit.pages import feedback_page, sanitize
from coursekit.steps import build, demo
from coursekit.steps.feedback import generate_feedback
from coursekit.steps.grade import grade

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "clustering"
sys.path.insert(0, str(ROOT / "tests"))
from payloads import HTML_PAYLOADS  # noqa: E402  (the tests' battery)


@contextlib.contextmanager
def sanitizer_off():
    """The feedback step with nothing cleaned (the page's policy and player script stay)."""
    preprocess, clean = sanitize.SanitizeStudentContent.preprocess, feedback_page.clean_html
    sanitize.SanitizeStudentContent.preprocess = lambda self, nb, resources: (nb, resources)
    feedback_page.clean_html = lambda fragment: fragment
    try:
        yield
    finally:
        sanitize.SanitizeStudentContent.preprocess, feedback_page.clean_html = preprocess, clean


@contextlib.contextmanager
def second_parse_on():
    """The feedback step before the exporter skipped nbconvert's BeautifulSoup pass over the finished page."""
    ours = feedback_page.FeedbackExporter.from_notebook_node
    feedback_page.FeedbackExporter.from_notebook_node = (
        lambda self, nb, resources=None, **kw:
        HTMLExporter.from_notebook_node(self, nb, feedback_page.page_resources(resources), **kw))
    try:
        yield
    finally:
        feedback_page.FeedbackExporter.from_notebook_node = ours


def make_class(folder, students):
    """A course with ``students`` solved submissions and one carrying every payload, graded."""
    demo.prepare_demo_course(folder)
    build.sync_course_files(folder / "source" / ASSIGNMENT, build.course_files(ROOT))
    register_assignment(folder, ASSIGNMENT)
    master = nbformat.read(ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    names = [f"s{n}" for n in range(students)]
    hostile = demo.with_student(master, "Hostile Student", "29999999")
    payloads = [payload.format(url="http://127.0.0.1:9") for _, payload in HTML_PAYLOADS]
    hostile.cells.append(new_code_cell("from IPython.display import HTML, display\n"
                                       f"for _p in {payloads!r} * 5:\n    display(HTML(_p))"))
    notebooks = [(s, demo.with_student(master, f"Student {s}", f"2026{n:04d}")) for n, s in enumerate(names)]
    for student, nb in notebooks + [("hostile", hostile)]:
        target = folder / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        nbformat.write(nb, target / f"{ASSIGNMENT}.ipynb")
    results = grade(folder, ASSIGNMENT, workers=2, progress=False)
    assert all(r.status == GRADED for r in results), [(r.student, r.reason) for r in results]
    return names


def seconds_per_student(course, students):
    start = time.perf_counter()
    generate_feedback(course, ASSIGNMENT, students=students)
    return (time.perf_counter() - start) / len(students)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as scratch:
        course = Path(scratch) / "course"
        solved = make_class(course, args.students)
        times = {"inert": [], "raw": [], "parsed twice": [],
                 "inert, hostile": [], "raw, hostile": [], "parsed twice, hostile": []}
        seconds_per_student(course, solved + ["hostile"])  # warm: templates, imports
        for _ in range(args.rounds):
            times["inert"].append(seconds_per_student(course, solved))
            times["inert, hostile"].append(seconds_per_student(course, ["hostile"]))
            with sanitizer_off():
                times["raw"].append(seconds_per_student(course, solved))
                times["raw, hostile"].append(seconds_per_student(course, ["hostile"]))
            with second_parse_on():
                times["parsed twice"].append(seconds_per_student(course, solved))
                times["parsed twice, hostile"].append(seconds_per_student(course, ["hostile"]))

    median = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        f"# Feedback step: the cost of making student content inert ({date.today().isoformat()})",
        "",
        f"`python -m bench.bench_feedback --students {args.students} --rounds {args.rounds}`: seconds per student "
        f"to write a feedback page (`coursekit.steps.feedback.generate_feedback`), median of {args.rounds} interleaved "
        "rounds; `raw` is the same code with the sanitizer switched off in-process (what making content inert "
        "costs); "
        "`parsed twice` is the course's page with nbconvert's own last step put back (HTMLExporter parses the "
        "finished page again with BeautifulSoup; the feedback exporter skips it since issue 26).",
        "",
        "| page | raw (s) | inert (s) | inert / raw | parsed twice (s) | inert / parsed twice |",
        "|---|---|---|---|---|---|",
        *(f"| {title} | {median['raw' + kind]:.3f} | {median['inert' + kind]:.3f} | "
          f"{median['inert' + kind] / median['raw' + kind]:.2f}x | {median['parsed twice' + kind]:.3f} | "
          f"{median['inert' + kind] / median['parsed twice' + kind]:.2f}x |"
          for title, kind in (("solved notebook (figures, animation)", ""),
                              ("the payload battery, 5 times over", ", hostile"))),
        "",
        "Every round: " + "; ".join(f"{name} " + ", ".join(f"{v:.3f}" for v in values) for name, values in times.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
