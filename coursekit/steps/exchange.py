"""nbgrader's exchange, collecting regular files only.

On a JupyterHub, a student's submission lands in the exchange's ``inbound``
folder, which the student can still write to. nbgrader's own collect copies
it with :func:`shutil.copytree`, which follows links: a student who adds
``notes.txt -> <course>/source/clustering/clustering.ipynb`` to their
submission gets the master (solutions, hidden tests) copied into
``submitted/`` as a regular file, with the instructor's rights.

:class:`RegularFilesCollect` is nbgrader's collect with one change: it copies
regular files only, each read through a descriptor opened without following
links, and only files with a single name (a hard link to a course file has
two). Links, hard links, FIFOs, sockets and devices stay in the exchange; each
is named in a warning (the student and the file). It is switched on in
``nbgrader_config.py`` (``c.ExchangeFactory.collect``), so ``nbgrader collect``
and formgrader's "Collect" button use it. When grading, the kernel gets only
the notebook and the course's own files anyway
(:attr:`coursekit.grading.execute.GuardedExecute.submission_files`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

log = logging.getLogger(__name__)

#: Folders deeper than this below a submission are not copied.
MAX_DEPTH = 8
_CHUNK = 1 << 20


def _kind(mode):
    """What a file that is not a regular file or a folder is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _copy_one(source, destination, max_bytes):
    """Copy one regular file with a single name; return why not, or None."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        return f"cannot be opened as a regular file ({error.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return _kind(info.st_mode)
        if info.st_nlink != 1:
            return f"a hard link (the file has {info.st_nlink} names)"
        if info.st_size > max_bytes:
            return f"larger than {max_bytes:,} bytes"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with open(os.open(destination, flags, 0o644), "wb") as out:
            copied = 0
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                copied += len(chunk)
                if copied > max_bytes:
                    out.close()
                    os.unlink(destination)
                    return f"larger than {max_bytes:,} bytes"
                out.write(chunk)
    return None


def copy_regular_files(source, destination, ignore=(), max_bytes=100_000_000):
    """Copy the regular files below ``source`` into ``destination`` (which must not exist), never through a link.

    Parameters
    ----------
    source, destination : path-like
        The submission folder in the exchange, and where it goes.
    ignore : iterable of str
        fnmatch patterns of names not copied (nbgrader's ``CourseDirectory.ignore``).
    max_bytes : int
        The largest file copied.

    Returns
    -------
    copied : list of str
        Relative paths of the files copied.
    left : list of (str, str)
        Relative paths left behind, each with the reason.
    """
    source, destination = Path(source), Path(destination)
    copied, left = [], []
    os.makedirs(destination)

    def walk(folder, relative, depth):
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            left.append((relative or ".", f"cannot be listed ({error.strerror})"))
            return
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if any(fnmatch.fnmatch(entry.name, pattern) for pattern in ignore):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                if depth >= MAX_DEPTH:
                    left.append((path, f"more than {MAX_DEPTH} folders deep"))
                    continue
                os.mkdir(destination / path)
                walk(entry.path, path, depth + 1)
            elif stat.S_ISREG(mode):
                why = _copy_one(entry.path, destination / path, max_bytes)
                copied.append(path) if why is None else left.append((path, why))
            else:
                left.append((path, _kind(mode)))

    walk(source, "", 0)
    return copied, left


class RegularFilesCollect(ExchangeCollect):
    """nbgrader's collect, copying regular files only: links, hard links and special files stay in the exchange."""

    def do_copy(self, src, dest, log=None):
        if os.path.islink(src) or not os.path.isdir(src):
            # The submission folder itself replaced by a link: nothing of it is collected.
            self.log.warning(f"not collected: {src} is {_kind(os.lstat(src).st_mode)}, not a submission folder")
            return
        size = self.get_size(src)
        if size > 1000 * self.coursedir.max_dir_size:
            self.log.error("Directory size is too big")
            raise RuntimeError(f"Directory size is too big. Size is {size}, maximum size is "
                               f"{1000 * self.coursedir.max_dir_size}")
        _, left = copy_regular_files(src, dest, ignore=self.coursedir.ignore,
                                     max_bytes=1000 * self.coursedir.max_file_size)
        for path, why in left:
            self.log.warning(f"not collected from {src}: {path}: {why}")
