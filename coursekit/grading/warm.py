"""Warm grading kernels: forked from a parent that has already imported what they need.

A grading kernel spends about 2 s of CPU starting Python, ipykernel and
importing NumPy, scikit-learn and matplotlib before it runs the student's
first cell, and every submission pays it again. A :class:`Zygote` pays it
once per grading process: it runs in a bubblewrap sandbox of its own
(the same read-only system and Python as every kernel, no network, nothing of
the course), imports ``c.Sandbox.preload``, and forks each kernel from that
warm copy. The fork is isolated afresh before it runs anything of the
student's (``coursekit/grading/_zygote.py`` says how): new mount, PID, network,
IPC, UTS and cgroup namespaces; a new size-limited ``/tmp`` holding only its
own input files, read-only; its own ``/dev/shm``, grader's folder and ``/proc``;
the kernel's own user id with the same rlimits, no new privileges and no
capabilities; the kernel's cgroup ceiling joined before the fork. What it sees
is what a kernel started in a sandbox of its own sees, with the preloaded
modules already in ``sys.modules``.

The zygote needs root or user namespaces (bubblewrap gives it the
capabilities to make namespaces and mounts, which every kernel drops; as an
ordinary user they hold in a user namespace of its own, and each kernel gets a
user namespace of its own inside it) and a ceiling it can hand a forked
process to (cgroup v1 or the watchdog; a systemd scope cannot adopt one).
Elsewhere, and with ``c.Sandbox.warm_kernels = False``, each kernel starts in
a sandbox of its own (:func:`why_not_warm` says why).
"""

from __future__ import annotations

import ast
import atexit
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from coursekit.grading.bwrap import (
    GRADER_DIR,
    MATPLOTLIB_DIR,
    bind_args,
    bwrap_path,
    environment_args,
    file_system_args,
    kernel_environment,
    python_roots,
    visible_python,
)
from coursekit.grading.socket_folders import WARM, make_folder, remove_stale_folders

log = logging.getLogger(__name__)

#: The zygote's program, bound read-only into its sandbox (the package is not visible there).
ZYGOTE_PROGRAM = Path(__file__).with_name("_zygote.py")
#: Where the zygote's sandbox sees :data:`ZYGOTE_PROGRAM`.
ZYGOTE_INSIDE = "/run/coursekit-zygote.py"
#: What the zygote keeps of root's powers, to make each kernel's namespaces and mounts.
CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_NET_ADMIN")
#: The matplotlib backend ipykernel sets before a kernel imports matplotlib; the zygote must import it with the same.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_PAGE = os.sysconf("SC_PAGE_SIZE")


class WarmUnavailable(RuntimeError):
    """The zygote could not be started or could not fork a kernel."""


def why_not_warm(settings, ceiling_kind, user_namespaces=False):
    """Why kernels cannot be forked warm here (None: they can).

    Parameters
    ----------
    settings : coursekit.grading.sandbox.Sandbox
        ``warm_kernels`` switches it off.
    ceiling_kind : str
        The kind of memory ceiling in force (:mod:`coursekit.grading.ceiling`).
    user_namespaces : bool
        Whether the sandbox runs in user-namespace mode (an ordinary user who may make them).
    """
    if not settings.warm_kernels:
        return "c.Sandbox.warm_kernels is False"
    if ceiling_kind == "cgroup v2":
        return "a systemd scope (the cgroup v2 ceiling) cannot adopt a forked kernel"
    if os.geteuid() != 0 and not user_namespaces:
        return "forking kernels into new namespaces needs root or user namespaces"
    return None


#: Preloaded for every notebook: the kernel itself.
KERNEL_MODULES = ("ipykernel",)


def imported_modules(notebook, modules=()):
    """The modules that the code cells of ``notebook`` and the Python files ``modules`` import.

    Absolute imports, by dotted name; ``from package import name`` counts
    ``package`` and ``package.name`` (``name`` may be a submodule). IPython's
    magics and shell lines (``%``, ``!``) are left out, and a cell that is
    not Python is skipped.
    """
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    sources += [Path(path).read_text(encoding="utf-8", errors="replace") for path in modules]
    found = set()
    for source in sources:
        python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(python)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def needed_preload(preload, imported):
    """The entries of ``preload`` that a notebook importing ``imported`` uses, in their order.

    An entry is kept when it is the kernel's own (:data:`KERNEL_MODULES`), or
    when it or a module in it is imported (which imports it): ``numpy`` for
    ``import numpy.linalg``, ``skimage.io`` for ``from skimage import io``
    (not ``skimage.metrics``). The others would only cost the warm parent
    their import.
    """
    def used(entry):
        return entry.split(".")[0] in KERNEL_MODULES or any(
            name == entry or name.startswith(entry + ".") for name in imported)

    return [entry for entry in preload if used(entry)]


