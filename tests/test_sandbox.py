"""The sandbox itself: refusal without it, and what the kernel can see."""

import os
import re
import subprocess

import pytest

from coursekit.grading import bwrap, sandbox
from coursekit.steps import grade


def test_grading_refuses_without_a_sandbox_unless_the_risk_is_accepted(monkeypatch, log_lines):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(grade, "check_sandbox", sandbox.check_sandbox)
    with pytest.raises(grade.GradeError, match="bubblewrap is not installed.*--allow-unsandboxed"):
        grade.require_sandbox(allow_unsandboxed=False)
    grade.require_sandbox(allow_unsandboxed=True)
    assert log_lines and "warning: grading without a sandbox" in log_lines[0]


@pytest.mark.parametrize("machine", ["macOS", "Windows", "no user namespaces"])
def test_where_no_sandbox_can_be_made_grading_refuses_and_names_the_ways_out(machine, monkeypatch):
    if machine == "no user namespaces":  # an ordinary user in a container that allows none
        monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
        monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
        monkeypatch.setattr(sandbox, "_probe", lambda *args: subprocess.CompletedProcess(
            args, 1, "", "bwrap: No permissions to create new namespace"))
    else:
        monkeypatch.setattr(sandbox.sys, "platform", {"macOS": "darwin", "Windows": "win32"}[machine])
    with pytest.raises(sandbox.SandboxUnavailable) as refused:
        sandbox.sandbox_mode()
    for way_out in ("a Linux VM", "WSL2", "deploy/"):
        assert way_out in str(refused.value)
    if machine == "no user namespaces":
        assert "not root and may not create user namespaces" in str(refused.value)
        assert "No permissions to create new namespace" in str(refused.value)
    with pytest.raises(grade.GradeError, match="--allow-unsandboxed"):
        grade.require_sandbox(allow_unsandboxed=False)


def test_the_mode_is_root_s_as_root_and_user_namespaces_otherwise():
    """The trial kernel's line says which mode is in force and why (tests/test_ordinary_user.py: as a user)."""
    mode = sandbox.sandbox_mode()
    assert mode == (sandbox.ROOT_MODE if os.geteuid() == 0 else sandbox.USER_NAMESPACE_MODE)
    assert sandbox.describe_mode(mode).startswith(f"sandbox: {'root' if os.geteuid() == 0 else 'user-namespace'} mode (")


def test_the_sandboxed_process_sees_only_its_folder(tmp_path):
    mode = sandbox.check_sandbox()
    work, sockets = tmp_path / "student", tmp_path / "sockets"
    work.mkdir()
    sockets.mkdir()
    (sockets / "kernel.json").write_text("{}")
    (work / "data.txt").write_text("the assignment's data")
    (tmp_path / "secret.txt").write_text("hidden tests")
    settings = sandbox.Sandbox()
    uid, gid = sandbox.sandbox_ids(settings)
    if mode == sandbox.ROOT_MODE:
        sandbox._give_to(sockets, uid, gid)
    probe = (
        "import os, resource; print(os.getuid(), os.readlink('/proc/self/ns/user'), os.getcwd(), sorted(os.listdir('.')),"
        " open('data.txt').read(), os.path.exists('../secret.txt'), os.path.exists(%r),"
        " resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, os.environ.get('PYTHONHASHSEED'), sorted(os.environ)[:3])"
        % str(tmp_path / "secret.txt")
    )
    command = sandbox.sandbox_command(["python", "-c", probe], work, sockets, settings)
    result = subprocess.run(command, capture_output=True, text=True, env={}, timeout=60)
    assert result.returncode == 0, result.stderr
    uid, namespace, rest = result.stdout.split(" ", 2)
    if mode == sandbox.ROOT_MODE:  # an unprivileged user id of its own
        assert int(uid) == sandbox.sandbox_ids(settings)[0] >= 200000
    else:  # a user namespace of its own, mapping only the grader's id
        assert int(uid) == os.getuid() != 0 and namespace != os.readlink("/proc/self/ns/user")
    # Its working folder is its own, holding the assignment's files; the host folder around it is not there.
    assert rest.startswith("/tmp/student ['data.txt'] the assignment's data False False 3072 0")


