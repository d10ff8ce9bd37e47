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

from coursekit import build, demo
from coursekit.grade import grade
from coursekit.parallel import merge_shards
from coursekit.paths import ROOT

pytestmark = pytest.mark.slow
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
def course(tmp_path_factory):
    release = nbformat.read(ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    root = demo.prepare_demo_course(tmp_path_factory.mktemp("pg") / "course")
    for number, student in enumerate(["ann", "ben", "cat"], start=1):
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(demo.with_student(release, student, f"2026000{number}"), folder / f"{ASSIGNMENT}.ipynb")
    return root


def _scores(url):
    with Gradebook(url) as gradebook:
        return {s.student.id: s.score for s in gradebook.assignment_submissions(ASSIGNMENT)}


def test_two_workers_grade_into_one_postgresql_gradebook(course, postgres_url):
    config = build.load_course_config(ROOT)
    config.CourseDirectory.db_url = postgres_url
    results = grade(course, ASSIGNMENT, workers=2, force=True, config=config, progress=False, log=lambda m: None)
    assert {r.student: r.score for r in results} == {"ann": 1, "ben": 1, "cat": 1}
    assert _scores(postgres_url) == {"ann": 1, "ben": 1, "cat": 1}
    assert not (course / "gradebook.db").exists(), "nothing went to a local SQLite gradebook"


def test_sqlite_shards_merge_into_postgresql(course, postgres_url, tmp_path):
    shards = []
    for index in (1, 2):
        db = tmp_path / f"shard-{index}.db"
        grade(course, ASSIGNMENT, shard=(index, 2), gradebook=db, force=True, progress=False, log=lambda m: None)
        shards.append(db)
    merged = merge_shards(course, ASSIGNMENT, shards, target_db=postgres_url)
    assert sorted(merged) == ["ann", "ben", "cat"]
    assert _scores(postgres_url) == {"ann": 1, "ben": 1, "cat": 1}
