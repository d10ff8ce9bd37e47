"""One memory and process ceiling for a whole grading sandbox, not one per process.

The sandbox's rlimits (:mod:`coursekit.grading.sandbox`) bound each process: 3 GB of
address space each, but a notebook that forks four processes of 1.5 GB
(``multiprocessing``, joblib's ``n_jobs=-1``) took 6 GB of the grading host.
A :class:`Ceiling` caps the sandbox's processes together, in the strongest
way the machine allows (:func:`detect`):

- ``cgroup v1``: a memory and a pids cgroup of its own under the grader's
  (the kernel OOM-kills inside it when the sum goes over, swap included);
- ``cgroup v2``: a transient systemd scope (``systemd-run --scope`` with
  ``MemoryMax``, ``MemorySwapMax=0`` and ``TasksMax``), where systemd runs;
- ``watchdog``: elsewhere, a thread of the grading process sums the memory of
  the kernel's processes every 0.2 s and kills them all when the sum goes
  over. It finds them by the kernel's own user id (root mode) or, where every
  kernel runs under the grader's user id (user-namespace mode), by the
  sandbox's PID namespace.

The kernel's command is wrapped (:meth:`Ceiling.wrap`) so that it is inside
the ceiling before it runs anything. After a kernel died,
:meth:`Ceiling.exceeded` says whether the ceiling killed it, so that the
incident names the memory limit and the cell that went over.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
_names = itertools.count()


def _own_cgroup_v1(controller):
    """The folder of this process's cgroup of ``controller`` in the v1 hierarchy, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            folder = CGROUP_ROOT / controller / path.lstrip("/")
            return folder if folder.is_dir() else None
    return None


def _v1_writable():
    memory, pids = _own_cgroup_v1("memory"), _own_cgroup_v1("pids")
    if memory is None or not os.access(memory, os.W_OK):
        return None
    probe = memory / f"coursekit-probe-{os.getpid()}"
    try:
        probe.mkdir()
        (probe / "memory.limit_in_bytes").write_text(str(1 << 30))
    except OSError:
        return None
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass
    return memory, (pids if pids is not None and os.access(pids, os.W_OK) else None)


def _systemd_scopes():
    """Whether transient systemd scopes can be made here (cgroup v2 under systemd, as root or with a user manager)."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemd-run") is None:
        return False
    probe = subprocess.run(["systemd-run", "--scope", "--quiet", "--collect", "-p", "MemoryMax=1G", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def detect():
    """The kind of ceiling this machine allows: "cgroup v1", "cgroup v2" or "watchdog"."""
    if _v1_folders()[0] is not None:
        return "cgroup v1"
    # As an ordinary user, a scope would be the user's manager's, whose memory controller may not be delegated
    # (then MemoryMax would be ignored without a word): the watchdog instead.
    if os.geteuid() == 0 and (CGROUP_ROOT / "cgroup.controllers").is_file() and _systemd_scopes():
        return "cgroup v2"
    return "watchdog"


_kind = {}


def _v1_folders():
    """(memory, pids) cgroup v1 folders under which the kernels' cgroups are made: probed once per process."""
    if "v1" not in _kind:
        _kind["v1"] = _v1_writable() or (None, None)
    return _kind["v1"]
#: Cgroups of kernels that have ended, removed as soon as their last processes are gone.
_pending = []


def _sweep():
    """Remove the pending cgroups that are empty now (without waiting for the others)."""
    for folder in list(_pending):
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            continue  # processes still being torn down: next time
        _pending.remove(folder)


@atexit.register
def _sweep_at_exit(seconds=2.0):
    """At the grader's exit, give the last kernels' cgroups a moment to empty, then remove them."""
    deadline = time.monotonic() + seconds
    while _pending and time.monotonic() < deadline:
        _sweep()
        if _pending:
            time.sleep(0.05)


def machine_kind():
    """:func:`detect`, once per process (which also removes cgroups that killed graders left behind)."""
    if "kind" not in _kind:
        _kind["kind"] = detect()
        if _kind["kind"] == "cgroup v1":
            _remove_stale_v1()
    return _kind["kind"]