@pytest.mark.host_side
def test_the_notebook_time_budget_stops_the_rest_and_says_so(tmp_path):
    """c.GuardedExecute.notebook_timeout caps the whole notebook, not just one cell."""
    import json

    import nbformat
    from traitlets.config import Config

    from coursekit.grading.execute import INCIDENTS_FILE, GuardedExecute

    cells = [nbformat.v4.new_code_cell(f"import time; time.sleep(2); x{i} = {i}") for i in range(4)]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    config = Config()
    config.GuardedExecute.notebook_timeout = 5
    config.Execute.timeout = 30
    executed, _ = GuardedExecute(config=config).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    stopped = [c for c in executed.cells if any(o.get("ename") == "GradingStopped" for o in c.outputs)]
    assert 1 <= len(stopped) <= 3, [c.outputs for c in executed.cells]
    assert "time limit of 5 s" in stopped[-1].outputs[-1]["evalue"]
    assert not any(o.get("output_type") == "error" for o in executed.cells[0].outputs), "the first cell ran"
    incidents = json.loads((tmp_path / INCIDENTS_FILE).read_text())
    assert incidents and ("time limit" in incidents[-1]["what"])


def _run_in_grading_kernel(tmp_path, *sources):
    import nbformat

    from coursekit.grading.execute import GuardedExecute

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in sources],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    )
    executed, _ = GuardedExecute().preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    return executed.cells


def test_graded_kernels_reuse_one_matplotlib_font_list(tmp_path):
    """Every kernel gets the font list built once, instead of scanning the fonts per submission."""
    sandbox.check_sandbox()
    cells = _run_in_grading_kernel(
        tmp_path,
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')",
        "import os, matplotlib, matplotlib.font_manager\n"
        "print(matplotlib.get_cachedir() == os.environ['MPLCONFIGDIR'], sorted(os.listdir(matplotlib.get_cachedir())))",
    )
    printed = "".join(o.get("text", "") for o in cells[1].outputs)
    assert "generated new fontManager" not in printed
    assert printed.strip() == f"True ['{bwrap.matplotlib_font_list().name}']"


def test_the_font_list_is_built_once_per_machine_and_anew_when_the_fonts_change(tmp_path, monkeypatch):
    """Each grading run reuses the list the first one built; a font added to the system makes a new one."""
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    monkeypatch.setattr(bwrap, "FONT_DIRS", (str(fonts),))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    builds = []
    real_build = bwrap._build_font_list
    monkeypatch.setattr(bwrap, "_build_font_list", lambda folder: builds.append(folder) or real_build(folder))

    def in_a_new_grading_run():
        monkeypatch.setattr(bwrap, "_font_list", {})
        return bwrap.matplotlib_font_list()

    first = in_a_new_grading_run()
    assert first.is_file() and first.parent.parent == tmp_path / "cache" / "coursekit", first
    assert first.name.startswith("fontlist-") and '"ttflist"' in first.read_text()
    assert in_a_new_grading_run() == first and len(builds) == 1, "the second run builds nothing"
    (fonts / "new.ttf").write_bytes(b"not really a font")
    second = in_a_new_grading_run()
    assert second != first and second.is_file() and len(builds) == 2
    assert sorted(p.name for p in (tmp_path / "cache" / "coursekit").iterdir()) == sorted(
        [first.parent.name, second.parent.name]), "no half-built folder is left"
    # Where the cache cannot be written, each run builds a list of its own, as before.
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-cache-here")
    own = in_a_new_grading_run()
    assert own.is_file() and "coursekit" not in str(own) and len(builds) == 3


def test_a_fresh_kernel_gives_each_cell_exactly_its_own_output(tmp_path):
    """The client does not wait out IOPub's start-up chatter; no stray message lands in a cell."""
    sandbox.check_sandbox()
    cells = _run_in_grading_kernel(tmp_path, "print('first')", "1 + 1")
    assert [o["output_type"] for o in cells[0].outputs] == ["stream"]
    assert cells[0].outputs[0]["text"] == "first\n"
    assert cells[1].outputs[0]["data"]["text/plain"] == "2"
    assert (cells[0].execution_count, cells[1].execution_count) == (1, 2)


