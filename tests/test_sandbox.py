"""The sandbox itself: refusal without it, and what the kernel can see."""

import subprocess

import pytest

from coursekit import grade, sandbox


def test_grading_refuses_without_a_sandbox_unless_the_risk_is_accepted(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(grade, "check_sandbox", sandbox.check_sandbox)
    with pytest.raises(grade.GradeError, match="bubblewrap is not installed.*--allow-unsandboxed"):
        grade.require_sandbox(allow_unsandboxed=False)
    messages = []
    grade.require_sandbox(allow_unsandboxed=True, log=messages.append)
    assert messages and "WARNING: grading without a sandbox" in messages[0]


def test_the_sandboxed_process_sees_only_its_folder(tmp_path):
    sandbox.check_sandbox()
    work, sockets = tmp_path / "student", tmp_path / "sockets"
    work.mkdir()
    sockets.mkdir()
    (tmp_path / "secret.txt").write_text("hidden tests")
    settings = sandbox.Sandbox()
    uid, gid = sandbox.sandbox_ids(settings)
    for folder in (work, sockets):
        sandbox._give_to(folder, uid, gid)
    probe = (
        "import os, resource; print(os.getuid(), sorted(os.listdir('..')), os.path.exists('../secret.txt'),"
        " resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, os.environ.get('PYTHONHASHSEED'), sorted(os.environ)[:3])"
    )
    command = sandbox.sandbox_command(["python", "-c", probe], work, sockets, settings)
    result = subprocess.run(command, capture_output=True, text=True, env={}, timeout=60)
    assert result.returncode == 0, result.stderr
    uid, rest = result.stdout.split(" ", 1)
    assert int(uid) == sandbox.sandbox_ids(settings)[0] >= 200000
    # The parent folder holds only what is bound into the sandbox: no secret.txt.
    assert rest.startswith("['sockets', 'student'] False 3072 0")


def test_the_notebook_time_budget_stops_the_rest_and_says_so(tmp_path):
    """c.GuardedExecute.notebook_timeout caps the whole notebook, not just one cell."""
    import json

    import nbformat
    from traitlets.config import Config

    from coursekit.execute import INCIDENTS_FILE, GuardedExecute

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

    from coursekit.execute import GuardedExecute

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
    assert printed.strip() == f"True ['{sandbox.matplotlib_font_list().name}']"


def test_a_fresh_kernel_gives_each_cell_exactly_its_own_output(tmp_path):
    """The client does not wait out IOPub's start-up chatter; no stray message lands in a cell."""
    sandbox.check_sandbox()
    cells = _run_in_grading_kernel(tmp_path, "print('first')", "1 + 1")
    assert [o["output_type"] for o in cells[0].outputs] == ["stream"]
    assert cells[0].outputs[0]["text"] == "first\n"
    assert cells[1].outputs[0]["data"]["text/plain"] == "2"
    assert (cells[0].execution_count, cells[1].execution_count) == (1, 2)


def test_each_test_cell_starts_from_its_own_seed(tmp_path):
    """Whatever the student's cells drew before, a test cell sees the same random numbers."""
    import random
    import zlib

    import nbformat
    import numpy as np

    from coursekit.execute import GuardedExecute

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
    """A kernel started right after another never shares its user, hence its process limit."""
    sandbox.check_sandbox()
    first = _run_in_grading_kernel(tmp_path, "import os; print(os.getuid(), os.getgid())")
    second = _run_in_grading_kernel(tmp_path, "import os; print(os.getuid(), os.getgid())")
    ids = [tuple(map(int, cells[0].outputs[0]["text"].split())) for cells in (first, second)]
    assert ids[0] != ids[1]
    assert all(uid == gid >= 200000 for uid, gid in ids)
