"""A shared PostgreSQL gradebook (nbgrader's db_url), on a server this test starts on 127.0.0.1.

Needs Debian's PostgreSQL server binaries (package postgresql; CI installs
it) and the ``postgres`` system user; skipped otherwise, saying why.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursekit.common.paths import ROOT
from coursekit.grading.parallel import merge_shards
from coursekit.steps import build, demo
from coursekit.steps.grade import grade

ASSIGNMENT = "clustering"


def _server_binaries():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(*command):
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)], capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.fixture(scope="module")
def postgres_url():
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user")
    data = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    os.chmod(data, 0o700)
    shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    _as_postgres(binaries / "initdb", "-D", data / "db", "--auth=trust", "-U", "postgres")
    _as_postgres(binaries / "pg_ctl", "-D", data / "db", "-l", data / "log", "-w", "start",
                 "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1")
    try:
        _as_postgres("psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-c", "CREATE DATABASE clustering")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/clustering"
    finally:
        _as_postgres(binaries / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def course(tmp_path_factory, submit, small_master, small_release):
    """A course of the small assignment (``conftest.small_assignment``) without any SQLite gradebook (not a copy of
    ``registered_small_course``), three students submitted.

    The helper and data are put beside the master now, as grading would: the
    two shards of the second test run at the same time and would both copy them.
    """
    root = demo.prepare_demo_course(tmp_path_factory.mktemp("pg") / "course")
    nbformat.write(small_master, root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    build.sync_course_files(root / "source" / ASSIGNMENT, build.course_files())
    for number, student in enumerate(["ann", "ben", "cat"], start=1):
        submit(root, student, demo.with_student(small_release, student, f"2026000{number}"))
    return root


def _scores(url):
    with Gradebook(url) as gradebook:
        return {s.student.id: s.score for s in gradebook.assignment_submissions(ASSIGNMENT)}


@pytest.mark.slow
def test_two_workers_grade_into_one_postgresql_gradebook(course, postgres_url):
    config = build.load_course_config(ROOT)
    config.CourseDirectory.db_url = postgres_url
    results = grade(course, ASSIGNMENT, workers=2, force=True, config=config, progress=False)
    assert {r.student: r.score for r in results} == {"ann": 1, "ben": 1, "cat": 1}
    assert _scores(postgres_url) == {"ann": 1, "ben": 1, "cat": 1}
    assert not (course / "gradebook.db").exists(), "nothing went to a local SQLite gradebook"


@pytest.mark.slow
def test_sqlite_shards_merge_into_postgresql(course, postgres_url, tmp_path, start_grading):
    # Both shards at once, as on two machines: python -m coursekit grade --shard i/2 --gradebook shard-i.db
    shards = [tmp_path / f"shard-{index}.db" for index in (1, 2)]
    runs = [start_grading(course, "--workers", 1, "--force", "--shard", f"{index}/2", "--gradebook", db, log=f"{db}.log")
            for index, db in enumerate(shards, start=1)]
    try:
        for run in runs:
            run.wait()
    finally:
        for run in runs:
            run.stop()
    merged = merge_shards(course, ASSIGNMENT, shards, target_db=postgres_url)
    assert sorted(merged) == ["ann", "ben", "cat"]
    assert _scores(postgres_url) == {"ann": 1, "ben": 1, "cat": 1}
