"""The file system and environment every grading sandbox is built from (bubblewrap arguments).

Both ways of starting a grading kernel use them: a sandbox of its own for each
kernel (:func:`coursekit.grading.sandbox.sandbox_command`) and the warm parent
that forks kernels (:mod:`coursekit.grading.warm`). Keeping them here keeps the
two views of the system identical.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def bwrap_path():
    """The ``bwrap`` program (None if bubblewrap is not installed)."""
    return shutil.which("bwrap")


# Read-only views of the system; symlinked top-level folders (merged /usr) stay symlinks.
_SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Environment variables passed to the kernel; everything else (tokens, paths of
# the course) is cleared. OPENBLAS_* matter on some CPUs (see the machine notes).
_PASSED_ENV = ("LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# Inside the sandbox: matplotlib's folder, with the font list built once per machine (matplotlib_font_list).
MATPLOTLIB_DIR = "/tmp/matplotlib"
#: Inside the sandbox: the grader's own space (a tmpfs of its own, c.Sandbox.grader_space_mb), where
#: the checker's files for a call of the student's function live. A student who fills their own
#: space (/tmp, the working folder) with junk does not make the tests that hand their functions a
#: file fail for want of space.
GRADER_DIR = "/run/grader"


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


def bind_args(kind, path, made):
    """bwrap's arguments that bind ``path`` at the same path inside (``kind``: ``--bind`` or ``--ro-bind``),
    its missing parents made world-readable; ``made`` collects the folders created."""
    made.add(str(path))
    return _parents(path, made) + [kind, str(path), str(path)]


def tmpfs_args(path, size_bytes, made, perms="0700"):
    """bwrap's arguments for a tmpfs of ``size_bytes`` at ``path``, its missing parents made world-readable."""
    made.add(str(path))
    return _parents(path, made) + ["--perms", perms, "--size", str(size_bytes), "--tmpfs", str(path)]


def python_roots():
    """The folders of the Python installation and the virtual environment outside ``/usr`` (symlinks resolved)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    return [root for root in sorted(roots) if not str(root).startswith("/usr/")]


def _python_binds(made):
    """The Python installation and the virtual environment, read-only."""
    args = []
    for root in python_roots():
        args += bind_args("--ro-bind", root, made)
    return args


def thread_env(threads):
    """The environment variables that set a kernel's BLAS and OpenMP threads (NumPy, scikit-learn)."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def kernel_environment(threads, python):
    """The whole environment of a grading kernel (the grader's own is cleared).

    Parameters
    ----------
    threads : int
        BLAS/OpenMP threads.
    python : str
        The kernel's Python, as the sandbox sees it (its folder goes first on ``PATH``).
    """
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.update({
        "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp", "IPYTHONDIR": "/tmp/ipython", "XDG_CACHE_HOME": "/tmp/cache",
        "MPLCONFIGDIR": MATPLOTLIB_DIR,  # holds the shared font list
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        **thread_env(threads),
    })
    return env


def environment_args(env):
    """bwrap's arguments that give the sandbox exactly ``env``."""
    args = ["--clearenv"]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    return args


def visible_python():
    """The grader's Python as a path that exists inside the sandbox.

    ``sys.executable`` may pass through a symlink that the sandbox does not
    bind (a course whose ``.venv`` links to an environment elsewhere); its
    folder is resolved, its name kept, so a virtual environment stays one
    (Python finds ``pyvenv.cfg`` beside the name it was started as).
    """
    executable = Path(sys.executable)
    return str(executable.parent.resolve() / executable.name)


_font_list = {}
#: The folders where matplotlib looks for the system's fonts on Linux (``matplotlib.font_manager``'s
#: own list); a font added, changed or removed there makes the cached font list be built anew.
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/X11R6/lib/X11/fonts", "/usr/X11/lib/X11/fonts",
             "/usr/lib/openoffice/share/fonts/truetype")


