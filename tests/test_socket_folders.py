"""The kernels' socket folders in the temporary folder: whose they are, and who clears them.

Fast: folders only, no kernel. A warm parent's sweep with a real warm parent
is ``test_warm.py``'s; what a batch killed with SIGKILL leaves is
``test_interrupt.py``'s.
"""

import os
from pathlib import Path

import pytest

from coursekit.grading import socket_folders
from coursekit.steps import grade


@pytest.fixture
def temporary_folder(tmp_path, monkeypatch):
    """The temporary folder of this process as ``tmp_path``, and no folder of cold kernels made yet."""
    monkeypatch.setattr(socket_folders.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(socket_folders, "_cold_folders", {})
    return tmp_path


def test_a_worker_s_cold_kernel_folders_go_with_the_batch_that_ended_it(temporary_folder):
    worker = os.fork()
    if worker == 0:  # a grading worker: starts a cold kernel, then ends as a pool's worker does (no atexit)
        try:
            socket_folders.cold_kernel_folder()
        finally:
            os._exit(0)
    os.waitpid(worker, 0)
    (left,) = temporary_folder.iterdir()
    assert left.name.startswith(f"ck-k-{worker}-")
    assert (left / socket_folders.NAMESPACE_FILE).read_text() == socket_folders.pid_namespace()
    assert socket_folders.remove_stale_folders() == [str(left)]

    mine = Path(socket_folders.cold_kernel_folder())
    assert mine.parent.name.startswith(f"ck-k-{os.getpid()}-") and mine.parent.stat().st_mode & 0o777 == 0o700
    assert Path(socket_folders.cold_kernel_folder()).parent == mine.parent  # one folder per process
    assert socket_folders.remove_stale_folders() == []  # this process still runs
    socket_folders._remove_cold_folder()  # what atexit does
    assert list(temporary_folder.iterdir()) == []


def test_only_this_user_s_folders_of_ended_processes_in_this_pid_namespace_go(temporary_folder):
    ended = os.fork()
    if ended == 0:
        os._exit(0)
    os.waitpid(ended, 0)
    namespace = socket_folders.pid_namespace()
    made = {
        f"ck-w-{ended}-a": namespace,  # ended: goes
        f"ck-k-{ended}-b": namespace,  # ended: goes
        f"ck-w-{os.getpid()}-c": namespace,  # runs
        f"ck-w-{ended}-d": "1",  # another PID namespace (a container sharing /tmp)
        f"ck-w-{ended}-e": None,  # the namespace not known
        "ck-w-notes": namespace,  # not named after a process
    }
    for name, written in made.items():
        (temporary_folder / name).mkdir()
        if written is not None:
            (temporary_folder / name / socket_folders.NAMESPACE_FILE).write_text(written)
    (temporary_folder / f"ck-k-{ended}-f").write_text("a file, not a folder")
    removed = socket_folders.remove_stale_folders()
    assert sorted(Path(path).name for path in removed) == [f"ck-k-{ended}-b", f"ck-w-{ended}-a"]
    assert sorted(path.name for path in temporary_folder.iterdir()) == sorted(
        [f"ck-w-{os.getpid()}-c", f"ck-w-{ended}-d", f"ck-w-{ended}-e", "ck-w-notes", f"ck-k-{ended}-f"])


def test_a_temporary_folder_too_long_for_sockets_stops_grading_before_anyone_is_graded(tmp_path, monkeypatch):
    assert socket_folders.temporary_folder_problem("/tmp") is None
    assert socket_folders.temporary_folder_problem("/" + "t" * 69) is None  # a kernel's socket path: 106 bytes
    long = str(tmp_path / ("t" * 80))
    problem = socket_folders.temporary_folder_problem(long)
    assert long in problem and "TMPDIR" in problem and "at most 70 bytes" in problem
    monkeypatch.setattr(socket_folders.tempfile, "tempdir", long)
    monkeypatch.setattr(grade, "check_sandbox", lambda: "root")  # a machine where the sandbox works
    monkeypatch.setattr(grade, "check_kernel", lambda settings: pytest.fail("a trial kernel was started"))
    with pytest.raises(grade.GradeError, match="nobody was graded: the temporary folder .* is too long"):
        grade.require_sandbox(False)
