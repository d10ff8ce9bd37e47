"""The checker process (coursekit.grading.checker): verdicts a student's kernel cannot touch.

The "kernel" here is a separate Python process that runs a student's code,
then serves the checker's calls with :data:`coursekit.grading.checker.KERNEL_CALL`,
as the grading kernel will. Each trick of issue 16 is played in it against a
wrong answer, and must earn no pass; the right answer must pass.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from coursekit.common.paths import ROOT
from coursekit.grading.checker import CHECKER_GUARD, KERNEL_CALL, run_checker, unguarded_test_cells

HIDDEN = '''
def _checker_test_objective(student):
    import KmeansAnimate2D as reference
    rng = np.random.default_rng(13)
    for n, k, d in [(10, 2, 2), (500, 8, 4)]:
        X, Z, c = rng.normal(size=(n, d)), rng.normal(size=(k, d)), rng.integers(0, k, size=n)
        J = student.clustering_objective(X, c, Z)
        assert np.ndim(J) == 0, "return a single number"
        assert np.isclose(J, reference.clustering_objective(X, c, Z)), f"wrong J_clust for N={n}"
    c = student.labels_of(np.arange(6))
    assert isinstance(c, np.ndarray) and np.array_equal(c, np.arange(6) % 2), "wrong labels"
'''

RIGHT = '''
import numpy as np
def clustering_objective(X, c, Z):
    return float(((X - Z[c]) ** 2).sum(axis=1).mean())
def labels_of(x):
    return x % 2
'''
WRONG = '''
import numpy as np
def clustering_objective(X, c, Z):
    return float(((X - Z[c]) ** 2).sum())  # the sum, not the mean
def labels_of(x):
    return x % 3
'''

SERVE = '''
import json, sys
exec(sys.argv[1], globals())
exec(sys.argv[2], globals())
for line in sys.stdin:
    name, arguments = json.loads(line)
    try:
        reply = {"result": _coursekit_call(name, arguments)}
    except Exception as error:
        reply = {"raised": f"{type(error).__name__}: {error}"}
    sys.__stdout__.write(json.dumps(reply) + "\\n")
    sys.__stdout__.flush()
'''


def _judge(student_code, hidden=HIDDEN, test="_checker_test_objective"):
    kernel = subprocess.Popen([sys.executable, "-c", SERVE, student_code, KERNEL_CALL], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def call_in_kernel(name, arguments):
        try:
            kernel.stdin.write(json.dumps([name, arguments]) + "\n")
            kernel.stdin.flush()
            line = kernel.stdout.readline()
        except BrokenPipeError:
            line = ""
        # A kernel whose own serving code the trick broke stops answering, as a real one would.
        return json.loads(line) if line else {"stopped": "the kernel stopped answering"}

    try:
        return run_checker(hidden, test, call_in_kernel, path=[str(ROOT)])
    finally:
        kernel.kill()
        kernel.wait()


def test_the_right_answer_passes_and_the_wrong_one_fails():
    assert _judge(RIGHT) == (True, "")
    passed, message = _judge(WRONG)
    assert not passed and message == "wrong J_clust for N=10"


TRICKS = {
    "numpy's comparisons replaced": "np.isclose = np.allclose = np.array_equal = lambda *a, **k: True",
    "the reference replaced by the student's function":
        "import KmeansAnimate2D\nKmeansAnimate2D.clustering_objective = clustering_objective",
    "builtins replaced": "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.float = lambda x=0: 0.0",
    "round and float patched": "import builtins\nbuiltins.round = lambda *a, **k: 0",
    "an ndarray subclass that equals anything": (
        "class Liar(np.ndarray):\n    def __eq__(self, other): return np.ones(np.shape(other), bool)\n"
        "    @property\n    def shape(self): return ()\n"
        "_wrong = clustering_objective\n"
        "def clustering_objective(X, c, Z): return np.asarray([_wrong(X, c, Z)]).view(Liar)\n"
        "def labels_of(x): return (x % 3).view(Liar)"),
    "a result with a lying __array__": (
        "class Liar:\n    def __array__(self, *a, **k): return np.arange(6) % 2\n"
        "    def __eq__(self, other): return True\n"
        "def labels_of(x): return Liar()\n"
        "def clustering_objective(X, c, Z): return Liar()"),
    "sys.settrace in the kernel": (
        "import sys\nsys.settrace(lambda *a: None)\n"),
}


@pytest.mark.parametrize("trick", TRICKS)
def test_a_wrong_answer_with_a_trick_still_fails(trick):
    passed, message = _judge(WRONG + "\n" + TRICKS[trick])
    assert not passed, message


def test_a_function_that_raises_or_is_missing_fails_with_its_message():
    passed, message = _judge("def clustering_objective(X, c, Z):\n    raise ValueError('not yet')")
    assert not passed and message == "clustering_objective raised ValueError: not yet"
    passed, message = _judge("x = 1")
    assert not passed and message == "clustering_objective raised KeyError: 'clustering_objective'"


# --- Files: the checker hands the function files and reads back what it wrote ---------------

FILES_HIDDEN = '''
def _checker_test_files(student):
    source = student.file("in.txt", b"k-means")
    n = student.shout(source, student.file("out.txt"))
    assert n == 7, f"shout should return the number of bytes read, got {n}"
    assert student.files_after["out.txt"] == b"K-MEANS", f"out.txt holds {student.files_after['out.txt']!r}"
    assert student.files_after["in.txt"] == b"k-means", "shout changed its input file"
    (path, _), _ = student.arguments_after
    assert path.endswith("in.txt"), "the function got the path of the file"
'''

SHOUT = '''
def shout(source, target):
    with open(source, "rb") as handle:
        data = handle.read()
    with open(target, "wb") as handle:
        handle.write(data.upper())
    return len(data)
'''


def test_files_reach_the_function_as_paths_and_what_it_writes_comes_back():
    assert _judge(SHOUT, FILES_HIDDEN, "_checker_test_files") == (True, "")
    # Writes nothing: the checker sees no file.
    passed, message = _judge("def shout(source, target):\n    return 7", FILES_HIDDEN, "_checker_test_files")
    assert (passed, message) == (False, "out.txt holds None")
    # Writes to its input instead: seen too.
    overwrite = SHOUT.replace('open(target, "wb")', 'open(source, "wb")')
    passed, message = _judge(overwrite, FILES_HIDDEN, "_checker_test_files")
    assert (passed, message) == (False, "out.txt holds None")


def test_a_file_too_large_to_read_back_fails_the_call():
    flood = "def shout(source, target):\n    open(target, 'wb').truncate(17 << 20)\n    return 7"
    passed, message = _judge(flood, FILES_HIDDEN, "_checker_test_files")
    assert (passed, message) == (False, "shout wrote more than 16 MB to 'out.txt'")


def test_forged_files_from_the_kernel_are_refused():
    from coursekit.grading import check_runner

    def forged(files):
        replies = [{"result": check_runner.encode([7, [[], {}], files])}]
        student = check_runner.Student(lambda message: None, lambda: replies.pop())
        return check_runner.verdict_of(FILES_HIDDEN, "_checker_test_files", student)

    for files in ({"out.txt": "K-MEANS"}, {"out.txt": np.zeros(3, dtype=np.int64)}, {"out.txt": np.zeros((2, 2), np.uint8)}):
        assert forged(files) == {"verdict": "fail", "message": "the grader could not read back the file 'out.txt' after shout"}


def test_a_file_argument_needs_a_plain_name():
    from coursekit.grading.check_runner import File

    for name in ("", "..", "a/b", "../x", "/etc/passwd"):
        with pytest.raises(ValueError, match="plain file name"):
            File(name)


# --- In the grading kernel: GuardedExecute runs a test cell's checker tests ----------------

TEST_CELL = f'''assert double(1) == 2, "double(1) should be 2"

### BEGIN HIDDEN TESTS
def _checker_test_double(student):
    values = np.arange(5.0)
    got = student.double(values)
    assert type(got) is np.ndarray and np.array_equal(got, 2 * values), "double is wrong for an array"

{CHECKER_GUARD}
### END HIDDEN TESTS
'''
RIGHT_DOUBLE = "import numpy as np\ndef double(x):\n    return x * 2"


def _graded(tmp_path, answer, after="print('after')", test_cell=TEST_CELL, graded=True, more=(), timeout=5):
    """The cells of [answer, test_cell, after, *more] as GuardedExecute leaves them (``more``: (source, graded)).

    ``timeout``: every cell's time limit (``c.Execute.timeout``), in seconds.
    """
    import nbformat
    from traitlets.config import Config

    from coursekit.grading.execute import GuardedExecute

    def grade(grade_id):
        return {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": grade_id, "points": 1,
                             "schema_version": 3}}

    cells = [nbformat.v4.new_code_cell(answer),
             nbformat.v4.new_code_cell(test_cell, metadata=grade("double_test") if graded else {}),
             nbformat.v4.new_code_cell(after)]
    cells += [nbformat.v4.new_code_cell(source, metadata=grade(f"more_{i}") if is_graded else {})
              for i, (source, is_graded) in enumerate(more)]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                          "display_name": "Python 3"}})
    tmp_path.mkdir(exist_ok=True)
    config = Config()
    config.Execute.timeout = timeout
    executed, _ = GuardedExecute(config=config).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    return executed.cells


def _errors(cell):
    return [f"{o['ename']}: {o['evalue']}" for o in cell.outputs if o.get("output_type") == "error"]


@pytest.mark.slow
def test_in_the_grading_kernel_a_checker_test_passes_the_right_answer(tmp_path):
    answer, test, after = _graded(tmp_path, "def double(x):\n    return x * 2")
    assert _errors(test) == [] and after.outputs[0]["text"] == "after\n"
    assert test.source == TEST_CELL, "the graded notebook keeps the cell as the master has it"


@pytest.mark.slow
def test_in_the_grading_kernel_a_wrong_answer_with_tricks_fails(tmp_path):
    tricks = ("import numpy as np\n"
              "np.array_equal = np.allclose = lambda *a, **k: True\n"
              "def double(x):\n    return np.asarray(x + 1) if np.ndim(x) else x * 2")
    # Judged inside the student's kernel, as hidden tests were, the trick works ...
    in_kernel = (TEST_CELL.replace(CHECKER_GUARD + "\n", "")
                 + "\n_checker_test_double(__import__('types').SimpleNamespace(double=double))\n")
    _, fooled, _ = _graded(tmp_path / "in-kernel", tricks, test_cell=in_kernel, graded=False)
    assert _errors(fooled) == []
    # ... judged by the checker, it does not.
    _, test, _ = _graded(tmp_path / "checker", tricks)
    assert _errors(test) == ["AssertionError: double is wrong for an array"]


@pytest.mark.slow
def test_in_the_grading_kernel_a_forged_call_helper_is_replaced_before_the_first_call(tmp_path):
    """The answer cell defines ``_coursekit_call`` itself: the grader's own, rerouted to a right double. The
    grader defines its own again with the test cell's first call, so the wrong double still fails."""
    forged = (KERNEL_CALL + "\n_grader_call = _coursekit_call\n"
              "def _coursekit_call(name, arguments):\n"
              "    return _grader_call('right_double' if name == 'double' else name, arguments)\n"
              + RIGHT_DOUBLE.replace("def double", "def right_double") + "\n"
              "def double(x):\n    return x + 1\n")
    _, test, _ = _graded(tmp_path, forged)
    assert _errors(test) == ["AssertionError: double is wrong for an array"]


