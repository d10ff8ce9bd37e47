"""A sandboxed Jupyter kernel for grading student notebooks.

While a submission is graded its kernel runs under bubblewrap (``bwrap``,
Debian package ``bubblewrap``) and sees only:

- its working folder ``/tmp/<assignment>``, holding the assignment's files
  (helper, data) as read-only binds of the regular files of
  ``autograded/<student>/<assignment>/``;
- the system (``/usr``, ``/etc``) and the Python installation, read-only;
- a private folder for the kernel's sockets, which the kernel can write only
  until it is ready (:meth:`SandboxedKernelManager.seal`).

Everything it can write is one private, size-limited tmpfs (``/tmp``, which is
also its home and holds the working folder; ``c.Sandbox.disk_limit_mb``) plus
a small ``/dev/shm`` (``c.Sandbox.shm_limit_mb``): a student who fills it gets
an ``OSError`` (no space left) in that cell, and the grader's disk is never
touched. Nothing the kernel leaves behind reaches the host by itself: when the
notebook has run, :meth:`SandboxedKernelManager.collect_files` copies the files
the assignment declares, as regular files of bounded size, never through a
link, and reports the links, pipes and folders it left instead.

It has no network (its own network namespace), no view of other processes
(its own PID namespace), and it runs as an unprivileged user id of its own
(no other process on the machine has it) under resource limits: address space (memory), CPU time, number of
processes, file size. The course folder, ``source/``, the gradebook and other
students' work are simply not there.

:class:`SandboxedKernelManager` is a jupyter_client kernel manager that wraps
the kernel command in that sandbox; the kernel talks to the grader over the
``ipc`` transport (Unix sockets in the private folder), which works without
network. Settings live in ``nbgrader_config.py`` as ``c.Sandbox.*``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.connect import channel_socket_types
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, DottedObjectName, Integer, List, Type, Unicode
from traitlets.config import Configurable

from coursekit.grading.bwrap import (
    bind_args,
    bwrap_path,
    environment_args,
    file_system_args,
    kernel_environment,
    tmpfs_args,
    visible_python,
)
from coursekit.grading.ceiling import Ceiling, describe, machine_kind
from coursekit.grading.socket_folders import cold_kernel_folder
from coursekit.grading.warm import (
    WarmKernelProcess,
    WarmUnavailable,
    kernel_request,
    warm_up,
    why_not_warm,
    zygote_for,
)

log = logging.getLogger(__name__)


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine."""


