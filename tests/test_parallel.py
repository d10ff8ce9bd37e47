"""Grading a class in parallel and in shards gives exactly the serial result.

The serial reference run and the three shards are independent, so they run at
the same time (a serial run keeps one core busy); the other gradings run one
after the other. The class hands in the small assignment (``conftest.small_assignment``):
what is tested here is the machinery, not the notebook.
"""

import copy
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pytest
from conftest import SMALL_FULL, gradebook_contents
from nbgrader.api import Gradebook

from coursekit.common.results import FAILED, GRADED, load_results, status_path
from coursekit.grading import autograde
from coursekit.grading.parallel import merge_shards, parse_shard, shard_of
from coursekit.steps import demo
from coursekit.steps.feedback import feedback_path, generate_feedback
from coursekit.steps.grade import GradeError, grade, largest_first

ASSIGNMENT = "clustering"
QUIET = dict(progress=False)


def _class(master, release):
    stripped = demo.colab_saved(demo.with_student(master, "Casey", "20260004"))
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    return {
        "ada": demo.with_student(master, "Ada", "20260001"),
        "bo": demo.with_student(release, "Bo", "20260002"),
        "pat": demo.partial_submission(master, release),
        "casey": stripped,
    }


@pytest.fixture(scope="module")
def submissions(small_master, small_release):
    """{student: notebook} of the small assignment: ada solved, bo the release, pat partial, casey solved and stripped by Colab."""
    return _class(small_master, small_release)


@pytest.fixture(scope="module")
def serial_and_shards(tmp_path_factory, copy_small_course, start_grading, submissions):
    """The class graded by two workers in this process and, at the same time, by one worker in each of three shards.

    Each shard is ``python -m coursekit grade --shard i/3 --workers 1 --gradebook gradebook-shard-i.db --feedback``
    in a process of its own, as on three machines (writing its students' feedback); the test merges them.
    The two runs must agree cell by cell and page by page: one worker or two, one process or three.
    Returns {"serial": (course, results, feedback pages) of the two-worker run, "shards": (course, shard gradebooks)}.
    """
    folder = tmp_path_factory.mktemp("parallel")
    sharded = copy_small_course(folder / "sharded", submissions)
    shard_dbs = [folder / f"gradebook-shard-{index}.db" for index in (1, 2, 3)]
    shards = [start_grading(sharded, "--workers", 1, "--shard", f"{index}/3", "--gradebook", db, "--feedback",
                            log=f"{db}.log")
              for index, db in enumerate(shard_dbs, start=1)]
    try:
        course = copy_small_course(folder / "two-workers", submissions)
        results = grade(course, ASSIGNMENT, workers=2, **QUIET)
        assert not (course / ".grading").exists(), "worker gradebooks are merged and removed"
        pages = generate_feedback(course, ASSIGNMENT)
        for shard in shards:
            shard.wait()
    finally:
        for shard in shards:
            shard.stop()
    return {"serial": (course, results, pages), "shards": (sharded, shard_dbs)}


@pytest.fixture(scope="module")
def serial(serial_and_shards):
    """(course, results, feedback pages) of the class graded by two workers: what every other run must equal."""
    return serial_and_shards["serial"]


@pytest.fixture(scope="module")
def sharded(serial_and_shards):
    """(course, the three shard gradebooks) of the class graded in shards, one worker each, not merged yet."""
    return serial_and_shards["shards"]


@pytest.mark.slow
def test_serial_scores(serial):
    _, results, _ = serial
    assert {r.student: r.score for r in results} == {"ada": SMALL_FULL, "bo": 1, "pat": 5, "casey": SMALL_FULL}


@pytest.mark.slow
def test_three_shards_of_one_worker_merged_equal_one_run_of_two_workers(serial, sharded):
    """One worker per process and two workers in one process: identical gradebook, status and feedback pages."""
    serial_course, serial_results, serial_pages = serial
    course, shard_dbs = sharded
    # Each shard wrote its students' feedback from its own gradebook, before any merge: the two-worker run's pages.
    for student, page in serial_pages.items():
        assert feedback_path(course, ASSIGNMENT, student).read_bytes() == page.read_bytes(), student
    merge_shards(course, ASSIGNMENT, shard_dbs)
    assert gradebook_contents(course) == gradebook_contents(serial_course)
    merged = {r.student: (r.status, r.score) for r in load_results(status_path(course, ASSIGNMENT))}
    assert merged == {r.student: (r.status, r.score) for r in serial_results}


