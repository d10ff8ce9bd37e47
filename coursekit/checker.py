"""The checker process: a hidden test judged in an interpreter the student's code never shares.

Issue 16, in progress: this module and :mod:`coursekit.plain_data` are the
two ends of the channel; wiring them into grading (GuardedExecute running a
test cell's checker half, the build deriving it from the master) is not done
yet, so no grading uses them.

A checker test is a function of one argument, ``student``, written like any
test, whose calls of the student's functions go through that argument::

    def _checker_test_objective(student):
        import KmeansAnimate2D as reference
        rng = np.random.default_rng(13)
        X, Z, c = rng.normal(size=(10, 2)), rng.normal(size=(2, 2)), rng.integers(0, 2, size=10)
        J = student.clustering_objective(X, c, Z)
        assert np.isclose(J, reference.clustering_objective(X, c, Z)), "wrong J_clust"

It runs in this process (``python -I -m coursekit.checker``): its own NumPy,
its own import of the helper, its own builtins. Each ``student.<name>(...)``
sends the arguments to the grader as plain data; the grader has the kernel run
:data:`KERNEL_CALL` on them and answers with what came back, which is decoded
here by :func:`coursekit.plain_data.decode`. The verdict is the test's:
``pass``, or ``fail`` with the assertion's (or the failure's) message.

Protocol, one JSON object per line on the process's stdin and stdout (the
test's own prints go to stderr)::

    grader -> checker  {"source": ..., "test": name, "path": [folders to import from]}
    checker -> grader  {"call": name, "args": <plain data (JSON text) of [args, kwargs]>}
    grader -> checker  {"result": <plain data>} | {"raised": "ValueError: ..."} | {"stopped": why}
    checker -> grader  {"verdict": "pass"} | {"verdict": "fail", "message": ...}
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from .plain_data import KERNEL_ENCODER, NotPlainData, decode

#: What the kernel runs for one call: decode the arguments, call the student's function, encode what it returned.
KERNEL_CALL = KERNEL_ENCODER + r'''
def _coursekit_call(name, arguments):
    import base64 as _b64, io as _io, json as _json
    import numpy as _np

    def value(tree):
        if isinstance(tree, list):
            return [value(x) for x in tree]
        if isinstance(tree, dict):
            if "__ndarray__" in tree:
                return _np.load(_io.BytesIO(_b64.b64decode(tree["__ndarray__"])), allow_pickle=False)
            if "__float__" in tree:
                return float(tree["__float__"])
            if "__dict__" in tree:
                return {value(k): value(v) for k, v in tree["__dict__"]}
        return tree

    args, kwargs = value(_json.loads(arguments))
    return _coursekit_encode(globals()[name](*args, **kwargs))
'''

_namespace = {}
exec(KERNEL_ENCODER, _namespace)  # the same encoder, for the checker's arguments
encode = _namespace["_coursekit_encode"]


class StudentError(Exception):
    """A call of the student's function raised, returned something that is not plain data, or was stopped."""


class Student:
    """The student's functions as the checker test sees them: each call goes through the grader."""

    def __init__(self, send, receive):
        self._send, self._receive = send, receive

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            self._send({"call": name, "args": encode([list(args), kwargs])})
            reply = self._receive()
            if "raised" in reply:
                raise StudentError(f"{name} raised {reply['raised']}")
            if "stopped" in reply:
                raise StudentError(f"{name} did not return: {reply['stopped']}")
            try:
                return decode(reply["result"])
            except (NotPlainData, KeyError) as error:
                raise StudentError(f"{name} returned something that is not plain data: {error}") from None

        return call


def verdict_of(source, test, student, path=()):
    """Run the checker test ``test`` defined in ``source`` against ``student``; return the verdict dict."""
    sys.path[:0] = list(path)
    namespace = {"np": np, "__name__": "__checker__"}
    try:
        exec(compile(source, "<hidden test>", "exec"), namespace)  # noqa: S102 (the master's own hidden test)
        namespace[test](student)
    except AssertionError as error:
        return {"verdict": "fail", "message": str(error) or "a hidden test failed"}
    except StudentError as error:
        return {"verdict": "fail", "message": str(error)}
    except Exception as error:  # what the student returned broke the test's own code
        return {"verdict": "fail", "message": f"{type(error).__name__}: {error}"}
    return {"verdict": "pass"}


def main():
    """The checker process: one test per process, over stdin and stdout (see the module docstring)."""
    channel, sys.stdout = sys.stdout, sys.stderr  # the test's prints must not mix with the protocol

    def send(message):
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    def receive():
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("the grader closed the channel")
        return json.loads(line)

    first = receive()
    send(verdict_of(first["source"], first["test"], Student(send, receive), first.get("path", ())))


def run_checker(source, test, call_in_kernel, path=(), timeout=120):
    """Judge one checker test in a fresh process; return (passed, message).

    Parameters
    ----------
    source, test : str
        The hidden test's source and the name of its checker function.
    call_in_kernel : callable
        ``call_in_kernel(name, arguments_json) -> reply dict``: has the
        student's kernel run ``_coursekit_call(name, arguments_json)`` and
        returns ``{"result": text}``, ``{"raised": text}`` or ``{"stopped": text}``.
    path : sequence of str
        Folders the checker imports from (the master's, for the helper module).
    timeout : float
        Seconds the checker's own work may take between two messages.
    """
    process = subprocess.Popen([sys.executable, "-I", "-m", "coursekit.checker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        process.stdin.write(json.dumps({"source": source, "test": test, "path": list(path)}) + "\n")
        process.stdin.flush()
        while True:
            line = process.stdout.readline()
            if not line:
                return False, "the checker stopped without a verdict"
            message = json.loads(line)
            if "verdict" in message:
                return message["verdict"] == "pass", message.get("message", "")
            reply = call_in_kernel(message["call"], message["args"])
            process.stdin.write(json.dumps(reply) + "\n")
            process.stdin.flush()
    finally:
        process.kill()
        process.wait(timeout=timeout)


if __name__ == "__main__":
    main()