class Sandbox(Configurable):
    """Limits and switches of the grading sandbox (``c.Sandbox.*``)."""

    enabled = Bool(True, help="Run graded kernels in the bubblewrap sandbox").tag(config=True)
    allow_unsandboxed = Bool(
        False,
        help="Grade without a sandbox when none can be made. Student code then runs as "
        "the grader, with access to the course folder and the gradebook: only for trusted code.",
    ).tag(config=True)
    uid_base = Integer(
        200000,
        help="Kernels run as user ids from uid_base + 16 x (grading process id mod 100000), the next of those 16 "
        "for each kernel started: unprivileged ids of their own, so that one kernel's process limit or signals "
        "never touch another's. 0: run as `user` instead.",
    ).tag(config=True)
    user = Unicode("nobody", help="Unprivileged user the kernel runs as when uid_base is 0").tag(config=True)
    memory_limit_mb = Integer(
        3072, help="Memory of the whole sandbox, all its processes together (coursekit.grading.ceiling), in MB; also "
        "each process's address space (RLIMIT_AS)").tag(config=True)
    ceiling = Unicode(
        "auto", help='How the whole-sandbox memory and process ceiling is kept: "auto" (the strongest the machine '
        'allows), "cgroup v1", "cgroup v2" (a systemd scope), "watchdog", or "none"').tag(config=True)
    cpu_time_limit_s = Integer(1200, help="CPU-time limit of the kernel (RLIMIT_CPU), in seconds").tag(config=True)
    max_processes = Integer(
        256, help="Processes and threads the sandbox user may have (RLIMIT_NPROC); stops fork bombs"
    ).tag(config=True)
    max_file_size_mb = Integer(200, help="Largest file the kernel may write (RLIMIT_FSIZE), in MB").tag(config=True)
    disk_limit_mb = Integer(
        512, help="Size of everything the kernel can write (its working folder, /tmp and home: one tmpfs), in MB"
    ).tag(config=True)
    shm_limit_mb = Integer(64, help="Size of the kernel's /dev/shm (shared memory; joblib uses it), in MB").tag(config=True)
    grader_space_mb = Integer(
        64, help="Size of the grader's own writable folder in the sandbox (GRADER_DIR: the files the checker hands "
        "a student's function and reads back), apart from the space the student's code fills, in MB"
    ).tag(config=True)
    warm_kernels = Bool(
        True, help="Fork each kernel from a warm parent that has imported `preload` once (coursekit.grading.warm), "
        "isolated afresh as a sandbox of its own would be; False: start each kernel in a sandbox of its own. "
        "Used where the machine allows it (root, and a cgroup v1 or watchdog ceiling).",
    ).tag(config=True)
    preload = List(
        Unicode(), ["ipykernel.kernelapp", "ipykernel.debugger", "numpy"],
        help="Modules the warm parent imports once for every kernel: the heavy ones the assignment's notebook "
        "imports. A grading run preloads only those that the assignment's master, or a Python file beside it, "
        "imports (ipykernel's always). A kernel finds them already imported; nothing else about it changes.",
    ).tag(config=True)
    threads = Integer(
        1, help="BLAS/OpenMP threads per kernel. Fixed (not derived from the number of workers) so that "
        "a submission gets the same outputs whatever the parallelism; 0 means cores / workers."
    ).tag(config=True)


#: The sandbox's mode when the grader is root (:func:`sandbox_mode`): each kernel under a user id of its own.
ROOT_MODE = "root"
#: The sandbox's mode for an ordinary user who may create user namespaces (:func:`sandbox_mode`).
USER_NAMESPACE_MODE = "user namespaces"

#: Where grading can still be sandboxed when this machine cannot: said by every refusal.
WAYS_OUT = ("grade on Linux with bubblewrap: as root, or as a user allowed to create user namespaces; elsewhere "
            "in a Linux VM, in WSL2 on Windows, or with the job files in deploy/ (Slurm, Kubernetes)")

_mode = {}


def _probe(*args):
    bwrap = bwrap_path()
    return subprocess.run([bwrap, *args, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc",
                           "true"], capture_output=True, text=True)


def sandbox_mode():
    """How the grading sandbox isolates a kernel on this machine, probed once per process (and user).

    Returns
    -------
    str
        :data:`ROOT_MODE` (the grader is root: each kernel runs as an unprivileged
        user id of its own) or :data:`USER_NAMESPACE_MODE` (an ordinary user
        whom the system lets create user namespaces: each kernel runs in a user
        namespace of its own, under the grader's user id outside it).

    Raises
    ------
    SandboxUnavailable
        Saying why, and the ways out (:data:`WAYS_OUT`).
    """
    key = (sys.platform, bwrap_path(), os.geteuid())
    if key not in _mode:
        try:
            _mode[key] = _detect_mode()
        except SandboxUnavailable as error:
            _mode[key] = error
    if isinstance(_mode[key], SandboxUnavailable):
        raise _mode[key]
    return _mode[key]


def _detect_mode():
    if sys.platform != "linux":
        raise SandboxUnavailable(f"the grading sandbox needs Linux (bubblewrap); this is {sys.platform}. "
                                 f"Ways out: {WAYS_OUT}")
    if bwrap_path() is None:
        raise SandboxUnavailable("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    if os.geteuid() == 0:
        probe = _probe()
        if probe.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}. "
                                     f"Ways out: {WAYS_OUT}")
        return ROOT_MODE
    probe = _probe("--unshare-user", "--disable-userns")
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"this account is not root and may not create user namespaces (bubblewrap: {probe.stderr.strip()}). "
            "An administrator can allow them (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone; "
            f"on Ubuntu 24.04 the AppArmor profile of bwrap). Ways out: {WAYS_OUT}")
    return USER_NAMESPACE_MODE


