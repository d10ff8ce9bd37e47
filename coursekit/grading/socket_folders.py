"""Folders of the kernels' sockets in the temporary folder, and clearing those a killed grader left.

A grading kernel talks to the grader over Unix sockets in a private folder of
the temporary folder. Each folder belongs to the process that made it and is
named after it:

- ``ck-w-<pid>-...``: a warm parent's (:class:`coursekit.grading.warm.Zygote`),
  holding the sockets of every kernel forked from it;
- ``ck-k-<pid>-...``: a grading process's kernels that start in a sandbox of
  their own (cold), one subfolder per kernel.

Each holds a file naming its process's PID namespace. A grader removes its
folders when it stops, on Ctrl-C and SIGTERM too; ``kill -9`` of a grader, or
of a worker ended by a stopped batch, gives it no chance.
:func:`remove_stale_folders` clears those: a new warm parent calls it, and so
does a batch once its workers have ended.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: A warm parent's folder: ``ck-w-<pid>-...``.
WARM = "w"
#: A grading process's folder of cold kernels: ``ck-k-<pid>-...``.
COLD = "k"
#: The file in each folder naming its process's PID namespace.
NAMESPACE_FILE = "pid-namespace"
_NAMED = re.compile(rf"^ck-[{WARM}{COLD}]-(\d+)-")

#: {pid: this process's folder of cold kernels}; a forked worker (another pid) makes its own.
_cold_folders = {}
#: The longest path of a Unix socket, in bytes (Linux's ``sun_path``, less its terminating zero).
SOCKET_PATH_BYTES = 107
#: The longest a kernel's socket path gets below the temporary folder: ``/ck-w-<pid>-<8>/k<8>/k-<port>``.
_LONGEST_BELOW = len("/ck-w-4194304-abcdefgh/kabcdefgh/k-99")


def temporary_folder_problem(folder=None):
    """Why the kernels' sockets cannot live in the temporary folder (None: they can).

    Unix socket paths are limited to :data:`SOCKET_PATH_BYTES`; a kernel's
    lies up to 37 bytes below the temporary folder, so a longer ``TMPDIR``
    than about 70 bytes makes every kernel fail with "File name too long".

    Parameters
    ----------
    folder : str, optional
        The temporary folder; :func:`tempfile.gettempdir` by default.
    """
    folder = folder or tempfile.gettempdir()
    length = len(os.fsencode(folder))
    if length + _LONGEST_BELOW <= SOCKET_PATH_BYTES:
        return None
    return (f"the temporary folder {folder} ({length} bytes) is too long for the kernels' sockets: Unix socket "
            f"paths are limited to {SOCKET_PATH_BYTES} bytes, and a kernel's lie up to {_LONGEST_BELOW} bytes below "
            f"it. Set TMPDIR to a folder of at most {SOCKET_PATH_BYTES - _LONGEST_BELOW} bytes, such as /tmp")


def pid_namespace():
    """This process's PID namespace, as text (``/proc/self/ns/pid``'s inode; "" where it cannot be read)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def make_folder(kind):
    """A new private folder of this process in the temporary folder (short: socket paths must fit in 107 bytes).

    Parameters
    ----------
    kind : str
        :data:`WARM` or :data:`COLD`.

    Returns
    -------
    str
        Its path.
    """
    folder = tempfile.mkdtemp(prefix=f"ck-{kind}-{os.getpid()}-")
    os.chmod(folder, 0o700)
    Path(folder, NAMESPACE_FILE).write_text(pid_namespace())
    return folder


def cold_kernel_folder():
    """A new folder for one cold kernel's connection file and sockets, in this process's :data:`COLD` folder.

    The process's folder is made at first use and removed when the process
    exits (a forked worker's, which exits without running ``atexit``, by the
    batch that ended it: :func:`remove_stale_folders`).
    """
    pid = os.getpid()
    if pid not in _cold_folders:
        _cold_folders[pid] = make_folder(COLD)
    return tempfile.mkdtemp(prefix="k", dir=_cold_folders[pid])


@atexit.register
def _remove_cold_folder():
    folder = _cold_folders.pop(os.getpid(), None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _running(pid):
    """Whether process ``pid`` of this PID namespace exists (perhaps another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_folders(folder=None):
    """Remove the socket folders whose process has ended without removing them.

    A folder goes when it is this user's, was made in this PID namespace
    (another container may share ``/tmp``), and its process no longer runs;
    a folder whose pid has been reused stays until that process ends too.

    Parameters
    ----------
    folder : str or Path, optional
        Where to look; the temporary folder by default.

    Returns
    -------
    list of str
        The folders removed.
    """
    folder = Path(folder or tempfile.gettempdir())
    namespace = pid_namespace()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _NAMED.match(entry.name)
        if not match or _running(int(match[1])):
            continue
        try:
            if not (entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == os.geteuid()
                    and namespace and Path(entry.path, NAMESPACE_FILE).read_text() == namespace):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    if removed:
        log.info("removed %d kernel socket folder(s) left by grading processes that were killed: %s",
                 len(removed), ", ".join(removed))
    return removed