def font_cache_root():
    """Where the grader keeps the kernels' font lists: ``$XDG_CACHE_HOME/coursekit``, else ``~/.cache/coursekit``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coursekit"


def font_list_key():
    """What a kernel's font list is made from: the kernels' Python, its matplotlib and the system's font files.

    A short SHA-256 of the Python's path, matplotlib's version, and the name,
    size and modification time of every file under :data:`FONT_DIRS`.
    """
    digest = hashlib.sha256(visible_python().encode() + b"\0")
    try:
        digest.update(importlib.metadata.version("matplotlib").encode())
    except importlib.metadata.PackageNotFoundError:
        digest.update(b"no matplotlib")
    for top in FONT_DIRS:
        for folder, subfolders, files in os.walk(top):
            subfolders.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                digest.update(f"\0{path}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _build_font_list(folder):
    """Build matplotlib's font list in ``folder`` with the kernels' Python and environment; its path, or None."""
    # The kernel's environment, not the grader's: no fonts from the grader's home.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "MPLCONFIGDIR": str(folder)}
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, capture_output=True, check=False)
    built = sorted(Path(folder).glob("fontlist-*.json"))
    return built[0] if built else None


def _cached_font_list():
    """The font list kept in :func:`font_cache_root` for :func:`font_list_key`, built there first if need be.

    Built in a folder of its own and renamed into place, so that graders
    running at once never see half a list. None where the cache cannot be
    written (the caller builds a list for this process alone).
    """
    root = font_cache_root()
    folder = root / f"matplotlib-{font_list_key()}"
    kept = sorted(folder.glob("fontlist-*.json"))
    if kept:
        return kept[0]
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    except OSError:
        return None
    built = _build_font_list(building)
    if built is None:
        shutil.rmtree(building, ignore_errors=True)
        return None
    try:
        building.rename(folder)
    except OSError:  # another grader put its list there first: the same list
        shutil.rmtree(building, ignore_errors=True)
    kept = sorted(folder.glob("fontlist-*.json"))
    return kept[0] if kept else None


def matplotlib_font_list():
    """matplotlib's font list for this machine's kernels (None if it cannot be built).

    A kernel whose matplotlib folder is empty scans the system's fonts before it
    draws its first figure, about 0.1 s of CPU for every submission graded; a
    copy of this list in each kernel's folder spares that. It is built by the
    kernels' own Python, in their environment, and kept in
    :func:`font_cache_root` under :func:`font_list_key`: building it costs about
    1.2 s of CPU, once per machine instead of once per grading run, and a new
    matplotlib or a change to the system's fonts makes a new one.
    """
    if "path" not in _font_list:
        path = _cached_font_list()
        if path is None:
            folder = tempfile.mkdtemp(prefix="ck-fonts-")
            atexit.register(shutil.rmtree, folder, True)
            path = _build_font_list(folder)
        _font_list["path"] = path
    return _font_list["path"]


def file_system_args(tmp_bytes, shm_bytes, grader_bytes, made):
    """bwrap's arguments for the file system every grading sandbox starts from.

    The system and the Python installation read-only, new ``/proc`` and
    ``/dev``, and three tmpfs of bounded size: ``/tmp`` (all a kernel can
    write; it comes before every bind, since the course and its ``.venv`` may
    themselves live under ``/tmp``), ``/dev/shm`` (joblib needs it) and the
    grader's own :data:`GRADER_DIR`; matplotlib's folder holds the font list.
    ``made`` collects the folders created, for :func:`bind_args`.
    """
    made.update(_SYSTEM_DIRS, {"/tmp"})
    args = _system_binds() + ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(shm_bytes), "--tmpfs", "/dev/shm"]
    args += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    args += ["--perms", "1777", "--size", str(grader_bytes), "--tmpfs", GRADER_DIR]
    args += ["--perms", "1777", "--dir", MATPLOTLIB_DIR]
    font_list = matplotlib_font_list()
    if font_list is not None:
        args += ["--ro-bind", str(font_list), f"{MATPLOTLIB_DIR}/{font_list.name}"]
    return args + _python_binds(made)