def check_sandbox():
    """The sandbox's mode here (:func:`sandbox_mode`); raises :class:`SandboxUnavailable` saying why there is none."""
    return sandbox_mode()


def describe_mode(mode):
    """The line the trial kernel prints about the sandbox's mode, and why it is the one in force."""
    if mode == ROOT_MODE:
        return "sandbox: root mode (the grader is root), each kernel under an unprivileged user id of its own"
    return ("sandbox: user-namespace mode (the grader is not root; this system lets it create user namespaces), "
            "each kernel in a user namespace of its own")


# Runs inside the sandbox, before the kernel: the limits are set while still
# root, then the process drops to the sandbox user for good and becomes the
# kernel. It is passed with -c because the course package is not visible there.
# In user-namespace mode (uid -1) there is no user to drop to: the namespace
# maps only the grader's own id, and bubblewrap has dropped every capability.
_LIMITS_THEN_KERNEL = """
import os, resource, sys
uid, gid, memory, cpu, nproc, fsize = (int(v) for v in sys.argv[1:7])
for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_NPROC, nproc),
                     (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
if uid >= 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
os.execv(sys.argv[7], sys.argv[7:])
"""

#: Inside a user-namespace sandbox: the kernel's sockets, on a small tmpfs of their own, with its connection file
#: bound read-only. The grader reaches them through ``/proc/<pid>/root``, before any student code runs.
KERNEL_SOCKETS = "/run/coursekit-kernel"
_SOCKETS_BYTES = 1 << 20

def sandbox_ids(settings, launch=0):
    """(uid, gid) the ``launch``-th kernel of this process runs as.

    Each grading process has 16 ids, used in turn by the kernels it starts:
    the processes of a kernel just killed take a moment to vanish, and the
    next kernel's process limit (RLIMIT_NPROC, which counts every process of
    the user) must not count them.
    """
    if settings.uid_base:
        ident = settings.uid_base + (os.getpid() % 100000) * 16 + launch % 16
        return ident, ident
    user = pwd.getpwnam(settings.user)
    return user.pw_uid, user.pw_gid


def thread_count(settings, workers=1):
    if settings.threads > 0:
        return settings.threads
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def sandbox_workdir(workdir):
    """Where the kernel works inside the sandbox: ``/tmp/<name of the host folder>``."""
    return f"/tmp/{Path(workdir).resolve().name}"


def input_files(workdir, allowed=None):
    """The regular files below ``workdir`` that the kernel gets, read-only: {relative path: host path}.

    Symlinks and special files are never given to the kernel. With
    ``allowed`` (a set of relative POSIX paths), only those files are: while
    grading, the files the course ships with the assignment and those it
    declares a student may hand in (:class:`coursekit.grading.execute.GuardedExecute`),
    never the rest of a submission folder.
    """
    workdir = Path(workdir)
    found = {}
    for folder, dirs, files in os.walk(workdir):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(workdir).as_posix()
            if stat.S_ISREG(path.lstat().st_mode) and (allowed is None or relative in allowed):
                found[relative] = path
    return found


def _workdir_binds(inputs, inside):
    """The working folder inside the sandbox, with the given host files ({relative path: path}) bound read-only."""
    args = ["--perms", "1777", "--dir", inside]
    made = {inside}
    for relative, path in inputs.items():
        for parent in reversed(Path(relative).parents):
            target = f"{inside}/{parent}"
            if str(parent) != "." and target not in made:
                made.add(target)
                args += ["--perms", "1777", "--dir", target]
        mode = path.stat().st_mode
        if mode & 0o444 != 0o444:
            os.chmod(path, mode | 0o444)  # the kernel's user must be able to read it
        args += ["--ro-bind", str(path), f"{inside}/{relative}"]
    return args