@pytest.mark.slow
def test_in_the_grading_kernel_a_loop_in_a_checked_call_is_stopped_and_the_rest_runs(tmp_path):
    _, test, after = _graded(tmp_path, "def double(x):\n    while hasattr(x, 'shape'):\n        pass\n    return x * 2",
                             timeout=2)  # the loop spins a core until then
    assert any("GradingStopped" in e and "time limit" in e for e in _errors(test)), _errors(test)
    assert [o.get("text") for o in after.outputs if o.get("output_type") == "stream"] == ["after\n"]


@pytest.mark.slow
def test_after_a_restart_the_replayed_test_cells_leave_their_checker_tests_out_of_the_kernel(tmp_path):
    """The kernel dies after a checker test cell ran; the fresh kernel re-runs the completed cells, the test
    cell without its checker tests (as it first ran): they never reach the student's kernel, and the guard
    line of the next test cell passes."""
    cells = _graded(tmp_path, RIGHT_DOUBLE, after="import os\nos._exit(1)", more=[
        ("print(sorted(name for name in globals() if 'checker' in name))", False),
        (TEST_CELL, True),
    ])
    assert _errors(cells[1]) == [], "the first test passed before the restart"
    assert cells[3].outputs[0]["text"] == "[]\n", "no checker test in the kernel after the restart"
    assert _errors(cells[4]) == [], "the next checker test is judged and passes, guard included"


