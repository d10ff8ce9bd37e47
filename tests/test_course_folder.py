"""A step given a folder that is not a course folder, or an assignment the course does not have, says so.

Fast: the commands' own entry point (``coursekit.cli.main``), before any
step runs. ``make grade`` on such a folder, as a TA types it, is
``test_first_day.py``'s.
"""

import pytest

from coursekit.cli import main


@pytest.fixture
def course(tmp_path):
    """A course folder with the one assignment "clustering" (its master need not be real here)."""
    master = tmp_path / "course" / "source" / "clustering" / "clustering.ipynb"
    master.parent.mkdir(parents=True)
    master.write_text("{}")
    return tmp_path / "course"


@pytest.mark.parametrize("command", [["collect", "{downloads}"], ["all", "{downloads}"], ["feedback"], ["report"]])
def test_a_folder_that_is_not_a_course_is_refused_and_nothing_is_made_there(tmp_path, capsys, command):
    (tmp_path / "downloads").mkdir()
    typo = tmp_path / "terms" / "2027 sprng"
    arguments = [part.format(downloads=tmp_path / "downloads") for part in command]
    assert main([*arguments, "--root", str(typo)]) == 1
    error = capsys.readouterr().err
    assert f"{typo}: not a course folder" in error and f"make course COURSE={typo}" in error
    assert not typo.exists(), "collect made the mistyped folder"


@pytest.mark.parametrize("command", [["feedback"], ["report"], ["grade"]])
def test_an_assignment_the_course_does_not_have_is_named_with_those_it_has(course, capsys, command):
    assert main([*command, "--root", str(course), "--assignment", "Clustering"]) == 1
    assert "no assignment 'Clustering' (source/Clustering/Clustering.ipynb is missing); this course has: clustering" \
        in capsys.readouterr().err