def sandbox_command(kernel_cmd, workdir, socket_dir, settings, threads=1, ids=None, inputs=None, mode=None):
    """The bwrap command line that runs ``kernel_cmd`` inside the sandbox.

    Parameters
    ----------
    kernel_cmd : list of str
        The kernel's own command (``python -m ipykernel_launcher -f ...``).
    workdir : path-like
        The student's working copy on the host; its regular files are bound
        read-only into the kernel's working folder (:func:`sandbox_workdir`).
    socket_dir : path-like
        Private folder for the connection file and the kernel's sockets.
    settings : Sandbox
        Limits and the sandbox user.
    threads : int
        BLAS/OpenMP threads for the kernel.
    ids : (int, int), optional
        User and group id of the kernel (default: ``sandbox_ids(settings)``).
    inputs : dict, optional
        The files of ``workdir`` the kernel gets, as :func:`input_files`
        returns them (default: every regular file of ``workdir``).
    mode : str, optional
        :data:`ROOT_MODE` or :data:`USER_NAMESPACE_MODE` (default: :func:`sandbox_mode`). In
        user-namespace mode the kernel gets a user namespace of its own, which
        may not make another, and its sockets live on a tmpfs inside
        (:data:`KERNEL_SOCKETS`): ``socket_dir`` only lends it the connection file, read-only.
    """
    mode = mode or sandbox_mode()
    uid, gid = (-1, -1) if mode == USER_NAMESPACE_MODE else ids or sandbox_ids(settings)
    socket_dir = str(Path(socket_dir).resolve())
    inside = sandbox_workdir(workdir)
    python = visible_python()
    command = [bwrap_path(), "--die-with-parent", "--new-session",
               *environment_args(kernel_environment(threads, python))]
    if mode == USER_NAMESPACE_MODE:
        command += ["--unshare-user", "--disable-userns"]
    command += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    made = set()
    command += file_system_args(settings.disk_limit_mb << 20, settings.shm_limit_mb << 20,
                                settings.grader_space_mb << 20, made)
    kernel_cmd = list(kernel_cmd)
    if mode == USER_NAMESPACE_MODE:
        connection_file = os.path.join(socket_dir, "kernel.json")
        command += tmpfs_args(KERNEL_SOCKETS, _SOCKETS_BYTES, made)
        command += ["--ro-bind", connection_file, f"{KERNEL_SOCKETS}/kernel.json"]
        kernel_cmd = [f"{KERNEL_SOCKETS}/kernel.json" if os.path.realpath(arg) == connection_file else arg
                      for arg in kernel_cmd]
    else:
        command += bind_args("--bind", socket_dir, made)
    command += _workdir_binds(input_files(workdir) if inputs is None else inputs, inside)
    command += ["--chdir", inside]
    limits = [uid, gid, settings.memory_limit_mb << 20, settings.cpu_time_limit_s,
              settings.max_processes, settings.max_file_size_mb << 20]
    command += ["--", python, "-c", _LIMITS_THEN_KERNEL, *map(str, limits)]
    return command + [python if kernel_cmd[0] in ("python", "python3", sys.executable) else kernel_cmd[0], *kernel_cmd[1:]]


_launches = itertools.count()
#: Why kernels start cold in this process, once the zygote has failed (it is not tried again).
_cold_reason = {}


def _give_to(path, uid, gid):
    """Hand a folder tree to the sandbox user, so the kernel can write there."""
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, gid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


