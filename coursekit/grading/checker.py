"""Hidden tests judged in an interpreter the student's code never shares (the grader's side).

:class:`coursekit.grading.execute.GuardedExecute` splits each test cell of the master
(:func:`split_test_cell`): the kernel runs the cell without its checker tests,
then a :class:`CheckerProcess` judges them. ``make build`` runs the master's
test cells the same way (:func:`coursekit.steps.build.run_with_checker`), so every
checker test is proven on the solution.

A checker test is a function of one argument, ``student``, written like any
test, whose calls of the student's functions go through that argument::

    def _checker_test_objective(student):
        import KmeansAnimate2D as reference
        rng = np.random.default_rng(13)
        X, Z, c = rng.normal(size=(10, 2)), rng.normal(size=(2, 2)), rng.integers(0, 2, size=10)
        J = student.clustering_objective(X, c, Z)
        assert np.isclose(J, reference.clustering_objective(X, c, Z)), "wrong J_clust"

It runs in the checker process (``python -I -m coursekit.grading.check_runner``, one
per graded notebook, :mod:`coursekit.grading.check_runner`): its own NumPy,
its own import of the helper, its own builtins. Each ``student.<name>(...)``
sends the arguments to the grader as plain data; the grader has the kernel run
:data:`KERNEL_CALL` on them and answers with what came back, which is decoded
there by :func:`coursekit.grading.plain_data.decode`. The verdict is the test's:
``pass``, or ``fail`` with the assertion's (or the failure's) message.

Protocol, one JSON object per line on the process's stdin and stdout (the
test's own prints go to stderr), for each test in turn::

    grader -> checker  {"source": ..., "test": name, "path": [folders to import from]}
    checker -> grader  {"call": name, "args": <plain data (JSON text) of [args, kwargs]; a file as
                        {"__file__": name, "bytes": base64 or null}>}
    grader -> checker  {"result": <plain data of [result, [args, kwargs] after the call, {file: bytes}]>}
                       | {"raised": "ValueError: ..."} | {"stopped": why}
    checker -> grader  {"verdict": "pass"} | {"verdict": "fail", "message": ...}
"""

from __future__ import annotations

import ast
import atexit
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading

from nbformat.v4 import new_output

from coursekit.common import notebooks
from coursekit.common.notebooks import HIDDEN_BEGIN, HIDDEN_END
from coursekit.grading.bwrap import GRADER_DIR
from coursekit.grading.check_runner import MAX_FILE_BYTES
from coursekit.grading.plain_data import KERNEL_ENCODER

log = logging.getLogger(__name__)

#: How the grader starts the checker (``-B``: importing the helper from the assignment's source folder must not
#: write ``__pycache__`` there, so the source folder stays as it was).
CHECKER_COMMAND = [sys.executable, "-I", "-B", "-m", "coursekit.grading.check_runner"]

#: What the kernel runs for one call: decode the arguments, call the student's function, encode what it
#: returned, the arguments as the function left them, and the files named by the checker as they are now.
KERNEL_CALL = KERNEL_ENCODER + r'''
def _coursekit_call(name, arguments):
    import base64 as _b64, io as _io, json as _json, os as _os, shutil as _shutil, tempfile as _tempfile
    import numpy as _np

    # The grader's own space in the sandbox (coursekit.grading.bwrap.GRADER_DIR), which junk the student's code
    # wrote elsewhere cannot have filled; the usual temporary folder outside a sandbox.
    folder = _tempfile.mkdtemp(prefix="coursekit-call-", dir=%r if _os.path.isdir(%r) else None)
    files = {}

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
            if "__file__" in tree:  # a file the checker made (bytes) or expects the call to write (None)
                path = files[tree["__file__"]] = _os.path.join(folder, tree["__file__"])
                if tree["bytes"] is not None:
                    with open(path, "wb") as handle:
                        handle.write(_b64.b64decode(tree["bytes"]))
                return path
        return tree

    def read_back(path):
        try:
            with open(path, "rb") as handle:
                return _np.frombuffer(handle.read(%d + 1), dtype=_np.uint8)
        except OSError:
            return None

    try:
        args, kwargs = value(_json.loads(arguments))
        result = globals()[name](*args, **kwargs)
        after = {file: read_back(path) for file, path in files.items()}
        return _coursekit_encode([result, [args, kwargs], after])  # the arguments as the function left them
    finally:
        _shutil.rmtree(folder, ignore_errors=True)
''' % (GRADER_DIR, GRADER_DIR, MAX_FILE_BYTES)

#: Top-level functions of a hidden-test region with this prefix are checker tests.
CHECKER_PREFIX = "_checker_test"

