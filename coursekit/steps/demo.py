"""The demo: the whole job on a bundled class of made-up students.

``make demo`` builds the release, then, in a separate course folder
(``demo-course/``, so the real gradebook is never touched), makes an LMS zip
download of five submissions derived from the current master notebook, and
runs collect, grade, feedback and report on it:

==========================  ===================================================
Canvas file name            what it is
==========================  ===================================================
``lovelaceada_...``         a perfect submission
``blankbo_...``             the release as handed out, with a name filled in
``partialpat_LATE_...``     Part 1 done (with J_clust summed, not averaged),
                            Parts 2 and 3 left as stubs; handed in late
``colabcasey_... Copy of``  the perfect notebook saved from Colab under Colab's
                            name, with Colab's metadata
``brokenbrook_...``         a file cut off in the middle (not valid JSON)
==========================  ===================================================
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

import nbformat

from coursekit.common import notebooks
from coursekit.common.paths import ROOT
from coursekit.steps.build import build
from coursekit.steps.collect import collect
from coursekit.steps.feedback import generate_feedback
from coursekit.steps.grade import grade
from coursekit.steps.lms import write_lms_files
from coursekit.steps.new_course import new_course
from coursekit.steps.report import write_report

log = logging.getLogger(__name__)

DEMO_ROOT = ROOT / "demo-course"
ASSIGNMENT = "clustering"

# Canvas names: <login>_<user id>_<id of the file handed in>_<file name>; the user id is the student id.
PERFECT = "lovelaceada_20260001_900001_clustering.ipynb"
BLANK = "blankbo_20260002_900002_clustering.ipynb"
PARTIAL = "partialpat_LATE_20260003_900003_clustering.ipynb"
COLAB = "colabcasey_20260004_900004_Copy of clustering.ipynb"
BROKEN = "brokenbrook_20260005_900005_clustering.ipynb"


def with_student(nb, name, student_id):
    """A copy of ``nb`` whose NAME and STUDENT_ID cell says who handed it in."""
    nb = copy.deepcopy(nb)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("NAME"))
    cell.source = f'NAME = "{name}"\nSTUDENT_ID = "{student_id}"'
    return nb


#: Pat's own Part 1 (written her way, not the master's): loops, np.add.at, a while loop;
#: her J_clust is the sum, not the mean (the bug that costs her Exercises 1.3 and 1.4).
PAT_PART1 = {
    "assign_clusters": """\
    labels = []
    for point in np.asarray(X, dtype=float):
        distances = [np.sum((point - centre) ** 2) for centre in np.asarray(Z, dtype=float)]
        labels.append(int(np.argmin(distances)))
    return np.array(labels, dtype=int)""",
    "update_representatives": """\
    data = np.asarray(X, dtype=float)
    groups = np.asarray(c)
    new_Z = np.array(Z_prev, dtype=float)
    sums = np.zeros_like(new_Z)
    np.add.at(sums, groups, data)
    counts = np.bincount(groups, minlength=len(new_Z))
    filled = counts > 0
    new_Z[filled] = sums[filled] / counts[filled, None]
    return new_Z""",
    "clustering_objective": """\
    diffs = np.asarray(X, dtype=float) - np.asarray(Z, dtype=float)[np.asarray(c)]
    return float(np.sum(diffs * diffs))""",
    "kmeans": """\
    Z = np.array(Z0, dtype=float)
    history = []
    labels = assign_clusters(X, Z)
    iteration = 0
    while iteration < max_iter:
        Z = update_representatives(X, labels, Z)
        history.append(clustering_objective(X, labels, Z))
        new_labels = assign_clusters(X, Z)
        iteration += 1
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return labels, Z, history""",
}
PAT_QUESTION1 = ("It can end in a local minimum that depends on the starting points, so I would run it several "
                 "times from different random starts and keep the run with the lowest J_clust.")

#: How Casey disguised a copy of Ada's notebook: names inside the solutions, and the order of functions.
CASEY_NAMES = {
    "squared_distances": "dist_sq", "members": "points_in_group", "c_previous": "last_labels", "J_history": "costs",
    "palette_codes": "pal_keys", "position": "where", "indices": "idx", "picture": "png_image", "archive": "npz",
    "predicted": "guesses", "gray": "grey", "background": "bg", "contrast": "spread", "ink": "strokes",
    "small": "resized", "frame": "canvas",
}
_SOLUTION = re.compile(rf"({re.escape(notebooks.SOLUTION_BEGIN)}\n)(.*?)(\n[ \t]*{re.escape(notebooks.SOLUTION_END)})", re.S)


def _replace_solutions(source, change):
    """``source`` with the text of each BEGIN/END SOLUTION region replaced by ``change(text)``."""
    return _SOLUTION.sub(lambda m: m.group(1) + change(m.group(2)) + m.group(3), source)


def partial_submission(master, release):
    """Pat's notebook: Part 1 written her own way (with one bug), a short Question 1, Parts 2 and 3 as handed out."""
    nb = with_student(master, "Pat Partial", "20260003")
    stubs = {notebooks.grade_id(c): c.source for c in release.cells if notebooks.is_solution_cell(c)}
    for cell in nb.cells:
        gid = notebooks.grade_id(cell)
        if gid in PAT_PART1:
            cell.source = _replace_solutions(cell.source, lambda _, code=PAT_PART1[gid]: code)
        elif gid == "question1":
            cell.source = PAT_QUESTION1
        elif notebooks.is_solution_cell(cell) and gid in stubs:
            cell.source = stubs[gid]
    return nb