class PromptKernelClient(AsyncKernelClient):
    """A kernel client that is ready as soon as the kernel answers on both channels.

    jupyter_client's ``wait_for_ready`` ends by reading IOPub until it has been
    silent for 0.2 s. A grader starts one kernel per submission, so that is
    0.2 s of idle core per student. The wait buys nothing here: nbclient only
    takes IOPub messages whose parent is the cell it is running.
    """

    async def _async_wait_for_ready(self, timeout=None):
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            reply = await self._next(self.shell_channel, timeout=1)
            # The status message of the request proves IOPub is connected too.
            if reply and reply["msg_type"] == "kernel_info_reply" and await self._next(self.iopub_channel, 0.2):
                self._handle_kernel_info_reply(reply)
                break
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
        while await self._next(self.iopub_channel, timeout=0):
            pass  # discard what the start-up left queued, without waiting for more

    @staticmethod
    async def _next(channel, timeout):
        try:
            return await channel.get_msg(timeout=timeout)
        except Empty:
            return None

    wait_for_ready = _async_wait_for_ready

    max_message_bytes = Integer(
        64 << 20, help="Largest message taken from the kernel; ZeroMQ refuses a bigger one unread"
    ).tag(config=True)

    def _create_connected_socket(self, channel, identity=None):
        # The kernel decides how big its messages are (output, an exception's
        # text): one of a gigabyte would be read, then parsed, by the grader.
        socket = self.context.socket(channel_socket_types[channel])
        socket.linger = 1000
        socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        if identity:
            socket.identity = identity
        socket.connect(self._make_url(channel))
        return socket


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run in the grading sandbox.

    After the kernel is ready, :meth:`seal` takes the socket folder back from
    the kernel's user (nothing of the host stays writable); before it is
    shut down, :meth:`collect_files` brings back the files the assignment
    declares.
    """

    workers = Integer(1, help="Grading workers sharing the machine (sets the BLAS threads)").tag(config=True)
    kernel_log = Unicode("", help="File for the kernel's own stderr (default: discarded); for diagnosis only").tag(config=True)
    client_class = DottedObjectName("coursekit.grading.sandbox.PromptKernelClient", config=True)
    client_factory = Type(klass="coursekit.grading.sandbox.PromptKernelClient", config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self._socket_dir = None
        self.workdir = None  # the host folder whose files the kernel gets
        self.inputs = {}
        self.ceiling = None  # the memory and process ceiling of the running kernel's sandbox
        #: Relative paths of the files of the working folder the kernel may get (None: every regular file).
        self.allowed_inputs = None
        #: The warm parent this manager's kernels are forked from (None: each starts cold, for ``cold_reason``).
        self.zygote = None
        self.cold_reason = None
        self.mode = None  # ROOT_MODE or USER_NAMESPACE_MODE, once a kernel starts
        #: Start cold even while a warm parent runs (the trial kernel, which must not wait for it).
        self.always_cold = False

    async def _async_pre_start_kernel(self, **kw):
        if self._socket_dir is None:
            self.zygote = None if self.always_cold else self._warm_parent()
            # Short path: Unix socket names are limited to about 100 characters.
            self._socket_dir = self.zygote.new_socket_dir() if self.zygote else cold_kernel_folder()
            os.chmod(self._socket_dir, 0o700)
        self.mode = sandbox_mode()
        self.transport = "ipc"
        # The connection file says where the kernel binds its sockets, as the kernel sees it; in user-namespace
        # mode, once it runs, the grader connects through the sandbox's root instead (_reach_sockets).
        inside = self.mode == USER_NAMESPACE_MODE
        self.ip = f"{KERNEL_SOCKETS}/k" if inside else os.path.join(self._socket_dir, "k")
        self.connection_file = os.path.join(self._socket_dir, "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    def _warm_parent(self):
        """The :class:`coursekit.grading.warm.Zygote` this kernel is forked from, or None (it starts cold)."""
        reason = _cold_reason.get("why") or cold_kernels_reason(self.sandbox)
        if reason is None:
            try:
                zygote = zygote_for(thread_count(self.sandbox, self.workers), self.sandbox.preload)
            except WarmUnavailable as error:
                reason = _cold_reason["why"] = str(error)
                log.warning("each kernel starts in a sandbox of its own: %s", reason)
            else:
                if zygote is not None:
                    return zygote
                reason = "no batch of two or more notebooks has warmed up a parent in this process"
        self.cold_reason = reason
        return None

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        userns = self.mode == USER_NAMESPACE_MODE
        uid, gid = (None, None) if userns else sandbox_ids(self.sandbox, next(_launches))
        self.workdir = Path(kw.get("cwd") or os.getcwd()).resolve()
        self.inputs = input_files(self.workdir, self.allowed_inputs)
        if not userns:
            _give_to(self._socket_dir, uid, gid)
        if self.ceiling is not None:
            self.ceiling.close()  # the previous kernel's (a restart)
            self.ceiling = None
        if self.sandbox.ceiling != "none":
            kind = None if self.sandbox.ceiling == "auto" else self.sandbox.ceiling
            # In user-namespace mode every process of every kernel has the grader's user id:
            # the watchdog tells a sandbox's processes by their PID namespace instead.
            self.ceiling = Ceiling(self.sandbox.memory_limit_mb << 20, self.sandbox.max_processes, uid, kind=kind)
        try:
            if self.zygote is not None and kernel_cmd[1:3] == ["-m", "ipykernel_launcher"]:
                try:
                    forked = self._fork_warm(kernel_cmd, (os.getuid(), os.getgid()) if userns else (uid, gid),
                                             kw.get("cwd"))
                    if userns:
                        self._reach_sockets()
                    return forked
                except WarmUnavailable as error:
                    self.cold_reason = _cold_reason["why"] = str(error)
                    self.zygote = None
                    log.warning("each kernel starts in a sandbox of its own from now on: %s", error)
            started = await self._start_cold(kernel_cmd, (uid, gid), **kw)
            if userns:
                self._reach_sockets()
            return started
        finally:
            if self.ceiling is not None:  # a ceiling without a user id of its own watches the sandbox's PID namespace
                self.ceiling.started(self._sandbox_init() if self.ceiling.uid is None else None)

    def _fork_warm(self, kernel_cmd, ids, cwd):
        """Have the zygote fork the kernel; hand its process to jupyter_client's provisioner."""
        request, fds = kernel_request(kernel_cmd, self.sandbox, ids, sandbox_workdir(self.workdir), self.inputs,
                                      self._socket_dir, self.ceiling.procs_files() if self.ceiling else [],
                                      stderr_file=self.kernel_log or None,
                                      sockets_inside=KERNEL_SOCKETS if self.mode == USER_NAMESPACE_MODE else None)
        try:
            process = self.zygote.spawn(request, fds)
        finally:
            for fd in fds:
                os.close(fd)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = process, process.pid, None
        provisioner.cwd = cwd or os.getcwd()
        self._reconcile_connection_info(provisioner.connection_info)

    async def _start_cold(self, kernel_cmd, ids, **kw):
        """Start the kernel in a bubblewrap sandbox of its own."""
        threads = thread_count(self.sandbox, self.workers)
        wrapped = sandbox_command(kernel_cmd, self.workdir, self._socket_dir, self.sandbox, threads, ids=ids,
                                  inputs=self.inputs, mode=self.mode)
        if self.ceiling is not None:
            wrapped = self.ceiling.wrap(wrapped)
        kw["env"] = {}  # bwrap --clearenv/--setenv decide the kernel's environment
        # The kernel's console chatter is not the student's output (that goes over
        # the sockets), and a kernel writing there must not fill the grader's disk.
        kw["stdout"] = subprocess.DEVNULL
        kw["stderr"] = open(self.kernel_log, "ab") if self.kernel_log else subprocess.DEVNULL  # noqa: SIM115
        try:
            return await super()._async_launch_kernel(wrapped, **kw)
        finally:
            if self.kernel_log:
                kw["stderr"].close()

    def _sandbox_init(self, wait=2.0):
        """The process id, on the host, of the running sandbox's first process (PID 1 inside), or None.

        bubblewrap forks it at once; it may take a moment to appear.
        """
        process = getattr(self.provisioner, "process", None)
        if process is None or process.poll() is not None:
            return None
        if isinstance(process, WarmKernelProcess):
            return process.pid
        deadline = time.monotonic() + wait
        while process.poll() is None:
            try:
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            except OSError:
                return None
            if children:
                return int(children[0])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.001)
        return None

    def _reach_sockets(self):
        """Connect to the kernel's sockets through its sandbox's root (user-namespace mode).

        They live on a tmpfs of the sandbox's own (:data:`KERNEL_SOCKETS`), which
        the grader, whose user id the kernel shares outside, reaches as
        ``/proc/<pid>/root/...``. The grader connects before any student code
        runs; nothing it reads later goes through a path the kernel could have changed.
        """
        pid = self._sandbox_init()
        if pid is None:
            raise RuntimeError("the kernel's sandbox ended as it started")
        self.ip = f"/proc/{pid}/root{KERNEL_SOCKETS}/k"

    def ceiling_kills(self):
        """Whether the sandbox's memory ceiling has stopped a process of the running kernel's sandbox."""
        return self.ceiling is not None and self.ceiling.exceeded()

    def seal(self):
        """Take the socket folder back from the kernel: call once it is ready, before any student code.

        The kernel has bound its sockets by then; from now on it can write
        nowhere on the host (the connection file is no longer readable either).
        """
        if self._socket_dir and self.mode == ROOT_MODE:
            os.chown(self._socket_dir, 0, 0)
            os.chmod(self._socket_dir, 0o700)
        # User-namespace mode: the kernel's sockets are on a tmpfs of its own sandbox, and the
        # connection file is lent read-only; nothing of the host was ever writable.

    def _sandbox_root(self):
        """``/proc/<pid>/root`` of a process inside the running sandbox, or None."""
        pid = self._sandbox_init(wait=0)
        return None if pid is None else f"/proc/{pid}/root"

    def collect_files(self, patterns, destination, max_bytes, max_files=50, max_entries=10000):
        """Copy what the kernel left in its working folder that matches ``patterns`` into ``destination``.

        Only regular files with a single link, at most ``max_bytes`` each, are
        copied (opened without following links, written anew on the host);
        the assignment's own input files are never taken back. Must be called
        while the kernel runs: its folder lives in the sandbox's memory.

        Parameters
        ----------
        patterns : list of str
            ``fnmatch`` patterns of file names in the working folder (no folders).
        destination : path-like
            Host folder to copy them to (the student's autograded folder).
        max_bytes : int
            Largest file taken back.
        max_files : int
            Most files taken back.
        max_entries : int
            Most folder entries looked at.

        Returns
        -------
        (list of str, list of str)
            The names copied, and notes on what was left behind and why
            (symlinks, hard links, pipes, sockets, devices, folders, files too
            large or too many).
        """
        root = self._sandbox_root()
        if root is None or self.workdir is None:
            return [], []
        inside = root + sandbox_workdir(self.workdir)
        try:
            folder = os.open(inside, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            log.warning("cannot read the kernel's working folder %s: %s", inside, error)
            return [], []
        kept, left = [], []
        try:
            with os.scandir(folder) as entries:
                for count, entry in enumerate(entries):
                    if count >= max_entries:
                        left.append(f"more than {max_entries} entries: the rest not looked at")
                        break
                    if entry.name in self.inputs:
                        continue
                    kind = _kind(entry)
                    if kind != "file":
                        left.append(f"{entry.name} ({kind})")
                        continue
                    if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in patterns):
                        continue
                    if len(kept) >= max_files:
                        left.append(f"{entry.name} (more than {max_files} files to keep)")
                        continue
                    problem = _copy_out(folder, entry.name, Path(destination), max_bytes)
                    if problem:
                        left.append(f"{entry.name} ({problem})")
                    else:
                        kept.append(entry.name)
        finally:
            os.close(folder)
        return sorted(kept), left

    async def _async_wait(self, pollinterval=0.1):
        # A kernel exits within milliseconds of its shutdown or kill; polling every
        # 0.1 s, as jupyter_client does, leaves the core idle for the rest of it.
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self.ceiling is not None:
            self.ceiling.close()
        if not restart and self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