# --- The build runs every checker test of the master on the solution -----------------------

def _tiny_master(folder, answer, test_cell=TEST_CELL):
    import nbformat

    grade = {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "double_test", "points": 1,
                          "schema_version": 3}}
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(answer), nbformat.v4.new_code_cell(test_cell, metadata=grade)],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "tiny.ipynb")
    return folder


@pytest.mark.slow
def test_the_build_judges_checker_tests_on_the_solution(tmp_path):
    from coursekit.steps import build

    answer = "import os\nimport numpy as np\ndef double(x):\n    return x * 2\nprint(os.environ['OMP_NUM_THREADS'])"
    executed = build.execute_master(_tiny_master(tmp_path / "good", answer), "tiny.ipynb", threads=3)
    assert not any(o.get("output_type") == "error" for c in executed.cells for o in c.outputs)
    # The kernel has the threads it was given (a grading kernel's, so that the recorded times are grading's).
    assert executed.cells[0].outputs[0].text == "3\n"
    # Right on the visible assert, wrong on the checker's arrays: the build refuses it, naming the cell and why.
    wrong = "import numpy as np\ndef double(x):\n    return x * 2 if np.ndim(x) == 0 else x + 2"
    with pytest.raises(build.BuildError, match=r"cell 1 \(double_test\) raised AssertionError: double is wrong"):
        build.execute_master(_tiny_master(tmp_path / "bad", wrong), "tiny.ipynb")


