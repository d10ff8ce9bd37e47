"""The checker process itself (``python -I -m coursekit.check_runner``): see :mod:`coursekit.checker`.

It imports only NumPy and :mod:`coursekit.plain_data` (a process is started
per graded notebook, so its start-up counts), runs each hidden test sent to
it in a fresh namespace with ``student`` standing for the student's
functions, and answers with the verdict. It never runs student code.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from .plain_data import KERNEL_ENCODER, NotPlainData, decode

_namespace = {}
exec(KERNEL_ENCODER, _namespace)  # the kernel's encoder, for the checker's arguments
encode = _namespace["_coursekit_encode"]


class StudentError(Exception):
    """A call of the student's function raised, returned something that is not plain data, or was stopped.

    ``raised`` is the exception's type name when the function raised one ("" otherwise).
    """

    def __init__(self, message, raised=""):
        super().__init__(message)
        self.raised = raised


class Student:
    """The student's functions as the checker test sees them: each call goes through the grader.

    ``student.f(*args, **kwargs)`` returns what ``f`` returned, as plain data;
    afterwards ``student.arguments_after`` holds ``[args, kwargs]`` as they
    were when ``f`` returned (to check that it did not change its inputs);
    ``student.raises("f", *args, **kwargs)`` returns the name of the exception
    ``f`` raised, or None.
    """

    def __init__(self, send, receive):
        self._send, self._receive = send, receive
        self.arguments_after = None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def raises(self, name, *args, **kwargs):
        try:
            self._call(name, args, kwargs)
        except StudentError as error:
            if error.raised:
                return error.raised
            raise
        return None

    def _call(self, name, args, kwargs):
        self._send({"call": name, "args": encode([list(args), kwargs])})
        reply = self._receive()
        if "raised" in reply:
            raise StudentError(f"{name} raised {reply['raised']}", raised=reply["raised"].split(":")[0])
        if "stopped" in reply:
            raise StudentError(f"{name} did not return: {reply['stopped']}")
        try:
            result, self.arguments_after = decode(reply["result"])
        except (NotPlainData, KeyError, TypeError, ValueError) as error:
            raise StudentError(f"{name} returned something that is not plain data: {error}") from None
        return result


def verdict_of(source, test, student, path=()):
    """Run the checker test ``test`` defined in ``source`` against ``student``; return the verdict dict."""
    sys.path[:0] = [p for p in path if p not in sys.path]
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
    """The checker process: tests one after another over stdin and stdout (see the module docstring)."""
    channel, sys.stdout = sys.stdout, sys.stderr  # the tests' prints must not mix with the protocol

    def send(message):
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    def receive():
        line = sys.stdin.readline()
        if not line:
            raise SystemExit(0)  # the grader is done
        return json.loads(line)

    while True:
        request = receive()
        send(verdict_of(request["source"], request["test"], Student(send, receive), request.get("path", ())))


if __name__ == "__main__":
    main()
