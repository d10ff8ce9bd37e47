"""Hidden tests check only what the student was told: the build's check of stated requirements.

A hidden test (a ``_checker_test_...`` or ``_hidden_test_...`` function in a
hidden-test region of the master) names, in its docstring, each requirement it
checks, as a phrase quoted word for word from what the student reads about the
exercise::

    def _checker_test_update_representatives(student):
        '''Stated requirements checked:

        - the group keeps its previous representative
        - may have an integer dtype such as `uint8`
        '''

Every line of the docstring that starts with a hyphen and a space is one requirement. What
the student reads is the exercise's *stated text*: the markdown and code cells
from the previous exercise's test cells up to this test cell, as the release
shows them (solution regions left out, and written answers, which the release
replaces). Whitespace and line breaks do not count; everything else must match.

:func:`unstated_requirements` lists, for ``make build``, each hidden test that
names no requirement or names one the stated text does not contain, and each
statement of a hidden region that is not part of such a test.
"""

from __future__ import annotations

import ast
import re
import textwrap

from coursekit.common import notebooks
from coursekit.common.notebooks import SOLUTION_BEGIN, SOLUTION_END
from coursekit.grading.checker import CHECKER_GUARD, CHECKER_PREFIX, hidden_span

#: Functions of a hidden region with these prefixes are hidden tests: the checker's, and those run in the kernel.
TEST_PREFIXES = (CHECKER_PREFIX, "_hidden_test")


def _words(text):
    return re.sub(r"\s+", " ", text).strip()


def _as_released(cell):
    """What the release shows of a cell the student reads: "" for a written answer, code without its solution."""
    if cell.cell_type == "markdown":
        return "" if notebooks.is_solution_cell(cell) else cell.source
    kept, inside = [], False
    for line in cell.source.splitlines():
        if SOLUTION_BEGIN in line:
            inside = True
        elif SOLUTION_END in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept)


def stated_text(nb, index):
    """The text the student reads about the exercise of the test cell ``nb.cells[index]``, whitespace collapsed.

    The cells before it back to the previous test cell, skipping test cells
    right before it (an exercise with two test cells, such as 2.3, states its
    requirements once, above both).
    """
    parts, position = [], index - 1
    while position >= 0 and notebooks.is_test_cell(nb.cells[position]):
        position -= 1
    while position >= 0 and not notebooks.is_test_cell(nb.cells[position]):
        if nb.cells[position].cell_type in ("markdown", "code"):
            parts.append(_as_released(nb.cells[position]))
        position -= 1
    return _words("\n".join(reversed(parts)))


def named_requirements(function):
    """The requirements a hidden test's docstring names: its lines that start with a hyphen and a space."""
    docstring = ast.get_docstring(function) or ""
    return [_words(line.strip()[2:]) for line in docstring.splitlines() if line.strip().startswith("- ")]


def _is_hidden_test(node):
    return isinstance(node, ast.FunctionDef) and node.name.startswith(TEST_PREFIXES)


def _is_bookkeeping(node, lines):
    """A statement of a hidden region that is not a test: an import, the guard, and running or deleting a ``_hidden_test``."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Assert):
        return "\n".join(lines[node.lineno - 1:node.end_lineno]).strip() == CHECKER_GUARD
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not node.value.args and not node.value.keywords:
        return isinstance(node.value.func, ast.Name) and node.value.func.id.startswith(TEST_PREFIXES)
    if isinstance(node, ast.Delete):
        return all(isinstance(target, ast.Name) and target.id.startswith(TEST_PREFIXES) for target in node.targets)
    return False


def unstated_requirements(nb):
    """Problems, one line each, with the hidden tests of the master ``nb``; [] when each checks only stated requirements."""
    problems = []
    for index, cell in enumerate(nb.cells):
        span = hidden_span(cell.source) if notebooks.is_test_cell(cell) else None
        if span is None:
            continue
        where = notebooks.grade_id(cell)
        region = textwrap.dedent(cell.source[span[0]:span[1]])
        try:
            tree = ast.parse(region)
        except SyntaxError as error:
            problems.append(f"{where}: its hidden tests are not valid Python: {error.msg} (line {error.lineno})")
            continue
        lines = region.splitlines()
        stated = stated_text(nb, index)
        for node in tree.body:
            if _is_hidden_test(node):
                names = named_requirements(node)
                if not names:
                    problems.append(f"{where}: {node.name} names no stated requirement; start its docstring with "
                                    "'Stated requirements checked:' and list, one per '- ' line, the phrases of the "
                                    "exercise's text or docstring that say what it checks")
                problems += [f"{where}: {node.name} checks {name!r}, which the exercise's text and docstrings do not "
                             "state (word for word); state it there or stop checking it" for name in names if name not in stated]
            elif not _is_bookkeeping(node, lines):
                problems.append(f"{where}: line {node.lineno} of its hidden tests is outside a hidden test; move it into a "
                                f"{CHECKER_PREFIX}_... function (or a _hidden_test_... one run in the kernel) whose docstring "
                                "names the stated requirement it checks")
    return problems
