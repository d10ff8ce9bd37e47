"""Small file and text helpers shared by the pipeline's modules.

- :func:`replace_atomically` / :func:`write_atomically`: a file is written
  beside its destination (``<name>.part``) and moved onto it, so a reader, or
  a run interrupted half-way, never sees half a file;
- :func:`sha256_file`: the hex SHA-256 of a file, read in chunks;
- :func:`read_regular_file`: a file a student's code may have left or
  replaced, read only if it is a regular file (never through a link) of
  bounded size;
- :func:`text_table`: rows of strings as lines with aligned columns.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

_CHUNK = 1 << 20


def replace_atomically(path, write):
    """Call ``write(tmp_path)``, then move the result onto ``path``.

    A crash half-way leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomically(path, data):
    """Write ``data`` (bytes, or text written as UTF-8 exactly as given) to ``path`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    replace_atomically(path, lambda tmp: Path(tmp).write_bytes(payload))


def sha256_file(path):
    """The hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def text_table(rows):
    """Rows of strings as lines with left-aligned columns two spaces apart (no trailing spaces)."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


class UnsafeFile(ValueError):
    """A file to be read for a student is not a plain regular file of sensible size."""


def read_regular_file(path, max_bytes):
    """The bytes of ``path``, which must be a regular file (not a link) of at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        raise UnsafeFile(f"{path}: cannot be opened as a regular file ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path}: not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFile(f"{path}: larger than {max_bytes:,} bytes")
    return data
