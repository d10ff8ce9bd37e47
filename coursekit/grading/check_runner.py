"""The checker process itself (``python -I -m coursekit.grading.check_runner``): see :mod:`coursekit.grading.checker`.

It imports only NumPy and :mod:`coursekit.grading.plain_data` (there is one
per graded notebook, so its start-up counts), runs each hidden test sent to
it in a fresh namespace with ``student`` standing for the student's
functions, and answers with the verdict. It never runs student code.

With ``--fork-server FD`` it is instead the warm parent of a grading
process's checkers (:func:`serve`): it imports once, and forks a checker
for each notebook, so that each starts with the same state as a fresh
process and none pays the interpreter's and NumPy's start-up (about 0.15 s
of CPU a notebook).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys

import numpy as np

from coursekit.grading.plain_data import KERNEL_ENCODER, NotPlainData, decode

#: The most bytes of a file the kernel sends back after a call (see ``Student.files_after``).
MAX_FILE_BYTES = 16 << 20

_namespace = {}
exec(KERNEL_ENCODER, _namespace)  # the kernel's encoder, for the checker's arguments
encode = _namespace["_coursekit_encode"]


class File:
    """A file for a call of the student's function: ``student.file(name, data)`` (see :class:`Student`)."""

    def __init__(self, name, data=None):
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"a file for the student's function needs a plain file name, not {name!r}")
        if data is not None and not isinstance(data, bytes):
            raise TypeError("the contents of a file for the student's function are bytes")
        self.name, self.data = name, data


def _arguments(value):
    """The JSON tree of the checker's arguments: the kernel's encoding, and :class:`File` as ``__file__``."""
    if isinstance(value, File):
        data = None if value.data is None else base64.b64encode(value.data).decode("ascii")
        return {"__file__": value.name, "bytes": data}
    if isinstance(value, (list, tuple)):
        return [_arguments(item) for item in value]
    if isinstance(value, dict):
        return {"__dict__": [[_arguments(key), _arguments(item)] for key, item in value.items()]}
    return json.loads(encode(value))


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

    Files: an argument ``student.file("a.npz", data)`` reaches ``f`` as the
    path of a file holding ``data`` (bytes), in a folder of its own made for
    the call; ``student.file("out.png")`` as the path of a file that does not
    exist yet, for ``f`` to write. After the call, ``student.files_after``
    maps each such name to the file's bytes as the call left it (None if
    there is none).
    """

    def __init__(self, send, receive):
        self._send, self._receive = send, receive
        self.arguments_after = None
        self.files_after = {}

    @staticmethod
    def file(name, data=None):
        """A file argument for the next call (see the class docstring)."""
        return File(name, data)

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
        self._send({"call": name, "args": json.dumps(_arguments([list(args), kwargs]))})
        reply = self._receive()
        if "raised" in reply:
            raise StudentError(f"{name} raised {reply['raised']}", raised=reply["raised"].split(":")[0])
        if "stopped" in reply:
            raise StudentError(f"{name} did not return: {reply['stopped']}")
        try:
            result, self.arguments_after, files = decode(reply["result"])
        except (NotPlainData, KeyError, TypeError, ValueError) as error:
            raise StudentError(f"{name} returned something that is not plain data: {error}") from None
        self.files_after = {}
        for file, data in (files.items() if isinstance(files, dict) else ()):
            if data is not None and not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1):
                raise StudentError(f"the grader could not read back the file {file!r} after {name}")
            if data is not None and len(data) > MAX_FILE_BYTES:
                raise StudentError(f"{name} wrote more than {MAX_FILE_BYTES >> 20} MB to {file!r}")
            self.files_after[file] = None if data is None else data.tobytes()
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


def serve(control_fd):
    """Fork a checker for each request on ``control_fd`` until the grader closes it.

    ``control_fd`` is a ``SOCK_SEQPACKET`` socket to the grading process. A
    request is the message ``fork`` with two file descriptors: the read end
    of the new checker's stdin and the write end of its stdout. The answer is
    ``ok`` with a pidfd of the checker (the grader ends it with that), or
    ``error``. The system reaps the checkers (``SIGCHLD`` ignored here).
    """
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 2)
        except OSError:
            return
        if not message:
            return  # the grading process is done
        if message != b"fork" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            control.send(b"error")
            continue
        child = os.fork()
        if child == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.dup2(fds[0], 0)
            os.dup2(fds[1], 1)
            for fd in fds:
                os.close(fd)
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's own streams)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            try:
                main()
            except SystemExit:
                pass
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        try:
            pidfd = os.pidfd_open(child)
        except OSError:
            control.send(b"error")
            continue
        socket.send_fds(control, [b"ok"], [pidfd])
        os.close(pidfd)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fork-server"]:
        serve(int(sys.argv[2]))
    else:
        main()