def _kind(entry):
    """What a folder entry is, without following it: 'file', 'symlink', 'folder', 'FIFO', ..."""
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file" if entry.stat(follow_symlinks=False).st_nlink == 1 else "hard link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device or other special file"


def _copy_out(folder_fd, name, destination, max_bytes):
    """Copy one regular file out of the sandbox; return why not, or None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=folder_fd)
    except OSError as error:
        return f"not readable: {error.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return "not a plain file"
        if info.st_size > max_bytes:
            return f"{info.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit"
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return f"over the {max_bytes / 1e6:g} MB limit"
    destination.mkdir(parents=True, exist_ok=True)
    part = destination / f".{name}.part"
    part.unlink(missing_ok=True)
    with open(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb") as handle:
        handle.write(data)
    os.replace(part, destination / name)  # replaces a link of that name rather than following it
    return None


async def _run_trial(manager, work, timeout):
    """Start ``manager``'s kernel in ``work``, check that it computes, stop it."""
    await manager.start_kernel(cwd=str(work))
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=timeout)
        manager.seal()
        client.execute("assert 1 + 1 == 2", silent=True)
        reply = await client.get_shell_msg(timeout=timeout)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel could not compute 1 + 1: {reply['content'].get('evalue', '')}")
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)


def cold_kernels_reason(settings):
    """Why kernels cannot be forked warm on this machine with ``settings`` (None: they can)."""
    kind = {"auto": None, "none": "none"}.get(settings.ceiling, settings.ceiling)
    try:
        userns = sandbox_mode() == USER_NAMESPACE_MODE
    except SandboxUnavailable:
        userns = False
    return why_not_warm(settings, kind or machine_kind(), user_namespaces=userns)


