"""A sandboxed Jupyter kernel for grading student notebooks.

While a submission is graded its kernel runs under bubblewrap (``bwrap``,
Debian package ``bubblewrap``) and sees only:

- the student's working copy (``autograded/<student>/<assignment>/``), read-write;
- the system (``/usr``, ``/etc``) and the Python installation, read-only;
- a private, empty ``/tmp``, and a private folder for the kernel's sockets.

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

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, DottedObjectName, Integer, Type, Unicode
from traitlets.config import Configurable


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
    memory_limit_mb = Integer(3072, help="Address-space limit of the kernel (RLIMIT_AS), in MB").tag(config=True)
    cpu_time_limit_s = Integer(1200, help="CPU-time limit of the kernel (RLIMIT_CPU), in seconds").tag(config=True)
    max_processes = Integer(
        256, help="Processes and threads the sandbox user may have (RLIMIT_NPROC); stops fork bombs"
    ).tag(config=True)
    max_file_size_mb = Integer(200, help="Largest file the kernel may write (RLIMIT_FSIZE), in MB").tag(config=True)
    threads = Integer(
        1, help="BLAS/OpenMP threads per kernel. Fixed (not derived from the number of workers) so that "
        "a submission gets the same outputs whatever the parallelism; 0 means cores / workers."
    ).tag(config=True)


def bwrap_path():
    return shutil.which("bwrap")


def check_sandbox():
    """Raise :class:`SandboxUnavailable` saying why, unless a sandbox can be made here."""
    if sys.platform != "linux":
        raise SandboxUnavailable(f"the grading sandbox needs Linux (bubblewrap); this is {sys.platform}")
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
    probe = subprocess.run(
        [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc", "true"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}")
    if os.geteuid() != 0:
        raise SandboxUnavailable("the grading sandbox switches the kernel to an unprivileged user, which needs root")


# Runs inside the sandbox, before the kernel: the limits are set while still
# root, then the process drops to the sandbox user for good and becomes the
# kernel. It is passed with -c because the course package is not visible there.
_LIMITS_THEN_KERNEL = """
import os, resource, sys
uid, gid, memory, cpu, nproc, fsize = (int(v) for v in sys.argv[1:7])
for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_NPROC, nproc),
                     (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.execv(sys.argv[7], sys.argv[7:])
"""

# Read-only views of the system; symlinked top-level folders (merged /usr) stay symlinks.
_SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Environment variables passed to the kernel; everything else (tokens, paths of
# the course) is cleared. OPENBLAS_* matter on some CPUs (see the machine notes).
_PASSED_ENV = ("LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _system_binds():
    args = []
    for folder in _SYSTEM_DIRS:
        path = Path(folder)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            args += ["--ro-bind", folder, folder]
    return args


def _parents(path, made):
    """Create the missing parent folders of ``path`` world-readable.

    bwrap would create them with mode 0700, and the unprivileged kernel user
    could then not reach what is bound below them.
    """
    args = []
    for parent in reversed(Path(path).parents):
        if str(parent) != "/" and str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _bind(kind, path, made):
    made.add(str(path))
    return _parents(path, made) + [kind, str(path), str(path)]


def _python_binds(made):
    """The Python installation and the virtual environment, read-only."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    args = []
    for root in sorted(roots):
        if not str(root).startswith("/usr/"):
            args += _bind("--ro-bind", root, made)
    return args


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


def sandbox_command(kernel_cmd, workdir, socket_dir, settings, threads=1, ids=None):
    """The bwrap command line that runs ``kernel_cmd`` inside the sandbox.

    Parameters
    ----------
    kernel_cmd : list of str
        The kernel's own command (``python -m ipykernel_launcher -f ...``).
    workdir : path-like
        The student's working copy: the only course folder the kernel sees.
    socket_dir : path-like
        Private folder for the connection file and the kernel's sockets.
    settings : Sandbox
        Limits and the sandbox user.
    threads : int
        BLAS/OpenMP threads for the kernel.
    ids : (int, int), optional
        User and group id of the kernel (default: ``sandbox_ids(settings)``).
    """
    uid, gid = ids or sandbox_ids(settings)
    workdir, socket_dir = str(Path(workdir).resolve()), str(Path(socket_dir).resolve())
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.update({
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp", "IPYTHONDIR": "/tmp/ipython", "XDG_CACHE_HOME": "/tmp/cache",
        "MPLCONFIGDIR": str(Path(socket_dir) / MATPLOTLIB_DIR),  # holds the shared font list
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
    })
    command = [bwrap_path(), "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in sorted(env.items()):
        command += ["--setenv", name, value]
    command += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    made = set(_SYSTEM_DIRS) | {"/tmp"}
    command += _system_binds()
    command += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]  # joblib needs /dev/shm
    # The private /tmp comes before every bind: the course (and its .venv) may itself live under /tmp.
    command += ["--perms", "1777", "--tmpfs", "/tmp"]
    command += _python_binds(made)
    command += _bind("--bind", socket_dir, made) + _bind("--bind", workdir, made) + ["--chdir", workdir]
    limits = [uid, gid, settings.memory_limit_mb << 20, settings.cpu_time_limit_s,
              settings.max_processes, settings.max_file_size_mb << 20]
    command += ["--", sys.executable, "-c", _LIMITS_THEN_KERNEL, *map(str, limits)]
    return command + [sys.executable if kernel_cmd[0] in ("python", "python3") else kernel_cmd[0], *kernel_cmd[1:]]


MATPLOTLIB_DIR = "matplotlib"
_launches = itertools.count()
_font_list = {}


def matplotlib_font_list():
    """matplotlib's font list for this machine, built once per grading process (None if it cannot be).

    A kernel whose matplotlib folder is empty scans the system's fonts before it
    draws its first figure, about 0.1 s of CPU for every submission graded; a
    copy of this list in each kernel's folder spares that. It is built where it
    is used, by the kernels' own Python, so it never goes stale.
    """
    if "path" not in _font_list:
        folder = tempfile.mkdtemp(prefix="ck-fonts-")
        atexit.register(shutil.rmtree, folder, True)
        # The kernel's environment, not the grader's: no fonts from the grader's home.
        env = {"PATH": os.environ.get("PATH", ""), "HOME": folder, "MPLCONFIGDIR": folder}
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, capture_output=True)
        built = sorted(Path(folder).glob("fontlist-*.json"))
        _font_list["path"] = built[0] if built else None
    return _font_list["path"]


