"""The package's shape, as the architecture page describes it (docs/developers/architecture.md).

Imports run one way: the commands (``coursekit.cli``) use the steps, the steps
use the engine, the pages and the insights, and those use ``coursekit.common``,
which uses nothing else of coursekit. Read from the code (its ``import``
statements, wherever they are in a module), not from a list kept by hand.
"""

import ast
from pathlib import Path

import pytest

from coursekit.common.paths import ROOT

PACKAGE = ROOT / "coursekit"

#: The layers, top first. A module may import from its own subpackage or from a
#: lower layer; packages in the same layer do not import one another.
LAYERS = [
    {"coursekit.__main__"},
    {"coursekit.cli"},
    {"coursekit.steps"},
    {"coursekit.grading", "coursekit.pages", "coursekit.insight"},
    {"coursekit.common"},
]


def module_name(path, root=ROOT):
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module):
    """The layer's unit a module belongs to: ``coursekit.cli`` or its subpackage."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer_of(unit):
    for number, units in enumerate(LAYERS):
        if unit in units:
            return number
    raise AssertionError(f"{unit} is in no layer of the architecture")


def coursekit_imports(path, root=ROOT):
    """(line, imported module) of every coursekit import in ``path``, at any depth of the code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "coursekit"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "coursekit":
                continue
            for alias in node.names:  # "from coursekit.grading import sandbox" imports the module
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if module_file(candidate, root) else base))
    return found


def module_file(name, root=ROOT):
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else (path / "__init__.py" if path.is_dir() else None)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_sits_in_a_layer():
    loose = [module_name(p) for p in MODULES if p.parent == PACKAGE and p.stem not in ("__init__", "__main__", "cli")]
    assert not loose, f"modules outside the layers' subpackages: {loose}"
    for path in MODULES:
        if path != PACKAGE / "__init__.py":
            layer_of(unit_of(module_name(path)))


def layer_violations(path, root=ROOT):
    """What ``path`` imports against the layers, one line each."""
    here = unit_of(module_name(path, root))
    wrong = []
    for line, imported in coursekit_imports(path, root):
        there = unit_of(imported)
        if there == "coursekit":
            wrong.append(f"line {line}: {imported} (import the module itself, not the package)")
        elif there != here and layer_of(there) <= layer_of(here):
            wrong.append(f"line {line}: {imported} ({there} is not below {here})")
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_run_one_way(path):
    if path == PACKAGE / "__init__.py":
        assert not coursekit_imports(path), "the package's __init__ imports nothing, so any module imports alone"
        return
    wrong = layer_violations(path)
    assert not wrong, f"{path.relative_to(ROOT)} imports against the layers:\n" + "\n".join(wrong)


def test_an_import_against_the_layers_is_found(tmp_path):
    """The check can fail: common importing a step, and a page importing the engine, sideways."""
    for folder in ("common", "steps", "pages", "grading"):
        (tmp_path / "coursekit" / folder).mkdir(parents=True)
        (tmp_path / "coursekit" / folder / "__init__.py").write_text("")
    (tmp_path / "coursekit" / "steps" / "grade.py").write_text("")
    (tmp_path / "coursekit" / "grading" / "sandbox.py").write_text("")
    (tmp_path / "coursekit" / "common" / "bad.py").write_text("import os\n\ndef f():\n    from coursekit.steps import grade\n")
    (tmp_path / "coursekit" / "pages" / "bad.py").write_text("from ..grading.sandbox import Sandbox\n")
    assert layer_violations(tmp_path / "coursekit" / "common" / "bad.py", tmp_path) == [
        "line 4: coursekit.steps.grade (coursekit.steps is not below coursekit.common)"]
    assert layer_violations(tmp_path / "coursekit" / "pages" / "bad.py", tmp_path) == [
        "line 1: coursekit.grading.sandbox (coursekit.grading is not below coursekit.pages)"]


def find_circle(graph):
    """One import circle of ``graph`` ({module: modules it imports}) as a list, or None."""
    done, on_path = set(), []

    def visit(node):
        if node in on_path:
            return on_path[on_path.index(node):] + [node]
        if node in done:
            return None
        on_path.append(node)
        for child in sorted(graph.get(node, ())):
            circle = visit(child)
            if circle:
                return circle
        on_path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        circle = visit(node)
        if circle:
            return circle
    return None


def test_no_module_imports_itself_in_a_circle():
    graph = {module_name(p): {m for _, m in coursekit_imports(p)} for p in MODULES}
    assert find_circle(graph) is None, "import circle: " + " -> ".join(find_circle(graph))
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


# --- the helper students read --------------------------------------------------------

HELPER = ROOT / "KmeansAnimate2D.py"
HELPER_FILES = ["KmeansAnimate2D.py", "kmeans_animation.py", "_kmeans_checks.py", "_kmeans_fast.py"]


def helper_imports(name):
    tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name.split(".")[0] + ".py" for name in names} & set(HELPER_FILES)


def test_the_helper_modules_import_one_way():
    """KmeansAnimate2D.py may use the animation; the animation, the checks and the fast paths never import it back."""
    graph = {name: helper_imports(name) for name in HELPER_FILES}
    assert "kmeans_animation.py" in graph["KmeansAnimate2D.py"]
    for name in HELPER_FILES[1:]:
        assert "KmeansAnimate2D.py" not in graph[name], f"{name} imports KmeansAnimate2D.py: a circle"
    assert not graph["_kmeans_checks.py"], "the input checks import no other helper module"


def test_the_student_s_first_screen_is_the_algorithm():
    """The first definitions in KmeansAnimate2D.py are the two steps, J_clust and Lloyd's loop; the animation comes after."""
    tree = ast.parse(HELPER.read_text(encoding="utf-8"))
    public = [node.name for node in tree.body
              if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")]
    assert public[:4] == ["assign_clusters", "update_representatives", "clustering_objective", "lloyd_kmeans"], public
    assert public.index("KmeansAnimate2D") > public.index("lloyd_kmeans")
