"""The Slurm job files of ``deploy/`` run on a real one-node Slurm cluster (issue 17).

``deploy/submit-slurm.sh 3`` queues ``deploy/grade.slurm`` as an array of 3
tasks (one shard each) and ``deploy/merge.slurm`` after it, for a class of 6
(solved, partial, the release; of the small assignment, ``conftest.small_assignment``). Task 2 is cancelled with ``scancel`` as soon
as it runs: the merge keeps the other shards' students, names the missing
ones and fails; rerunning that one task completes the class, which is then
compared cell by cell with one local run. Each task writes its own students'
feedback (``grade --feedback``, from the shard's gradebook), the same pages as
a local run's; the merge job writes the report.

The cluster is Debian's slurmctld, slurmd and munge on this machine
(``tests/slurm_cluster.py``). Where they are not installed the test is
skipped, saying so; under CI (``CI=true``) that is a failure, since
``tools/ensure_system_packages.sh`` installs them there.
"""

import os
import re
import subprocess
import time

import pytest
from nbgrader.api import Gradebook
from slurm_cluster import LocalSlurm, SlurmUnavailable

from coursekit.common.paths import ROOT
from coursekit.common.results import GRADED, load_results, status_path
from coursekit.steps import demo
from coursekit.steps.feedback import feedback_path, generate_feedback
from coursekit.steps.grade import grade

pytestmark = pytest.mark.slow

ASSIGNMENT = "clustering"
SHARDS = 3


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as why:
        cluster.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Slurm test, but Slurm did not start: {why}")
        pytest.skip(f"no Slurm cluster here: {why}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def the_class(small_master, small_release):
    """Six students: two solved, two partial, two who handed in the release (of the small assignment)."""
    master, release = small_master, small_release
    students = {}
    for i in range(2):
        students[f"s{3 * i + 1:02d}"] = demo.with_student(master, f"Solved {i}", f"2026100{i}")
        students[f"s{3 * i + 2:02d}"] = demo.partial_submission(master, release)
        students[f"s{3 * i + 3:02d}"] = demo.with_student(release, f"Blank {i}", f"2026200{i}")
    return students


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, copy_small_course, the_class):
    """Per-cell scores of the class graded in one local run, and the feedback pages of s01, s02 and s03.

    The class holds three notebooks twice over (the solved and blank ones differ in NAME only, which
    no test cell but Part 0's reads, and Part 0 passes for all of them), so the local run grades one
    student of each kind and gives their scores to the other: half the work. That the same
    notebook always gets the same scores is tested in tests/test_parallel.py.
    """
    kinds = {"s01": ("s01", "s04"), "s02": ("s02", "s05"), "s03": ("s03", "s06")}
    course = copy_small_course(tmp_path_factory.mktemp("local") / "course", {s: the_class[s] for s in kinds})
    grade(course, ASSIGNMENT, workers=2, progress=False)
    graded = _cell_scores(course)
    pages = {student: page.read_bytes() for student, page in generate_feedback(course, ASSIGNMENT).items()}
    return {(twin, cell): score for (student, cell), score in graded.items() for twin in kinds[student]}, pages


def _cell_scores(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {(s.student.id, g.cell.name): g.auto_score
                for s in gradebook.assignment_submissions(ASSIGNMENT) for nb in s.notebooks for g in nb.grades}


def _submit(slurm, course, *tasks):
    """``deploy/submit-slurm.sh`` for ``course``; (grading job id, merge job id)."""
    out = subprocess.run(["deploy/submit-slurm.sh", str(SHARDS), *tasks], cwd=ROOT, capture_output=True, text=True,
                         env=dict(slurm.env, COURSE=str(course)), timeout=120)
    assert out.returncode == 0, out.stderr
    found = re.fullmatch(r"grading: job (\d+) \(array .*\); merge: job (\d+)\n", out.stdout)
    assert found, out.stdout
    return found.group(1), found.group(2)


def _output(course, job_id, suffix=""):
    """What the job (its tasks: suffix "_*") printed, from reports/slurm/ of the course."""
    return "\n".join(p.read_text() for p in sorted((course / "reports" / "slurm").glob(f"*-{job_id}{suffix}.out")))


def test_the_array_job_grades_the_class_and_a_cancelled_task_is_rerun(slurm, copy_small_course, the_class, local_run,
                                                                       tmp_path):
    """One scenario for both paths (a Slurm run costs the suite about 30 s): 3 tasks, task 2 cancelled
    as soon as it runs; tasks 1 and 3 complete and the merge keeps their students, names shard 2's and
    fails; task 2 alone is resubmitted; the merge then completes the class, equal to a local run."""
    local_scores, local_pages = local_run
    course = copy_small_course(tmp_path / "course", the_class)
    grading, merge = _submit(slurm, course)
    deadline = time.monotonic() + 120
    while slurm.jobs(grading).get(f"{grading}_2", ("PENDING",))[0] != "RUNNING":
        assert time.monotonic() < deadline, slurm.jobs(grading)
        time.sleep(0.2)
    slurm.run("scancel", f"{grading}_2")
    tasks = slurm.wait_for(grading)
    assert sorted(tasks) == [f"{grading}_{i}" for i in (1, 2, 3)]
    assert tasks[f"{grading}_1"] == tasks[f"{grading}_3"] == ("COMPLETED", "0:0"), (tasks, _output(course, grading, "_*"))
    assert tasks[f"{grading}_2"][0] == "CANCELLED", tasks
    assert slurm.wait_for(merge)[merge] == ("FAILED", "3:0"), _output(course, merge)

    # Shard 2 is s02 and s05 (every third of the sorted roster, from the second).
    merged = {r.student for r in load_results(status_path(course, ASSIGNMENT))}
    assert {"s01", "s03", "s04", "s06"} <= merged and not {"s02", "s05"} <= merged
    log = _output(course, merge)
    missing = sorted(set(the_class) - merged)
    assert f"{len(missing)} submitted student(s) not graded by any shard: " in log
    assert all(f"{student} (shard 2/3)" in log for student in missing)
    assert "deploy/submit-slurm.sh 3 2" in log
    # Tasks 1 and 3 wrote their students' feedback; the cancelled task 2 wrote none.
    assert all(feedback_path(course, ASSIGNMENT, student).is_file() for student in merged)
    assert not any(feedback_path(course, ASSIGNMENT, student).exists() for student in missing)

    grading, merge = _submit(slurm, course, "2")
    assert slurm.wait_for(grading) == {f"{grading}_2": ("COMPLETED", "0:0")}, _output(course, grading, "_*")
    assert slurm.wait_for(merge)[merge] == ("COMPLETED", "0:0"), _output(course, merge)

    results = {r.student: r for r in load_results(status_path(course, ASSIGNMENT))}
    assert sorted(results) == sorted(the_class) and all(r.status == GRADED for r in results.values())
    assert _cell_scores(course) == local_scores
    # Each task wrote its students' pages from its own gradebook: the pages of a local run.
    for student in the_class:
        assert feedback_path(course, ASSIGNMENT, student).is_file(), student
    for student, page in local_pages.items():
        assert feedback_path(course, ASSIGNMENT, student).read_bytes() == page, student
    # The merge job wrote the report from the merged gradebook.
    grades = (course / "reports" / ASSIGNMENT / "grades.csv").read_text()
    assert all(student in grades for student in the_class)
    assert not (course / ".grading").exists(), "three batches in one course folder, each with its own worker folder"