def zygote_command(fd, threads, preload, sockets_root):
    """The bwrap command line of the zygote, talking to the grader on file descriptor ``fd``."""
    python = visible_python()
    env = {**kernel_environment(threads, python), "MPLBACKEND": INLINE_BACKEND}
    made = set()
    command = [bwrap_path(), "--die-with-parent", "--new-session", *environment_args(env),
               "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if os.geteuid() != 0:  # user-namespace mode: the grader's user id, with the capabilities below in a namespace of its own
        command += ["--unshare-user"]
    command += file_system_args(64 << 20, 1 << 20, 1 << 20, made)
    command += bind_args("--bind", sockets_root, made)
    for capability in CAPABILITIES:
        command += ["--cap-add", capability]
    command += ["--ro-bind", str(ZYGOTE_PROGRAM), ZYGOTE_INSIDE]
    return command + ["--chdir", "/tmp", "--", python, ZYGOTE_INSIDE, str(fd), f"{sockets_root}/zygote", *preload]


def kernel_request(kernel_cmd, settings, ids, workdir, inputs, socket_dir, cgroup_files, stderr_file=None,
                   sockets_inside=None):
    """What the zygote needs to fork one kernel: (request, file descriptors to send with it).

    Parameters
    ----------
    kernel_cmd : list of str
        ``[python, "-m", "ipykernel_launcher", ...]``.
    settings : coursekit.grading.sandbox.Sandbox
        The limits.
    ids : (int, int)
        The kernel's user and group id.
    workdir : str
        The kernel's working folder, inside.
    inputs : dict
        {relative path: host path} of its input files (regular files, checked by the caller).
    socket_dir : str
        The kernel's socket folder, made by :meth:`Zygote.new_socket_dir`.
    cgroup_files : list of str
        ``cgroup.procs`` files of the kernel's ceiling, which it joins.
    stderr_file : str, optional
        File for the kernel's stderr, for diagnosis (default: /dev/null).
    sockets_inside : str, optional
        User-namespace mode: the folder, inside, where the kernel makes its
        sockets, on a tmpfs of its own; ``ids`` are then the grader's own, and
        the kernel gets a user namespace of its own where they are the only ones.

    The caller closes the file descriptors once the request is sent.
    """
    fds = [os.open(path, os.O_WRONLY) for path in cgroup_files]
    fds += [os.open(path, os.O_RDONLY | os.O_NOFOLLOW) for path in inputs.values()]
    connection_file = os.path.join(socket_dir, "kernel.json")
    argv = list(kernel_cmd[3:])
    if sockets_inside:
        fds.append(os.open(connection_file, os.O_RDONLY | os.O_NOFOLLOW))
        inside = f"{sockets_inside}/kernel.json"
        argv = [inside if os.path.realpath(arg) == os.path.realpath(connection_file) else arg for arg in argv]
    if stderr_file:
        fds.append(os.open(stderr_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    request = {
        "uid": ids[0], "gid": ids[1],
        "limits": [settings.memory_limit_mb << 20, settings.cpu_time_limit_s, settings.max_processes,
                   settings.max_file_size_mb << 20],
        "tmp_bytes": tmpfs_bytes(settings.disk_limit_mb << 20, inputs),
        "shm_bytes": settings.shm_limit_mb << 20, "grader_bytes": settings.grader_space_mb << 20,
        "grader_dir": GRADER_DIR, "matplotlib_dir": MATPLOTLIB_DIR,
        "workdir": workdir, "inputs": list(inputs), "socket_dir": socket_dir,
        "argv": argv, "cgroups": len(cgroup_files), "stderr": bool(stderr_file),
        "userns": bool(sockets_inside), "sockets_inside": sockets_inside, "sockets_bytes": 1 << 20,
        # The Python a course keeps under /tmp (a clone there, its .venv) must stay visible over the new /tmp.
        "keep": [str(root) for root in python_roots() if Path("/tmp") in root.parents],
    }
    return request, fds


def host_pid(pidfd):
    """The PID, as this process sees it, of the process a pidfd refers to."""
    for line in Path(f"/proc/self/fdinfo/{pidfd}").read_text().splitlines():
        if line.startswith("Pid:"):
            return int(line.split()[1])
    raise WarmUnavailable("the kernel's pidfd names no process")


class WarmKernelProcess:
    """A forked kernel, seen through the interface of :class:`subprocess.Popen` that jupyter_client uses.

    It holds pidfds of the kernel (``K``) and of its namespace's init (``G``,
    which exits when the kernel does): signals go to the kernel; killing or
    terminating it kills the init, which ends every process of the namespace.
    """

    stdin = stdout = stderr = None

    def __init__(self, init_fd, kernel_fd):
        self._init_fd, self._kernel_fd = init_fd, kernel_fd
        self.pid = host_pid(kernel_fd)
        self.returncode = None
        self._killed = None

    def poll(self):
        if self.returncode is None and self._init_fd is not None and select.select([self._init_fd], [], [], 0)[0]:
            self.returncode = -self._killed if self._killed else 0
            self._close()
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("warm kernel", timeout)
            select.select([self._init_fd], [], [], left)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is not None:
            return
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self._killed = signal.SIGKILL
            signal.pidfd_send_signal(self._init_fd, signal.SIGKILL)
        else:
            try:
                signal.pidfd_send_signal(self._kernel_fd, signum)
            except ProcessLookupError:
                pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def _close(self):
        for fd in (self._init_fd, self._kernel_fd):
            os.close(fd)
        self._init_fd = self._kernel_fd = None

    def __del__(self):
        if self._init_fd is not None:
            self._close()


class Zygote:
    """The warm parent of one grading process's kernels (and of its forked workers').

    The process that starts it talks to it over a socket pair; a worker forked
    from that process connects to it anew (:meth:`spawn` does it at first use),
    so one warm parent serves a whole batch, whatever the number of workers.

    Parameters
    ----------
    threads : int
        BLAS/OpenMP threads of the kernels (fixed at the zygote's imports).
    preload : list of str
        Modules to import once, for every kernel.
    timeout : float
        Seconds the zygote may take to import ``preload``.
    """

    def __init__(self, threads, preload):
        self.threads, self.preload = threads, list(preload)
        self.owner = os.getpid()  # a forked grading worker connects to it, and never stops it
        self._pidfd = None
        remove_stale_folders()  # those of graders killed before they could
        self.sockets_root = make_folder(WARM)
        # The zygote's own messages (a module it could not import, why a fork failed); its
        # kernels write to /dev/null, so nothing of a student's reaches this file.
        self.log_file = os.path.join(self.sockets_root, "zygote-stderr.txt")
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = ours
        stderr = open(self.log_file, "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                zygote_command(theirs.fileno(), threads, self.preload, self.sockets_root),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                pass_fds=(theirs.fileno(),), env={},
                # Out of the grader's process group: a terminal's Ctrl-C goes to the grader, which
                # stops the batch and then this parent (close()); killed by it, the workers would
                # start warm parents of their own while the batch stops, and leave their folders.
                start_new_session=True,
            )
        finally:
            theirs.close()
            stderr.close()
        self._pidfd = os.pidfd_open(self.process.pid)  # alive() works in forked workers too
        self._connected = os.getpid()
        self.preloaded = None

    def wait_ready(self, timeout=120):
        """Wait until the zygote has imported ``preload`` (it may, from another thread).

        The process is started by the constructor, in the caller's thread: bubblewrap's
        ``--die-with-parent`` ends it when the thread that started it ends.

        Raises
        ------
        WarmUnavailable
            If it ended or did not answer.
        """
        self._control.settimeout(timeout)
        try:
            ready = json.loads(self._control.recv(1 << 16) or b"null")
        except (OSError, ValueError) as error:
            ready = None
            reason = str(error)
        else:
            reason = "it ended before it was ready"
        if not isinstance(ready, dict) or "ready" not in ready:
            said = self.messages()
            self.close()
            raise WarmUnavailable(f"the warm parent of the kernels did not start: {reason}"
                                  + (f"; it said:\n{said}" if said else ""))
        self._control.settimeout(None)
        self.preloaded = ready["ready"]
        log.debug("warm kernels: the zygote has imported %s", ", ".join(self.preloaded))

    def messages(self):
        """The last of what the zygote wrote to its stderr."""
        try:
            return Path(self.log_file).read_text(errors="replace")[-3000:].strip()
        except OSError:
            return ""

    def alive(self):
        """Whether the zygote still runs (asked from any process of the grader); False once closed."""
        return self._pidfd is not None and not select.select([self._pidfd], [], [], 0)[0]

    def _connection(self):
        """The socket to the zygote for this process: a forked worker connects anew."""
        if self._connected != os.getpid():
            self._control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._control.connect(os.path.join(self.sockets_root, "zygote"))
            self._connected = os.getpid()
        return self._control

    def forget_parent_connection(self):
        """In a forked process: drop the copy of the parent's socket (the parent's own stays open)."""
        self._control.close()
        self._connected = None
        self._lock = threading.Lock()

    def new_socket_dir(self):
        """A private folder for one kernel's connection file and sockets, where the zygote can see it."""
        return tempfile.mkdtemp(prefix="k", dir=self.sockets_root)

    def spawn(self, request, fds, timeout=60):
        """Fork a kernel for ``request`` (see ``coursekit/grading/_zygote.py``); return its process."""
        with self._lock:
            try:
                connection = self._connection()
                connection.settimeout(timeout)
                socket.send_fds(connection, [json.dumps(request).encode()], fds)
                message, pidfds, _, _ = socket.recv_fds(connection, 1 << 16, 2)
                connection.settimeout(None)
            except OSError as error:
                raise WarmUnavailable(f"the warm parent of the kernels does not answer: {error}") from None
        answer = json.loads(message or b"null") if message else {"error": "the warm parent of the kernels has ended"}
        if "error" in answer or len(pidfds) != 2:
            for fd in pidfds:
                os.close(fd)
            raise WarmUnavailable(f"a warm kernel did not start: {answer.get('error', answer)}")
        return WarmKernelProcess(*pidfds)

    def close(self):
        """Stop the zygote (its kernels end with it) and remove its sockets' folder; in a worker, only disconnect."""
        self._control.close()
        if self.owner != os.getpid():
            return
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.sockets_root, ignore_errors=True)


_zygotes = {}
#: Zygotes asked for by :func:`warm_up`: {key: the thread starting it}; {key: why} for those that failed.
_starting, _failed = {}, {}
_lock = threading.Lock()


def _forget_in_child():
    """A forked process (a grading worker) connects to its parent's zygotes anew, and never stops them."""
    global _lock
    _lock = threading.Lock()
    for zygote in _zygotes.values():
        zygote.forget_parent_connection()


os.register_at_fork(after_in_child=_forget_in_child)


def _key(threads, preload):
    return threads, tuple(preload)


def warm_up(threads, preload):
    """Start this process's zygote for ``threads`` and ``preload`` now, in the background.

    From then on the kernels of this process with those settings (and of the
    workers it forks) are forked from it. A grading batch calls this once it
    knows it has two or more notebooks to run: for a single kernel the warm
    parent costs about what it saves. Call :func:`wait_for_warm_up` before
    forking.
    """
    key = _key(threads, preload)
    with _lock:
        if key in _starting:
            return
        zygote = _zygotes[key] = Zygote(*key)  # started from this thread, which outlives the batch
        _starting[key] = threading.Thread(target=_wait, args=(key, zygote), name="coursekit-warm-up", daemon=True)
        _starting[key].start()


def _wait(key, zygote):
    try:
        zygote.wait_ready()
    except WarmUnavailable as error:
        _failed[key] = str(error)


def wait_for_warm_up():
    """Wait until the zygotes :func:`warm_up` asked for have started (or failed)."""
    for thread in list(_starting.values()):
        thread.join()


def zygote_for(threads, preload):
    """The zygote this process's kernels with ``threads`` and ``preload`` are forked from.

    None when :func:`warm_up` was not called for them (they start cold); one
    that has died is started again.

    Raises
    ------
    WarmUnavailable
        When it could not be started.
    """
    key = _key(threads, preload)
    thread = _starting.get(key)
    if thread is None:
        return None
    thread.join()
    if key in _failed:
        raise WarmUnavailable(_failed[key])
    with _lock:
        zygote = _zygotes.get(key)
        if zygote is None or not zygote.alive():
            if zygote is not None and zygote.owner == os.getpid():
                zygote.close()
            zygote = Zygote(*key)
            zygote.wait_ready()
            _zygotes[key] = zygote
        return zygote


@atexit.register
def close_zygotes():
    """Stop this process's zygotes (at exit; a benchmark calls it so that each run starts its own).

    Each is stopped first, even one still importing: its warm-up thread then
    ends at once (a grader stopped during the warm-up does not wait for the
    imports, and a second Ctrl-C finds nothing left to clean up).
    """
    for zygote in list(_zygotes.values()):
        zygote.close()
    wait_for_warm_up()
    _zygotes.clear()
    _starting.clear()
    _failed.clear()


def tmpfs_bytes(disk_bytes, inputs):
    """The size of a warm kernel's ``/tmp``: its disk limit plus the pages of the input files copied there.

    A kernel started in a sandbox of its own gets its inputs as read-only
    binds, outside its tmpfs; the copies must not take from the space the
    student's code may fill.
    """
    return disk_bytes + sum(-(-Path(path).stat().st_size // _PAGE) * _PAGE for path in inputs.values())