def warm_up_for(settings, workers, notebooks):
    """Start the warm parent of a batch's kernels in the background, if it pays and the machine allows it.

    Parameters
    ----------
    settings : Sandbox
        The batch's sandbox settings.
    workers : int
        Its grading workers (they set the kernels' threads).
    notebooks : int
        How many notebooks it will run: with fewer than two, kernels start
        cold (the parent costs about what it saves on one kernel).
    """
    if notebooks >= 2 and settings.enabled and cold_kernels_reason(settings) is None:
        warm_up(thread_count(settings, workers), settings.preload)


def kernel_start_mode(settings):
    """The line the trial kernel prints about how kernels start: warm (forked) or each in a sandbox of its own."""
    reason = _cold_reason.get("why") or cold_kernels_reason(settings)
    if reason is None:
        return (f"kernels: forked warm from one parent per batch of two or more, which imports "
                f"{', '.join(settings.preload)} once (c.Sandbox.preload); each isolated afresh")
    return f"kernels: each started in a sandbox of its own ({reason})"


class KernelDoesNotStart(SandboxUnavailable):
    """bubblewrap works, but a kernel in the sandbox does not start or answer."""


def check_kernel(settings=None, timeout=60):
    """Start one sandboxed kernel, run ``1 + 1`` in it, and stop it.

    Called before a batch: a sandbox that cannot run a kernel is a set-up
    error of the grading machine, reported once, not a failure of every student.

    Raises
    ------
    KernelDoesNotStart
        With the kernel's own stderr and what to change.
    """
    with tempfile.TemporaryDirectory(prefix="ck-trial-") as scratch:
        log_file = Path(scratch) / "kernel-stderr.txt"
        work = Path(scratch) / "work"
        work.mkdir()
        manager = SandboxedKernelManager(kernel_name="python3", kernel_log=str(log_file))
        manager.always_cold = True  # a cold start proves the sandbox itself; the warm parent may be warming up meanwhile
        if settings is not None:
            manager.sandbox = settings
        try:
            asyncio.run(asyncio.wait_for(_run_trial(manager, work, timeout), timeout + 10))
            kind = manager.ceiling.kind if manager.ceiling is not None else "no ceiling"
            log.info(describe_mode(manager.mode))
            log.info(describe(kind, manager.sandbox.memory_limit_mb))
            log.info(kernel_start_mode(manager.sandbox))
        except Exception as error:  # noqa: BLE001 (any failure is the same set-up error)
            stderr = log_file.read_text(errors="replace")[-3000:] if log_file.is_file() else ""
            raise KernelDoesNotStart(
                f"a kernel in the grading sandbox did not start ({type(error).__name__}: {error}).\n"
                f"The kernel's stderr:\n{stderr.strip() or '(nothing)'}\n"
                f"The sandbox binds read-only: the system folders, {Path(sys.prefix).resolve()} and "
                f"{Path(sys.base_prefix).resolve()}; the kernel runs {visible_python()}. Make sure the course's "
                "Python environment works from there (a real folder, not a symlink to a folder that disappears), "
                "or set c.Sandbox.* in nbgrader_config.py."
            ) from None