def disguised_copy(nb):
    """Casey's copy of ``nb``: local names changed (CASEY_NAMES) and the image file functions in another order."""
    nb = copy.deepcopy(nb)
    renames = re.compile(r"\b(" + "|".join(CASEY_NAMES) + r")\b")
    for cell in nb.cells:
        if not notebooks.is_solution_cell(cell) or cell.cell_type != "code":
            continue
        cell.source = _replace_solutions(cell.source, lambda text: renames.sub(lambda m: CASEY_NAMES[m.group(1)], text))
        if notebooks.grade_id(cell) == "compression_functions":
            head, *functions = re.split(r"\n(?=def )", cell.source)
            cell.source = "\n".join([head, *reversed([f.rstrip("\n") + "\n\n" for f in functions])]).rstrip("\n")
    return nb


def colab_saved(nb):
    """The notebook as Colab writes it: Colab's metadata added, outputs cleared."""
    nb = copy.deepcopy(nb)
    nb.metadata["colab"] = {"provenance": [], "name": "Copy of clustering.ipynb"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    for cell in nb.cells:
        cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def make_demo_zip(master_path, release_path, zip_path):
    """Write the five demo submissions as a Canvas-style zip download."""
    master = nbformat.read(master_path, as_version=4)
    release = nbformat.read(release_path, as_version=4)
    perfect = with_student(master, "Ada Lovelace", "20260001")
    files = {
        PERFECT: nbformat.writes(perfect),
        BLANK: nbformat.writes(with_student(release, "Bo Blank", "20260002")),
        PARTIAL: nbformat.writes(partial_submission(master, release)),
        COLAB: nbformat.writes(colab_saved(with_student(disguised_copy(master), "Casey Colab", "20260004"))),
        BROKEN: nbformat.writes(with_student(master, "Brook Broken", "20260005"))[:5000],
    }
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for day, (name, text) in enumerate(files.items(), start=1):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, day, 12, 0, 0)), text)
    return zip_path


#: The demo class as Canvas lists it: (sortable name, Canvas user id, login); one student has no row.
CANVAS_ROSTER = [
    ("Lovelace, Ada", "20260001", "lovelaceada"),
    ("Blank, Bo", "20260002", "blankbo"),
    ("Partial, Pat", "20260003", "partialpat"),
    ("Colab, Casey", "20260004", "colabcasey"),
    ("Broken, Brook", "20260005", "brokenbrook"),
]
CANVAS_COLUMN = "Clustering lab (4242)"


def make_demo_canvas_export(path, roster=CANVAS_ROSTER):
    """A gradebook export as Canvas's "Export" gives it, with an empty column for the lab.

    Columns Student, ID, SIS User ID, SIS Login ID, Section, one per
    assignment ("Title (assignment id)") and Canvas's read-only totals; a
    "Points Possible" row under the header.
    """
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Quiz 1 (4241)", CANVAS_COLUMN,
              "Current Score", "Final Score"]
    rows = [["    Points Possible", "", "", "", "", "10", "27", "(read only)", "(read only)"]]
    rows += [[name, user_id, f"S{user_id}", login, "Section 1", "8", "", "", ""] for name, user_id, login in roster]
    lines = [",".join(f'"{cell}"' if "," in cell else cell for cell in row) for row in [header] + rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare_demo_course(root=DEMO_ROOT):
    """A fresh course folder (:func:`~coursekit.steps.new_course.new_course`), an earlier demo's removed first."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
        log.info(f"removed the previous demo course {root}: each demo starts afresh (grades given there in "
                 "formgrader go with it; a course of your own: make course)")
    return new_course(root, assignment=ASSIGNMENT, say_next=False)


def run_demo(root=DEMO_ROOT, build_first=True, workers=None):
    """Build, then collect, grade, give feedback and report on the demo class.

    The report includes the LMS files: the demo class comes from Canvas, so
    a made-up Canvas gradebook export (``downloads/canvas_gradebook_export.csv``)
    is filled in with the totals.

    Parameters
    ----------
    root : path-like, default=DEMO_ROOT
        Where to make the demo course (an earlier demo there is removed first).
    build_first : bool, default=True
        Run the build (``make build``) before anything else.
    workers : int, optional
        Submissions graded at the same time; by default one per core, as ``python -m coursekit grade``.

    Returns
    -------
    dict
        The grade results and the paths of the feedback pages, reports and LMS files.
    """
    if build_first:
        build(ROOT)
    root = prepare_demo_course(root)
    download = make_demo_zip(
        root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
        ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
        root / "downloads" / "canvas_submissions.zip",
    )
    log.info(f"made a demo LMS download: {download}")
    collect(download, root, assignment=ASSIGNMENT)
    results = grade(root, ASSIGNMENT, workers=workers or os.cpu_count() or 1)
    pages = generate_feedback(root, ASSIGNMENT)
    reports = write_report(root, ASSIGNMENT, results=results)
    export = make_demo_canvas_export(root / "downloads" / "canvas_gradebook_export.csv")
    lms_files = write_lms_files(root, ASSIGNMENT, results=results, canvas_export=export)
    log.info(f"next: open the class report and a feedback page in a browser; grade the written answers by hand "
             f"with make formgrader COURSE={root}, then make feedback report COURSE={root} CANVAS_EXPORT={export}")
    return {"results": results, "feedback": pages, "reports": reports, "lms": lms_files}