@pytest.mark.host_side
def test_each_test_cell_starts_from_its_own_seed(tmp_path):
    """Whatever the student's cells drew before, a test cell sees the same random numbers."""
    import random
    import zlib

    import nbformat
    import numpy as np

    from coursekit.grading.execute import GuardedExecute

    sandbox.check_sandbox()
    test_cell = nbformat.v4.new_code_cell("print(np.random.random(), random.random())")
    test_cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t1", "points": 1, "solution": False,
                                      "locked": True, "schema_version": 3}
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import numpy as np, random, time\n"
                                         "np.random.random(time.time_ns() % 7 + 1); random.random()"), test_cell],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    )
    executed, _ = GuardedExecute().preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    seed = zlib.crc32(b"t1") % (2**32 - 1)
    np.random.seed(seed)
    random.seed(seed)
    assert executed.cells[1].outputs[0]["text"] == f"{np.random.random()} {random.random()}\n"


def test_each_kernel_runs_as_a_user_of_its_own(tmp_path):
    """A kernel started right after another never shares its user, hence its process limit.

    Root mode: a user id of its own. User-namespace mode: the grader's id, in a
    user namespace of its own (where RLIMIT_NPROC counts only the namespace's processes).
    """
    mode = sandbox.check_sandbox()
    probe = "import os; print(os.getuid(), os.getgid(), os.readlink('/proc/self/ns/user'))"
    runs = [_run_in_grading_kernel(tmp_path, probe)[0].outputs[0]["text"].split() for _ in range(2)]
    if mode == sandbox.ROOT_MODE:
        ids = [tuple(map(int, run[:2])) for run in runs]
        assert ids[0] != ids[1]
        assert all(uid == gid >= 200000 for uid, gid in ids)
    else:
        namespaces = {run[2] for run in runs}
        assert len(namespaces) == 2 and os.readlink("/proc/self/ns/user") not in namespaces


def _guarded(tmp_path, sources, files=None, **settings):
    """Run ``sources`` as a notebook in a grading kernel; return (cells, incidents, working folder)."""
    import json

    import nbformat
    from traitlets.config import Config

    from coursekit.grading.execute import INCIDENTS_FILE, GuardedExecute

    work = tmp_path / "clustering"
    work.mkdir()
    for name, data in (files or {}).items():
        (work / name).write_bytes(data)
    config = Config()
    config.Execute.timeout = 20
    for key, value in settings.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in sources],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    )
    executed, _ = GuardedExecute(config=config).preprocess(nb, {"metadata": {"path": str(work)}})
    return executed.cells, json.loads((work / INCIDENTS_FILE).read_text()), work


def _printed(cell):
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)


def test_a_kernel_can_neither_signal_nor_read_the_grader(tmp_path):
    """In both modes (user-namespace mode: under the grader's own user id outside): the grader's process is not there."""
    sandbox.check_sandbox()
    grader = os.getpid()
    cells, _, _ = _guarded(tmp_path, [
        "import os, signal\n"
        f"for attempt in (lambda: os.kill({grader}, signal.SIGTERM), lambda: open('/proc/{grader}/environ').read(),\n"
        f"                lambda: os.readlink('/proc/{grader}/root')):\n"
        "    try:\n        attempt()\n        print('DONE')\n    except OSError as error:\n        print(type(error).__name__)",
    ])
    assert _printed(cells[0]).split() == ["ProcessLookupError", "FileNotFoundError", "FileNotFoundError"]