#: The last line of a hidden-test region that holds checker tests. Grading runs the region in the kernel
#: without them, and the line passes; nbgrader run without this course's ``nbgrader_config.py`` runs the
#: region whole, only defining the checker tests, and would let the cell pass unjudged: the line fails it,
#: saying why, instead. ``make build`` refuses a master whose checker tests lack it (:func:`unguarded_test_cells`).
CHECKER_GUARD = (
    f'assert not [name for name in globals() if name.startswith("{CHECKER_PREFIX}")], '
    '"this hidden test was not run: the notebook was graded without the course\'s nbgrader_config.py, '
    'whose checker judges hidden tests; ask for it to be graded again"'
)


def hidden_span(source):
    """(start, end) of the code between the hidden-test markers of a cell, or None."""
    begin, end = source.find(HIDDEN_BEGIN), source.find(HIDDEN_END)
    if begin < 0 or end < begin:
        return None
    return (source.index("\n", begin) + 1 if "\n" in source[begin:end] else end), end


def split_test_cell(source):
    """(kernel source, checker source, checker test names) of a test cell of the master.

    The checker tests are the top-level functions named ``_checker_test...``
    inside the cell's hidden-test region; the kernel runs everything else.
    A cell without them comes back whole, with no checker source.
    """
    span = hidden_span(source)
    if span is None:
        return source, "", []
    region_start, end = span
    region = source[region_start:end]
    try:
        tree = ast.parse(textwrap.dedent(region))
    except SyntaxError:
        return source, "", []
    lines = region.splitlines(keepends=True)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith(CHECKER_PREFIX)]
    if not functions:
        return source, "", []
    taken = set()
    for node in functions:
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        taken.update(range(first - 1, node.end_lineno))
    checker = "".join(line for i, line in enumerate(lines) if i in taken)
    kept = "".join(line for i, line in enumerate(lines) if i not in taken)
    return source[:region_start] + kept + source[end:], checker, [node.name for node in functions]


def unguarded_test_cells(nb):
    """The grade ids of the test cells whose checker tests are not followed by :data:`CHECKER_GUARD`.

    The guard must be a top-level line of the hidden-test region after the last checker test.
    """
    unguarded = []
    for cell in nb.cells:
        if not notebooks.is_test_cell(cell):
            continue
        _, _, tests = split_test_cell(cell.source)
        if not tests:
            continue
        start, end = hidden_span(cell.source)
        lines = textwrap.dedent(cell.source[start:end]).splitlines()
        tree = ast.parse("\n".join(lines))
        last_test = max(node.end_lineno for node in tree.body
                        if isinstance(node, ast.FunctionDef) and node.name.startswith(CHECKER_PREFIX))
        guarded = any(isinstance(node, ast.Assert) and node.lineno > last_test
                      and "\n".join(lines[node.lineno - 1:node.end_lineno]).strip() == CHECKER_GUARD
                      for node in tree.body)
        if not guarded:
            unguarded.append(notebooks.grade_id(cell))
    return unguarded


class _ForkedChecker:
    """A checker forked by the :class:`_ForkServer`: the part of :class:`subprocess.Popen` that :class:`CheckerProcess` uses."""

    def __init__(self, pidfd, stdin, stdout):
        self._pidfd, self.stdin, self.stdout = pidfd, stdin, stdout

    def kill(self):
        try:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it has ended

    def wait(self, timeout=5.0):
        select.select([self._pidfd], [], [], timeout)  # readable once it has ended
        for stream in (self.stdin, self.stdout):
            try:
                stream.close()
            except OSError:
                pass  # a pipe whose reader is gone
        os.close(self._pidfd)


