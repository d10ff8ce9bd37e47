"""The checker process (coursekit.checker): verdicts a student's kernel cannot touch.

The "kernel" here is a separate Python process that runs a student's code,
then serves the checker's calls with :data:`coursekit.checker.KERNEL_CALL`,
as the grading kernel will. Each trick of issue 16 is played in it against a
wrong answer, and must earn no pass; the right answer must pass.
"""

import json
import subprocess
import sys

import pytest

from coursekit.checker import KERNEL_CALL, run_checker
from coursekit.paths import ROOT

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


def _judge(student_code):
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
        return run_checker(HIDDEN, "_checker_test_objective", call_in_kernel, path=[str(ROOT)])
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
