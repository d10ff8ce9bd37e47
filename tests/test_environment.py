"""The installed environment: nbgrader's Jupyter extensions, and the course's, are switched on."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

JUPYTER = Path(sys.executable).with_name("jupyter")


def _run(*args):
    result = subprocess.run([str(JUPYTER), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_nbgrader_server_extensions_are_enabled():
    listing = _run("server", "extension", "list")
    for extension in ("formgrader", "assignment_list", "course_list", "validate_assignment"):
        line = next((l for l in listing.splitlines() if f"nbgrader.server_extensions.{extension} " in l), "")
        assert "enabled" in line, f"nbgrader's {extension} server extension is not enabled:\n{listing}"


@pytest.mark.parametrize("extension", ["coursekit.pages.formgrade_csp", "coursekit.pages.formgrade_order"])
def test_the_courses_server_extensions_are_enabled_and_load(extension):
    """formgrade_csp: the grading page's Content-Security-Policy; formgrade_order: one order for formgrader (make venv installs both)."""
    listing = _run("server", "extension", "list")
    lines = listing.splitlines()
    index = next((i for i, l in enumerate(lines) if f"{extension} " in l), None)
    assert index is not None and "enabled" in lines[index], listing
    assert any(extension in l and "OK" in l for l in lines[index + 1:index + 4]), listing


def test_nbgrader_lab_extension_is_enabled():
    listing = _run("labextension", "list")
    line = next((l for l in listing.splitlines() if "@jupyter/nbgrader" in l), "")
    assert "enabled" in line and "OK" in line, listing


def test_nbgrader_is_the_pinned_version():
    import nbgrader

    assert nbgrader.__version__.startswith("0.9.")


def test_the_gradebook_schema_revision_read_in_process_is_the_one_nbgrader_finds():
    """coursekit reads alembic's head in-process; nbgrader itself runs `alembic heads` in a new process."""
    from nbgrader.dbutil import _temp_alembic_ini

    from coursekit.grading.gradebook import alembic_head

    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        heads = subprocess.run([str(Path(sys.executable).parent / "alembic"), "-c", ini, "heads"],
                               capture_output=True, text=True, check=True).stdout
    assert heads.split()[0] == alembic_head()


def test_the_environment_is_the_lock_and_no_command_builds_iri_parsers():
    """requirements.txt is the whole environment, installed with --no-deps, and pip finds nothing missing.

    rfc3987-syntax (jsonschema's IRI check, which builds about 35 parsers when
    imported: 1.5 s of every command) is left out of the lock; no command of the
    course imports it.
    """
    checked = subprocess.run([sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    probe = "import sys, coursekit.cli, nbformat.validator; print(sorted({'lark', 'rfc3987_syntax'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert imported.stdout.strip() == "[]", imported.stdout + imported.stderr
    installed = {(dist.metadata["Name"] or "").lower().replace("_", "-") for dist in importlib.metadata.distributions()}
    locked = {line.split("==")[0].lower().replace("_", "-") for line in
              (Path(__file__).parents[1] / "requirements.txt").read_text().splitlines() if "==" in line}
    assert installed - locked - {"coursekit", "pip", "setuptools", "wheel"} == set()