def test_only_declared_regular_files_come_back_and_links_are_never_followed(tmp_path):
    sandbox.check_sandbox()
    (tmp_path / "master.ipynb").write_text("SOLUTIONS AND HIDDEN TESTS")
    cells, incidents, work = _guarded(tmp_path, [
        "import os\n"
        f"os.symlink({str(tmp_path / 'master.ipynb')!r}, 'notes.txt'); os.symlink('/etc/passwd', 'passwd.txt')\n"
        f"os.symlink({str(tmp_path / 'master.ipynb')!r}, 'other.ipynb'); os.symlink('../../..', 'up')\n"
        "os.symlink('/etc/passwd', 'cat_compressed_1.png'); os.mkfifo('cat_compressed_2.png'); os.mkdir('cat_compressed_3.png')\n"
        "open('cat_compressed_4.png', 'wb').write(b'PNG4'); os.link('cat_compressed_4.png', 'cat_compressed_5.png')\n"
        "open('cat_compressed_6.png', 'wb').write(b'PNG6'); open('cat_compressed_7.png', 'wb').write(b'7' * 3_000_000)\n"
        "open('data.txt', 'a')",
    ], files={"data.txt": b"input"}, GuardedExecute__keep_files=["cat_compressed_*.png"], GuardedExecute__keep_file_max_mb=1.0)
    # The inputs are read-only: bound so (user-namespace mode), and not the kernel's user's (root mode).
    assert re.search(r"(Permission denied|Read-only file system): 'data.txt'", _printed(cells[0]))
    # Only the one plain file came back, as a regular file with its bytes; nothing was followed.
    assert sorted(p.name for p in work.iterdir()) == ["cat_compressed_6.png", "data.txt", "grading_incidents.json"]
    assert not (work / "cat_compressed_6.png").is_symlink() and (work / "cat_compressed_6.png").read_bytes() == b"PNG6"
    assert (work / "data.txt").read_bytes() == b"input"
    left = incidents[-1]["what"]
    for expected in ("notes.txt (symlink)", "passwd.txt (symlink)", "other.ipynb (symlink)", "up (symlink)",
                     "cat_compressed_1.png (symlink)", "cat_compressed_2.png (FIFO)", "cat_compressed_3.png (folder)",
                     "cat_compressed_5.png (hard link)", "cat_compressed_7.png (3.0 MB, over the 1 MB limit)"):
        assert expected in left, left


def test_the_kernel_can_write_only_its_size_limited_space(tmp_path):
    sandbox.check_sandbox()
    import shutil

    free_before = shutil.disk_usage(tmp_path).free
    cells, _, work = _guarded(tmp_path, [
        "import os\nfor i in range(48):\n    open(f'big{i}.bin', 'wb').write(b'0' * (128 << 20))",
        "os.remove('big0.bin'); open('again.bin', 'wb').write(b'1' * (64 << 20)); print('space again')",
        "print(os.access(os.environ['MPLCONFIGDIR'], os.W_OK))\n"
        "sockets = [f for f in os.listdir('/tmp') if f.startswith('ck-')]\n"
        "print('host folders writable:', [d for d in sockets if os.access('/tmp/' + d, os.W_OK)])",
    ], Sandbox__disk_limit_mb=256)
    assert "No space left on device" in _printed(cells[0])
    assert "space again" in _printed(cells[1])
    assert "True" in _printed(cells[2]) and "host folders writable: []" in _printed(cells[2])
    assert sum(p.stat().st_size for p in work.iterdir()) < 1 << 20
    assert free_before - shutil.disk_usage(tmp_path).free < 64 << 20


@pytest.mark.host_side  # the grader cuts the output as it arrives, in either mode
@pytest.mark.parametrize("flood", [
    "for _ in range(100):\n    print('x' * 1_000_000)",                          # long lines (50x the cell's limit)
    "import sys\nfor _ in range(1000):\n    sys.stdout.write('y' * 10_000)",       # no newline at all
    "for i in range(200_000):\n    print(i, flush=True)",                         # many small messages
    "import sys\nfor i in range(300_000):\n    sys.stdout.write(f'\\rprogress {i}\\b')\nprint()",  # \r and \b
    "import sys, threading\ndef spam():\n    while True:\n        sys.stdout.write('o' * 1000); sys.stderr.write('e' * 1000)\n"
    "for _ in range(3):\n    threading.Thread(target=spam, daemon=True).start()\nimport time; time.sleep(2)",
], ids=["long lines", "no newline", "many small messages", "carriage returns", "threads on both streams"])
def test_a_flood_of_output_is_cut_as_it_arrives_and_the_notebook_goes_on(tmp_path, flood):
    sandbox.check_sandbox()
    import json

    cells, incidents, _ = _guarded(tmp_path, [flood, "print('next cell')"], Execute__timeout=4)
    flooded = json.dumps([dict(o) for o in cells[0].outputs])
    assert len(flooded) < 2_300_000  # the cell limit (2 MB) and a note, whatever was printed
    assert "output truncated by the grader" in flooded or "time limit" in flooded or "progress 299999" in flooded
    # The next cell runs (threads that go on flooding may fill its output or use up its time limit).
    after = _printed(cells[1])
    assert any(sign in after for sign in ("next cell", "time limit", "output truncated by the grader")), after[:300]
    assert len(after) < 2_300_000