@pytest.mark.slow
def test_a_merge_without_one_shard_names_its_students_and_fails(tmp_path, sharded, log_lines):
    """What a cancelled task leaves: shard 2 never reported. Merge the others, name shard 2's students."""
    from coursekit.cli import UNGRADED_AFTER_MERGE, main

    course, shard_dbs = sharded
    copy = tmp_path / "course"
    shutil.copytree(course, copy)
    status_path(copy, ASSIGNMENT, (2, 3)).unlink()
    code = main(["merge", "--root", str(copy), str(shard_dbs[0]), str(shard_dbs[2])])
    assert code == UNGRADED_AFTER_MERGE
    missing = shard_of(["ada", "bo", "casey", "pat"], 2, 3)
    assert missing == ["bo"]
    assert any("1 submitted student(s) not graded by any shard: bo (shard 2/3)" in m for m in log_lines), log_lines
    assert any("rerun shard 2/3" in m for m in log_lines)
    merged = {r.student for r in load_results(status_path(copy, ASSIGNMENT))}
    assert merged == {"ada", "casey", "pat"}, "the other shards' results are merged"
    # With shard 2's results back, the merge is complete.
    shutil.copy(status_path(course, ASSIGNMENT, (2, 3)), status_path(copy, ASSIGNMENT, (2, 3)))
    assert main(["merge", "--root", str(copy), *map(str, shard_dbs)]) == 0


def test_a_workers_private_gradebook_copy_does_not_wait_for_the_disk(tmp_path):
    """Its commits leave the writing to the system; the course gradebook's keep SQLite's default (FULL)."""
    probe = (
        "import sys\nfrom sqlalchemy import create_engine, text\n"
        "from coursekit.grading.parallel import without_waiting_for_the_disk\n"
        "without_waiting_for_the_disk(sys.argv[1])\n"
        "for path in sys.argv[1:]:\n"
        "    with create_engine(f'sqlite:///{path}').connect() as c:\n"
        "        print(c.execute(text('PRAGMA synchronous')).scalar())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "worker-1.db"), str(tmp_path / "gradebook.db")],
                          capture_output=True, text=True, check=True)  # a process of its own: the setting is per process
    assert done.stdout.split() == ["0", "2"]


def test_shards_partition_the_class():
    students = [f"s{i:02d}" for i in range(10)]
    parts = [shard_of(students, i, 3) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == students and all(parts)
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError, match="i/N"):
        parse_shard("two")
    with pytest.raises(ValueError, match="between 1 and N"):
        parse_shard("4/3")


def test_the_batch_hands_out_the_largest_submissions_first(tmp_path):
    """Longest processing time first: the short notebooks are left for the end of the batch, so the workers
    finish together; only the sizes of notebooks that are regular files count."""
    def hand_in(student, size, name="clustering.ipynb"):
        folder = tmp_path / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x" * size)
        return folder

    hand_in("blank", 100)
    hand_in("solved", 5_000)
    hand_in("partial", 2_000)
    hand_in("tie_b", 2_000)
    hand_in("extra_files", 50).joinpath("huge.bin").write_bytes(b"x" * 10_000)  # not a notebook: not counted
    (hand_in("linked", 10) / "big.ipynb").symlink_to(tmp_path / "submitted" / "solved" / ASSIGNMENT / "clustering.ipynb")
    students = ["blank", "extra_files", "linked", "missing", "partial", "solved", "tie_b"]
    assert largest_first(tmp_path, ASSIGNMENT, students) == [
        "solved", "partial", "tie_b", "blank", "extra_files", "linked", "missing"]