class _ForkServer:
    """The warm parent of this grading process's checkers (``check_runner --fork-server``; see :func:`coursekit.grading.check_runner.serve`).

    Started on the first notebook a grading process judges; it ends when this
    process closes its end of the socket (at exit, or when the process dies).
    """

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen([*CHECKER_COMMAND, "--fork-server", str(theirs.fileno())],
                                            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.control = ours

    def fork(self):
        """A new checker, as :class:`_ForkedChecker`; raises OSError if the server cannot make one."""
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            socket.send_fds(self.control, [b"fork"], [child_in, child_out])
            answer, fds, _, _ = socket.recv_fds(self.control, 16, 1)
        except OSError:
            for fd in (to_child, from_child):
                os.close(fd)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        if answer != b"ok" or len(fds) != 1:
            for fd in (to_child, from_child, *fds):
                os.close(fd)
            raise OSError(f"the checkers' fork server answered {answer!r}")
        return _ForkedChecker(fds[0], open(to_child, "w", encoding="utf-8"), open(from_child, encoding="utf-8"))

    def close(self):
        self.control.close()
        self.process.wait()


_servers = {}  # this process's fork server, by process id (a forked grading worker starts its own)
_servers_lock = threading.Lock()


def _new_checker():
    """A fresh checker process: forked by this process's fork server, or started anew if there is none."""
    with _servers_lock:
        server = _servers.get(os.getpid())
        if server is not None and server.process.poll() is not None:  # it died: start another
            server.control.close()
            server = None
        if server is None:
            try:
                server = _servers[os.getpid()] = _ForkServer()
            except OSError as error:
                log.warning("the checkers' fork server did not start (%s): each starts anew", error)
                server = None
        if server is not None:
            try:
                return server.fork()
            except OSError as error:
                log.warning("the checkers' fork server failed (%s): starting a checker anew", error)
                _servers.pop(os.getpid(), None)
    return subprocess.Popen(CHECKER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)


@atexit.register
def _close_servers():
    server = _servers.pop(os.getpid(), None)
    if server is not None:
        server.close()


class CheckerProcess:
    """One checker process for a notebook's hidden tests (``python -I -m coursekit.grading.check_runner``).

    Started on the first :meth:`judge` (forked from a warm parent, see
    :func:`coursekit.grading.check_runner.serve`: the same state as a fresh
    process); :meth:`close` ends it. Each test runs in a fresh namespace of
    that process; the process never runs student code.
    """

    def __init__(self, path=()):
        self.path = [str(p) for p in path]
        self._process = None

    def judge(self, source, test, call_in_kernel):
        """Judge the checker test ``test`` of ``source``; return (passed, message).

        ``call_in_kernel(name, arguments_json) -> reply dict`` has the
        student's kernel run ``_coursekit_call(name, arguments_json)`` and
        returns ``{"result": text}``, ``{"raised": text}`` or ``{"stopped": text}``.
        """
        if self._process is None:
            self._process = _new_checker()
        process = self._process
        try:
            self._write({"source": source, "test": test, "path": self.path})
            while True:
                line = process.stdout.readline()
                if not line:
                    self.close()
                    return False, "the grader's checker stopped without a verdict"
                message = json.loads(line)
                if "verdict" in message:
                    return message["verdict"] == "pass", message.get("message", "")
                self._write(call_in_kernel(message["call"], message["args"]))
        except BaseException:
            self.close()  # a test half done cannot go on in this process
            raise

    def _write(self, message):
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()

    def close(self):
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def run_checker(source, test, call_in_kernel, path=()):
    """Judge one checker test in a process of its own; return (passed, message) (see :meth:`CheckerProcess.judge`)."""
    checker = CheckerProcess(path)
    try:
        return checker.judge(source, test, call_in_kernel)
    finally:
        checker.close()


def judge_cell(client, cell, source, tests, checker):
    """Judge a test cell's checker tests after the kernel of ``client`` has run the rest of the cell.

    ``client`` is a :class:`nbclient.NotebookClient` with a running kernel
    (its ``kc`` and synchronous ``wait_for_reply``, which applies the cell's
    time limit and raises nbclient's ``CellTimeoutError`` or
    ``DeadKernelError``). A failed test appends an error output to ``cell``,
    with the test's message: nbgrader then gives the cell 0 points.
    """
    # The cell's first call defines _coursekit_call afresh before it is evaluated (after the cell's own code, which
    # may have replaced it), in the same request; a cell whose tests make no call costs the kernel nothing more.
    defined = False

    def call_in_kernel(name, arguments):
        nonlocal defined
        reply = kernel_call(client, cell, name, arguments, define=not defined)
        defined = True
        return reply

    for test in tests:
        passed, message = checker.judge(source, test, call_in_kernel)
        if not passed:
            cell.outputs.append(new_output(
                "error", ename="AssertionError", evalue=message,
                traceback=[f"AssertionError: {message}", "(a hidden test, judged by the grader outside your notebook)"]))
            return


def kernel_call(client, cell, name, arguments, define=True):
    """Have the kernel call the student's ``name`` on ``arguments`` (JSON); the reply for the checker.

    With ``define``, the request first runs :data:`KERNEL_CALL` (its user
    expression is evaluated after its code), so the call is the grader's own.
    """
    expression = f"_coursekit_call({name!r}, {arguments!r})"
    reply = client.wait_for_reply(client.kc.execute(
        KERNEL_CALL if define else "", silent=True, store_history=False, user_expressions={"r": expression}), cell)
    if reply is None:
        return {"stopped": "no reply from the kernel"}
    value = reply["content"].get("user_expressions", {}).get("r", {})
    if value.get("status") != "ok":
        return {"raised": f"{value.get('ename', 'Error')}: {value.get('evalue', '')}"[:2000]}
    try:
        text = ast.literal_eval(value.get("data", {}).get("text/plain", ""))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        text = None
    if not isinstance(text, str):
        return {"stopped": "the kernel's reply is not what the grader asked for"}
    return {"result": text}
