"""Grading as an ordinary user: the sandbox's user-namespace mode (issue 29).

CI runs as root, so this module makes an ordinary account (``coursekit-ta``,
with its own install of the course: :func:`conftest.ordinary_account`) and,
as that account, in its own copy of the repository:

- runs the trust tier as it runs as root: the sandbox's tests, the attack
  class (``test_adversarial``) and the checker's attack tests, less those
  marked ``host_side`` (what the grader decides on the host, the same in both
  modes: repairs of a notebook's structure, the checker's verdicts, output
  floods, seeds), which root's run covers;
- grades a class (of the small assignment, ``conftest.small_assignment``)
  with two workers, and finds every cell's score, flag and comment equal to
  root mode's on the same submissions; the trial kernel says
  which mode is in force and why; the account writes the feedback pages and
  the class report.

formgrader as that account is ``test_first_day``'s.
"""

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import (
    ORDINARY_ACCOUNT,
    as_ordinary_account,
    gradebook_contents,
    ordinary_repository,
)

from coursekit.steps import demo
from coursekit.steps.grade import grade

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ASSIGNMENT = "clustering"

#: The trust tier: every test of the sandbox, its warm kernels and the attack class, and the checker's tests of attacks
#: (less the host-side ones: :data:`MODE_DEPENDENT`).
TRUST_TIER = [
    "tests/test_sandbox.py",
    "tests/test_warm.py",
    "tests/test_adversarial.py",
    "tests/test_checker.py::test_a_wrong_answer_with_a_trick_still_fails",
    "tests/test_checker.py::test_forged_files_from_the_kernel_are_refused",
    "tests/test_checker.py::test_in_the_grading_kernel_a_checker_test_passes_the_right_answer",
    "tests/test_checker.py::test_in_the_grading_kernel_a_wrong_answer_with_tricks_fails",
    "tests/test_checker.py::test_in_the_grading_kernel_a_loop_in_a_checked_call_is_stopped_and_the_rest_runs",
    "tests/test_checker.py::test_after_a_restart_the_replayed_test_cells_leave_their_checker_tests_out_of_the_kernel",
]
#: Only what the sandbox's mode can change: the tests marked host_side are root's run's.
MODE_DEPENDENT = "not host_side"
#: What may be skipped as an ordinary user: the cgroup v1 controllers are root's here.
ALLOWED_SKIPS = ("no writable cgroup v1",)


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    """(repository, environment): the ordinary account's copy of the repository, in a folder it can reach."""
    base = Path(tempfile.mkdtemp(prefix="coursekit ordinary user ", dir="/tmp"))  # not under root's private folder
    repository, environment = ordinary_repository(base)
    environment = {key: value for key, value in environment.items() if not key.startswith("PYTEST_")}
    yield repository, environment
    shutil.rmtree(base, ignore_errors=True)


def _in_copy(account, *arguments, timeout=900):
    repository, environment = account
    return as_ordinary_account([str(repository / ".venv" / "bin" / "python"), *arguments], cwd=repository,
                               env=environment, timeout=timeout)


def test_the_trust_tier_passes_as_an_ordinary_user(account):
    repository, _ = account
    done = _in_copy(account, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--basetemp",
                    str(repository / "pytest-tmp"), "-m", MODE_DEPENDENT, *TRUST_TIER, timeout=1200)
    tail = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary, tail
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(any(reason in line for reason in ALLOWED_SKIPS) for line in skipped), skipped


def _class(master, release):
    return {
        "ada": demo.with_student(master, "Ada", "20260001"),
        "bo": demo.with_student(release, "Bo", "20260002"),
        "pat": demo.partial_submission(master, release),
    }


def test_a_class_graded_as_an_ordinary_user_gets_root_mode_s_scores_cell_by_cell(
        account, tmp_path, copy_small_course, small_master, small_release):
    repository, _ = account
    submissions = _class(small_master, small_release)  # the small assignment: conftest.small_assignment
    by_root = copy_small_course(tmp_path / "root", submissions)
    grade(by_root, ASSIGNMENT, workers=2, progress=False)

    course = copy_small_course(repository / "course", submissions)
    shutil.chown(course, ORDINARY_ACCOUNT)
    for path in course.rglob("*"):
        shutil.chown(path, ORDINARY_ACCOUNT)
    done = _in_copy(account, "-m", "coursekit", "grade", "--root", str(course), "--workers", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert "sandbox: user-namespace mode (the grader is not root; this system lets it create user namespaces)" in said
    assert "memory: watchdog" in said, said[-3000:]

    assert gradebook_contents(course) == gradebook_contents(by_root)

    for step in ("feedback", "report"):
        done = _in_copy(account, "-m", "coursekit", step, "--root", str(course))
        assert done.returncode == 0, f"{step}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    for student in submissions:
        assert (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file(), student
    assert (course / "reports" / ASSIGNMENT / "class_report.html").is_file()