def test_a_sandbox_that_cannot_start_a_kernel_is_reported_with_the_kernel_s_stderr():
    sandbox.check_sandbox()
    settings = sandbox.Sandbox(memory_limit_mb=8)  # too little for Python to start
    with pytest.raises(sandbox.KernelDoesNotStart) as refused:
        sandbox.check_kernel(settings, timeout=20)
    message = str(refused.value)
    assert "did not start" in message and "c.Sandbox" in message
    assert "(nothing)" not in message.split("The kernel's stderr:")[1], message  # the kernel's own words
    sandbox.check_kernel()  # the default settings work


def test_a_course_environment_reached_through_a_symlink_still_runs_kernels(tmp_path):
    """The course's .venv may be a link to an environment elsewhere; the kernel must still start."""
    import sys
    from pathlib import Path

    from coursekit.common.paths import ROOT

    sandbox.check_sandbox()
    linked = tmp_path / "course" / ".venv"
    linked.parent.mkdir()
    linked.symlink_to(Path(sys.prefix).resolve())
    result = subprocess.run(
        [str(linked / "bin" / "python"), "-c", "from coursekit.grading import sandbox; sandbox.check_kernel(); print('kernel ok')"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and "kernel ok" in result.stdout, result.stderr[-2000:]


def test_grading_does_not_start_when_no_kernel_can_run_in_the_sandbox(tmp_path):
    """A broken sandbox is the machine's problem: reported once, nobody marked 'failed to grade'."""
    import nbformat

    from coursekit.common.paths import ROOT
    from coursekit.common.results import status_path
    from coursekit.steps import build, demo

    sandbox.check_sandbox()
    course = tmp_path / "course"
    demo.prepare_demo_course(course)
    folder = course / "submitted" / "20260001" / "clustering"
    folder.mkdir(parents=True)
    nbformat.write(nbformat.read(ROOT / "release" / "clustering" / "clustering.ipynb", as_version=4),
                   folder / "clustering.ipynb")
    config = build.load_course_config(ROOT)
    config.Sandbox.memory_limit_mb = 8
    with pytest.raises(grade.GradeError, match="(?s)nobody was graded.*did not start.*kernel's stderr"):
        grade.grade(course, "clustering", progress=False, config=config)
    assert not status_path(course, "clustering").exists()


FORK_FOUR = (
    "import os, time\n"
    "children = []\n"
    "for _ in range(4):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        block = b'\\x01' * (400 << 20)  # 400 MB each, every page touched\n"
    "        time.sleep(2)\n"
    "        os._exit(0)\n"
    "    children.append(pid)\n"
    "codes = [os.waitpid(p, 0)[1] for p in children]\n"
    "print('stopped children:', sum(1 for c in codes if os.WIFSIGNALED(c)))"
)


@pytest.mark.parametrize("kind", ["cgroup v1", "watchdog"])
def test_forked_processes_share_one_memory_ceiling_and_the_cell_that_went_over_is_charged(tmp_path, kind):
    """Four forks of 400 MB each, under a ceiling of 1.2 GB for the whole sandbox (each alone is under it)."""
    sandbox.check_sandbox()
    from coursekit.grading import ceiling

    if kind == "cgroup v1" and ceiling.detect() != "cgroup v1":
        pytest.skip("this machine has no writable cgroup v1 memory controller")
    cells, incidents, _ = _guarded(tmp_path, [FORK_FOUR, "print('the next cell runs')"],
                                   Sandbox__memory_limit_mb=1200, Sandbox__ceiling=kind)
    charged = [i for i in incidents if i["cell"] == 0 and "memory limit (1200 MB for all" in i["what"]]
    assert charged, incidents
    assert "the next cell runs" in _printed(cells[1])
    assert not [i for i in incidents if i["cell"] == 1], incidents
    if kind == "cgroup v1":  # the kernel lived on: the largest processes, children, were stopped
        assert "stopped children:" in _printed(cells[0]) and "stopped children: 0" not in _printed(cells[0])


def test_the_trial_kernel_says_which_memory_ceiling_is_in_force(log_lines):
    sandbox.check_sandbox()
    from coursekit.grading import ceiling

    sandbox.check_kernel()
    assert f"memory: {ceiling.machine_kind()}, 3 GB for the whole sandbox" in list(log_lines)
