"""The course's own files and settings, shared by every step that needs them.

- :data:`HELPER_MODULES` and :data:`DATA_FILES`: what every copy of the
  notebook needs beside it (:func:`course_files`), synced into
  ``source/<assignment>/`` by :func:`sync_course_files`;
- :func:`load_course_config`: the traitlets config of ``nbgrader_config.py``;
- :func:`require_course`: the check every step a TA types makes of the course folder it is given.
"""

import filecmp
import shutil
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

from coursekit.common.errors import CourseError
from coursekit.common.paths import ROOT

#: The module students import first.
HELPER = "KmeansAnimate2D.py"
#: Every file of the helper: KmeansAnimate2D.py imports the animation, the
#: input checks and the fast paths from the others.
HELPER_MODULES = (HELPER, "kmeans_animation.py", "_kmeans_checks.py", "_kmeans_fast.py")

#: Files shipped in ``data/``, in the order they are built (:mod:`coursekit.steps.data`).
DATA_FILES = ("cat.png", "mnist.npz", "number4.jpg", "number4_paper.jpg")


class BuildError(CourseError):
    """The master notebook, a course file or the release failed a check; nothing was written."""


class NotACourse(CourseError):
    """A step was given a folder that is not a course folder, or an assignment the course does not have."""


def require_course(course_root, assignment):
    """The master of ``assignment`` in the course folder ``course_root``; :class:`NotACourse` saying why not.

    A mistyped folder or assignment name would otherwise be created empty
    (collect) or reported as "no grading results yet" (feedback, report).
    """
    course_root = Path(course_root)
    master = course_root / "source" / assignment / f"{assignment}.ipynb"
    if master.is_file():
        return master
    source = course_root / "source"
    present = sorted(path.parent.name for path in source.glob("*/*.ipynb")
                     if path.stem == path.parent.name) if source.is_dir() else []
    if present:
        raise NotACourse(f"{course_root}: no assignment {assignment!r} (source/{assignment}/{assignment}.ipynb is "
                         f"missing); this course has: {', '.join(present)}")
    raise NotACourse(f"{course_root}: not a course folder (source/{assignment}/{assignment}.ipynb is missing); "
                     f"make one with `make course COURSE={course_root}` (python -m coursekit new-course)")


def load_course_config(root=ROOT):
    """The traitlets config of ``root/nbgrader_config.py``."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def course_files(root=ROOT):
    """{file name: path} of the files every copy of the notebook needs beside it.

    The helper's modules (:data:`HELPER_MODULES`, from the repository root)
    and the data files (:data:`DATA_FILES`, from ``data/``). They are synced
    into ``source/<assignment>/``, hence released, and listed with their
    SHA-256 in the Colab setup cell.
    """
    files = {name: Path(root) / name for name in HELPER_MODULES}
    files.update({name: Path(root) / "data" / name for name in DATA_FILES})
    return files


def sync_course_files(source_dir, files):
    """Copy each of ``files`` into ``source_dir`` unless an identical copy is there.

    Returns
    -------
    list of str
        The names that were (re)copied.
    """
    source_dir = Path(source_dir)
    copied = []
    for name, origin in files.items():
        if not origin.is_file():
            raise BuildError(f"{origin}: missing; it is needed beside the notebook")
        target = source_dir / name
        if not (target.is_file() and filecmp.cmp(origin, target, shallow=False)):
            shutil.copyfile(origin, target)
            copied.append(name)
    return copied