# --- The guard: nbgrader without this course's config fails checker tests instead of passing them -----

@pytest.mark.slow
def test_plain_nbgrader_without_the_course_config_fails_a_checker_test_saying_why(tmp_path):
    """Another grader's setup: ``nbgrader autograde`` in a course folder with no nbgrader_config.py.

    The checker tests are only defined there; the guard line fails the cell, with its message, though the
    answer is right (graded with the course's config, the same answer passes: see the tests above).
    """
    import shutil

    import nbformat
    from nbgrader.api import Gradebook

    from coursekit.steps import build

    course = tmp_path / "elsewhere"
    _tiny_master(course / "source" / "tiny", RIGHT_DOUBLE)
    build.run_nbgrader("generate_assignment", "tiny", "--force", f"--CourseDirectory.root={course}", cwd=course)
    handed_in = course / "submitted" / "ada" / "tiny"
    handed_in.mkdir(parents=True)
    shutil.copy(course / "release" / "tiny" / "tiny.ipynb", handed_in)
    build.run_nbgrader("autograde", "tiny", "--create", f"--CourseDirectory.root={course}", cwd=course,
                       fail_on_logged_errors=False)
    graded = nbformat.read(course / "autograded" / "ada" / "tiny" / "tiny.ipynb", as_version=4)
    errors = _errors(graded.cells[1])
    assert len(errors) == 1 and errors[0].startswith("AssertionError: this hidden test was not run: the notebook "
                                                      "was graded without the course's nbgrader_config.py"), errors
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission("tiny", "ada").score == 0


def test_the_build_refuses_checker_tests_without_the_guard(tmp_path):
    import nbformat

    def cell(source):
        return nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1, "schema_version": 3}})

    unguarded = TEST_CELL.replace(CHECKER_GUARD + "\n", "")
    guard_first = TEST_CELL.replace(CHECKER_GUARD + "\n", "").replace("### BEGIN HIDDEN TESTS\n",
                                                                      "### BEGIN HIDDEN TESTS\n" + CHECKER_GUARD + "\n")
    for source, expected in ((TEST_CELL, []), (unguarded, ["t"]), (guard_first, ["t"]),
                             ("assert True\n### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS\n", [])):
        assert unguarded_test_cells(nbformat.v4.new_notebook(cells=[cell(source)])) == expected, source


# --- Validate: nbgrader's validator on the master judges checker tests as grading does -------------------