@pytest.mark.slow
def test_a_rerun_grades_only_new_or_changed_submissions(tmp_path, submissions, serial, log_lines):
    serial_course, _, _ = serial
    course = tmp_path / "course"
    shutil.copytree(serial_course, course)
    ada = course / "autograded" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    before = ada.stat().st_mtime_ns
    better = copy.deepcopy(submissions["ada"])
    nbformat.write(better, course / "submitted" / "bo" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")  # bo resubmits
    results = {r.student: r for r in grade(course, ASSIGNMENT, progress=False)}
    assert results["bo"].score == SMALL_FULL and results["ada"].score == SMALL_FULL
    assert any("3 submission(s) unchanged" in m for m in log_lines)
    assert ada.stat().st_mtime_ns == before, "ada's unchanged submission was graded again"


@pytest.mark.slow
def test_a_crashed_worker_loses_no_other_students_result_and_the_batch_keeps_its_workers(
        tmp_path, monkeypatch, copy_small_course, submissions):
    others = ["bo", "w1", "w2", "zoe"]
    course = copy_small_course(tmp_path / "course", {name: submissions["bo"] for name in others + ["crasher"]})
    real = autograde.grade_student
    log = tmp_path / "graded.txt"

    def crashing(api, course_root, assignment, student, db=None):
        started = time.time()
        if student == "crasher":
            with open(log, "a") as out:
                out.write(f"crash {os.getpid()} {started} {started}\n")
            os._exit(13)  # the worker process dies, as on a segfault or an OOM kill
        result = real(api, course_root, assignment, student, db=db)
        with open(log, "a") as out:
            out.write(f"{student} {os.getpid()} {started} {time.time()}\n")
        return result

    monkeypatch.setattr(autograde, "grade_student", crashing)  # grade() hands it to the forked workers
    results = {r.student: r for r in grade(course, ASSIGNMENT, workers=2, **QUIET)}
    for name in others:
        assert (results[name].status, results[name].score) == (GRADED, 1), name
    assert results["crasher"].status == FAILED and "crashed" in results["crasher"].reason
    # After the first crash, the others were graded two at a time, not one after the other.
    rows = [line.split() for line in log.read_text().splitlines()]
    crashed = min(float(start) for name, _, start, _ in rows if name == "crash")
    after = sorted((float(start), float(end), pid) for name, pid, start, end in rows
                   if name != "crash" and float(start) > crashed)
    assert len(after) >= 3, rows
    assert any(later[0] < earlier[1] and later[2] != earlier[2] for earlier, later in zip(after, after[1:])), \
        f"no two students graded at the same time after the crash: {after}"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission(ASSIGNMENT, "zoe").score == 1


@pytest.mark.slow
def test_a_changed_grading_setting_makes_the_rerun_grade_everyone_again(serial):
    """The fingerprint of a graded submission holds the settings that change a grade (time limits and the like)."""
    from coursekit.common.paths import ROOT
    from coursekit.grading.gradebook import db_url
    from coursekit.steps import build
    from coursekit.steps.grade import unchanged_results

    course, results, _ = serial
    students = sorted(r.student for r in results if r.status == GRADED)
    config = build.load_course_config(ROOT)
    kept = unchanged_results(course, ASSIGNMENT, students, db_url(course), settings=autograde.grading_settings(config))
    assert sorted(kept) == students, "unchanged settings: every earlier grade is kept"
    for section, name, value in (("TimeLimits", "floor", 5), ("Execute", "timeout", 60), ("Sandbox", "memory_limit_mb", 2048)):
        changed = build.load_course_config(ROOT)
        setattr(changed[section], name, value)
        assert unchanged_results(course, ASSIGNMENT, students, db_url(course),
                                 settings=autograde.grading_settings(changed)) == {}, f"{section}.{name} changed"
    workers = build.load_course_config(ROOT)
    workers.SandboxedKernelManager.workers = 4  # not a grading setting: the same scores with any number
    workers.Sandbox.preload = ["ipykernel.kernelapp"]  # nor is what the warm parent imports for the kernels
    assert sorted(unchanged_results(course, ASSIGNMENT, students, db_url(course),
                                    settings=autograde.grading_settings(workers))) == students


def test_a_mistyped_student_id_is_refused_not_recorded_as_not_submitted(serial):
    course, _, _ = serial
    status_before = status_path(course, ASSIGNMENT).read_bytes()
    with pytest.raises(GradeError, match=r"no student 2026999 in .*not in the gradebook; check the id"):
        grade(course, ASSIGNMENT, students=["ada", "2026999"], progress=False)
    assert status_path(course, ASSIGNMENT).read_bytes() == status_before, "nothing recorded for anyone"