def _prepare_matplotlib_dir(folder):
    folder.mkdir(exist_ok=True)
    font_list = matplotlib_font_list()
    if font_list is not None:
        shutil.copyfile(font_list, folder / font_list.name)


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


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run in the grading sandbox."""

    workers = Integer(1, help="Grading workers sharing the machine (sets the BLAS threads)").tag(config=True)
    client_class = DottedObjectName("coursekit.sandbox.PromptKernelClient", config=True)
    client_factory = Type(klass="coursekit.sandbox.PromptKernelClient", config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self._socket_dir = None

    async def _async_pre_start_kernel(self, **kw):
        if self._socket_dir is None:
            # Short path: Unix socket names are limited to about 100 characters.
            self._socket_dir = tempfile.mkdtemp(prefix="ck-")
            os.chmod(self._socket_dir, 0o700)
        self.transport = "ipc"
        self.ip = os.path.join(self._socket_dir, "k")
        self.connection_file = os.path.join(self._socket_dir, "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        uid, gid = sandbox_ids(self.sandbox, next(_launches))
        workdir = kw.get("cwd") or os.getcwd()
        _prepare_matplotlib_dir(Path(self._socket_dir) / MATPLOTLIB_DIR)
        _give_to(self._socket_dir, uid, gid)
        _give_to(workdir, uid, gid)
        threads = thread_count(self.sandbox, self.workers)
        wrapped = sandbox_command(kernel_cmd, workdir, self._socket_dir, self.sandbox, threads, ids=(uid, gid))
        kw["env"] = {}  # bwrap --clearenv/--setenv decide the kernel's environment
        # The kernel's console chatter is not the student's output (that goes over the sockets).
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        return await super()._async_launch_kernel(wrapped, **kw)

    async def _async_wait(self, pollinterval=0.1):
        # A kernel exits within milliseconds of its shutdown or kill; polling every
        # 0.1 s, as jupyter_client does, leaves the core idle for the rest of it.
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