def _remove_stale_v1():
    """Remove the (empty) cgroups of grading processes that are gone (``kill -9``)."""
    for controller in ("memory", "pids"):
        folder = _own_cgroup_v1(controller)
        for path in folder.glob("coursekit-*-*") if folder is not None else ():
            try:
                pid = int(path.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if not Path(f"/proc/{pid}").exists():
                try:
                    path.rmdir()
                except OSError:
                    pass


def _proportional_bytes(process, page):
    """The proportional set size of the process of folder ``process`` (``/proc/<pid>``); resident size where
    the kernel has no ``smaps_rollup``; 0 for a process that is gone."""
    try:
        for line in (process / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) << 10
    except FileNotFoundError:
        pass
    except (OSError, ValueError, IndexError):
        return 0
    try:
        return int((process / "statm").read_text().split()[1]) * page
    except (OSError, IndexError, ValueError):
        return 0


def describe(kind, memory_mb):
    """The line the trial kernel prints: "memory: cgroup v1, 3 GB for the whole sandbox"."""
    return f"memory: {kind}, {memory_mb / 1024:g} GB for the whole sandbox"


class Ceiling:
    """The memory and process ceiling of one kernel's sandbox.

    Parameters
    ----------
    memory_bytes : int
        The most memory all of the sandbox's processes may use together
        (resident memory and swap; files it writes to its tmpfs count too).
    max_processes : int
        The most processes and threads together.
    uid : int or None
        The kernel's own user id (the watchdog finds its processes by it); None
        when kernels share the grader's (the watchdog goes by the sandbox's PID
        namespace, given to :meth:`started`).
    kind : str, optional
        Force a kind (default: what the machine allows).
    """

    def __init__(self, memory_bytes, max_processes, uid, kind=None):
        self.memory_bytes, self.max_processes, self.uid = memory_bytes, max_processes, uid
        self.kind = kind or machine_kind()
        self.name = f"coursekit-{os.getpid()}-{next(_names)}"
        self._folders = []
        self._killed = threading.Event()
        self._watch = None
        self.namespace = None  # the sandbox's PID namespace (watchdog without a user id)
        self._stop = threading.Event()
        if self.kind == "cgroup v1":
            _sweep()
            self._make_v1()

    # -- cgroup v1 ---------------------------------------------------------------------
    def _make_v1(self):
        memory, pids = _v1_folders()
        if memory is None:
            self.kind = "watchdog"
            return
        self.memory_folder = memory / self.name
        self.memory_folder.mkdir()
        self._folders.append(self.memory_folder)
        (self.memory_folder / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
        swap = self.memory_folder / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(self.memory_bytes))  # memory + swap: no escape into swap
        self.pids_folder = None
        if pids is not None:
            self.pids_folder = pids / self.name
            self.pids_folder.mkdir()
            self._folders.append(self.pids_folder)
            (self.pids_folder / "pids.max").write_text(str(self.max_processes))

    def _v1_oom_kills(self):
        try:
            text = (self.memory_folder / "memory.oom_control").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return int((self.memory_folder / "memory.failcnt").read_text() or 0)

    # -- the kernel's command ---------------------------------------------------------------
    def wrap(self, command):
        """``command`` started inside the ceiling (before it runs anything)."""
        if self.kind == "cgroup v1":
            procs = [str(f / "cgroup.procs") for f in self._folders]
            join = " && ".join(f'echo $$ > "${n + 1}"' for n in range(len(procs)))
            return ["/bin/sh", "-c", f'{join} && shift {len(procs)} && exec "$@"', "sh", *procs, *command]
        if self.kind == "cgroup v2":
            return ["systemd-run", "--scope", "--quiet", "--collect", f"--unit={self.name}",
                    "-p", f"MemoryMax={self.memory_bytes}", "-p", "MemorySwapMax=0",
                    "-p", f"TasksMax={self.max_processes}", "--", *command]
        return list(command)

    def procs_files(self):
        """The ``cgroup.procs`` files a process writes ``0`` to, to join the ceiling (cgroup v1; [] otherwise).

        For a kernel forked from a warm parent (:mod:`coursekit.grading.warm`),
        which cannot be started inside the ceiling by :meth:`wrap`.
        """
        return [str(folder / "cgroup.procs") for folder in self._folders] if self.kind == "cgroup v1" else []

    def started(self, pid=None):
        """Call once the kernel runs: the watchdog starts watching (the cgroups need nothing).

        ``pid``: a process inside the sandbox, whose PID namespace the watchdog
        watches when the ceiling has no user id of its own.
        """
        if self.kind == "watchdog" and self.uid is None:
            try:
                self.namespace = os.readlink(f"/proc/{pid}/ns/pid")
            except (OSError, TypeError):
                # The sandbox ended as it started (or was never found): its kernel is gone, nothing to watch.
                log.warning("the memory watchdog found no process of the kernel's sandbox to watch")
                return
        if self.kind == "watchdog" and self._watch is None:
            self._watch = threading.Thread(target=self._watchdog, name=f"{self.name}-watchdog", daemon=True)
            self._watch.start()

    # -- the watchdog -----------------------------------------------------------------------
    def _ours(self, process):
        """Whether the process of folder ``process`` (``/proc/<pid>``) is the sandbox's."""
        if self.uid is None:
            try:
                return os.readlink(process / "ns" / "pid") == self.namespace
            except OSError:
                return False
        try:
            text = (process / "status").read_text()
        except OSError:
            return False
        return next((line.split()[1] for line in text.splitlines() if line.startswith("Uid:")), None) == str(self.uid)

    def _processes(self):
        """(pid, memory in bytes) of every process of the sandbox (its user id, or its PID namespace).

        A process's memory is its proportional set size: a page it shares with n
        others counts 1/n. A kernel's forks share most of its pages; their
        resident sizes would count each shared page once per fork, and a few
        forks of a 150 MB kernel would seem to fill the ceiling.
        """
        page = os.sysconf("SC_PAGE_SIZE")
        found = []
        for process in Path("/proc").glob("[0-9]*"):
            if self._ours(process):
                found.append((int(process.name), _proportional_bytes(process, page)))
        return found

    def _watchdog(self):
        while not self._stop.wait(0.2):
            processes = self._processes()
            if sum(size for _, size in processes) > self.memory_bytes:
                self._killed.set()
                for pid, _ in processes:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

    # -- afterwards ---------------------------------------------------------------------------
    def exceeded(self):
        """Whether the ceiling has stopped a process of the sandbox (so far)."""
        if self.kind == "cgroup v1":
            return self._v1_oom_kills() > 0
        if self.kind == "cgroup v2":
            try:
                shown = subprocess.run(["systemctl", "show", "-p", "Result", f"{self.name}.scope"],
                                       capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                return False
            return "oom-kill" in shown
        return self._killed.is_set()

    def peak_bytes(self):
        """The most memory the sandbox used at once (cgroup v1 only; None elsewhere)."""
        if self.kind != "cgroup v1":
            return None
        try:
            return int((self.memory_folder / "memory.max_usage_in_bytes").read_text())
        except (OSError, ValueError):
            return None

    def close(self):
        """Stop watching and remove the cgroups; those whose last processes are still going, a little later."""
        self._stop.set()
        _pending.extend(reversed(self._folders))
        self._folders = []
        _sweep()