def _validate(notebook):
    """``nbgrader validate NOTEBOOK`` from the course root, as an instructor types it; (exit code, output)."""
    from pathlib import Path

    from coursekit.common.paths import ROOT

    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "validate", str(notebook)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_nbgrader_validate_on_a_master_judges_its_checker_tests_through_the_course_config(tmp_path):
    """Success on the solution, a real failure on a wrong one: not the guard's "this hidden test was not run"."""
    _, out = _validate(_tiny_master(tmp_path / "good", RIGHT_DOUBLE) / "tiny.ipynb")
    assert "Success! Your notebook passes all the tests." in out, out[-3000:]
    assert "Exception while loading config file" not in out
    wrong = "import numpy as np\ndef double(x):\n    return x * 2 if np.ndim(x) == 0 else x + 2"
    _, out = _validate(_tiny_master(tmp_path / "bad", wrong) / "tiny.ipynb")
    assert "VALIDATION FAILED" in out and "double is wrong" in out, out[-3000:]
    assert "this hidden test was not run" not in out
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == ["tiny.ipynb"], "nothing written beside the master"


@pytest.mark.slow
def test_nbgrader_validate_on_a_notebook_without_checker_tests_runs_as_nbgrader_runs_it(tmp_path):
    """A student's release holds no checker test: nbgrader's own Execute runs it, in the student's folder, as before."""
    import nbformat

    folder = tmp_path / "release"
    folder.mkdir()
    grade = {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1,
                          "schema_version": 3}}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("open('written_by_the_notebook.txt', 'w').write('x')"),
        nbformat.v4.new_code_cell("assert False, 'not done yet'", metadata=grade)],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    nbformat.write(nb, folder / "release.ipynb")
    _, out = _validate(folder / "release.ipynb")
    assert "VALIDATION FAILED" in out and "not done yet" in out, out[-3000:]
    assert (folder / "written_by_the_notebook.txt").is_file(), "not sandboxed: the student's own folder, as before"


@pytest.mark.slow
def test_the_validate_button_s_endpoint_judges_the_master_through_the_course_config(tmp_path):
    """What JupyterLab's Validate button posts (``/assignments/validate``), in a server started from the course root."""
    import urllib.parse
    import urllib.request

    from conftest import jupyterlab_server

    wrong = "import numpy as np\ndef double(x):\n    return x * 2 if np.ndim(x) == 0 else x + 2"
    _tiny_master(tmp_path / "served" / "good", RIGHT_DOUBLE)
    _tiny_master(tmp_path / "served" / "bad", wrong)
    with jupyterlab_server(tmp_path / "served", tmp_path / "scratch") as (url, token):
        def validate(path):
            request = urllib.request.Request(f"{url}/assignments/validate", method="POST",
                                             data=urllib.parse.urlencode({"path": path}).encode(),
                                             headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())

        good, bad = validate("good/tiny.ipynb"), validate("bad/tiny.ipynb")
    assert good == {"success": True, "value": {}}, good  # the button then says "Success! Your notebook passes all the tests."
    errors = [cell["error"] for cell in bad["value"].get("failed", [])]
    assert bad["success"] and len(errors) == 1 and errors[0].startswith("AssertionError: double is wrong"), bad


LEAVES_A_MARK = '''
def _checker_test_marks(student):
    import sys
    assert not hasattr(sys, "_coursekit_mark"), "a checker started with what an earlier one left"
    sys._coursekit_mark = True
'''


def test_each_notebooks_checker_starts_afresh_from_one_warm_parent():
    """Checkers are forked from one parent per grading process, each with the state of a fresh process."""
    from coursekit.grading import checker

    never_called = lambda name, arguments: pytest.fail("this test calls no student function")
    for _ in range(3):
        process = checker.CheckerProcess()
        assert process.judge(LEAVES_A_MARK, "_checker_test_marks", never_called) == (True, "")
        assert isinstance(process._process, checker._ForkedChecker)
        process.close()
    server = checker._servers[os.getpid()]
    assert server.process.poll() is None, "one fork server, still running"

    server.process.kill()  # a dead parent is started again
    server.process.wait()
    assert run_checker(LEAVES_A_MARK, "_checker_test_marks", never_called) == (True, "")
    assert checker._servers[os.getpid()] is not server
