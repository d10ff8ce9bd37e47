"""Pages of the documentation that are read from the code, not written by hand.

At ``builder-inited`` this extension writes into ``docs/_generated/`` (not
kept in git, made again by every build):

- ``configuration.rst``: every setting of ``nbgrader_config.py`` that the
  course's own classes add (``c.<Class>.<trait>``), from the traitlets classes
  themselves (:meth:`traitlets.config.Configurable.class_config_rst_doc`);
- ``layers.dot``: the package's layers and which imports which, read from the
  modules' ``import`` statements, for the architecture page's diagram.
"""

import ast
import importlib
import inspect
import pkgutil
from collections import defaultdict
from pathlib import Path

from traitlets.config import Configurable

DOCS = Path(__file__).resolve().parent.parent
GENERATED = DOCS / "_generated"

#: The layers, top first (as on the architecture page; tests/test_architecture.py enforces them).
LAYERS = [
    ["coursekit.cli"],
    ["coursekit.steps"],
    ["coursekit.grading", "coursekit.pages", "coursekit.insight"],
    ["coursekit.common"],
]


def course_modules():
    """Every module of coursekit, imported (``__main__`` excepted: importing it runs the command)."""
    import coursekit

    names = sorted(info.name for info in pkgutil.walk_packages(coursekit.__path__, "coursekit.")
                   if not info.name.endswith("__main__"))
    return [importlib.import_module(name) for name in names]


def configurable_classes():
    """The course's own traitlets classes with settings, in the order of their modules."""
    found = []
    for module in course_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, Configurable) and own_settings(cls):
                found.append(cls)
    return found


def own_settings(cls):
    """The names of the settings ``cls`` defines itself (not those it inherits)."""
    return sorted(name for name in cls.class_traits(config=True) if name in cls.__dict__)


def configuration_rst():
    lines = []
    for cls in configurable_classes():
        title = f"{cls.__name__}"
        lines += [title, "-" * len(title), "", f"Defined in :class:`{cls.__module__}.{cls.__name__}`.", ""]
        lines += [_trait_rst(cls, name) for name in own_settings(cls)]
    return "\n".join(lines)


def _trait_rst(cls, name):
    trait = cls.class_traits()[name]
    kind = type(trait).__name__
    default = trait.default_value_repr()
    help_text = inspect.cleandoc(trait.help or "(no description)")
    body = "\n".join("    " + line if line else "" for line in help_text.splitlines())
    return (f".. describe:: c.{cls.__name__}.{name}\n\n"
            f"    *{kind}*, default ``{default}``\n\n{body}\n")


def import_graph():
    """{(unit, unit): number of imports} between the units of the layers."""
    package = DOCS.parent / "coursekit"
    units = [unit for layer in LAYERS for unit in layer]

    def unit_of(name):
        return next((unit for unit in units if name == unit or name.startswith(unit + ".")), None)

    edges = defaultdict(int)
    for path in package.rglob("*.py"):
        here = unit_of(".".join(path.relative_to(DOCS.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coursekit"):
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.startswith("coursekit")]
            for target in targets:
                there = unit_of(target)
                if here and there and there != here:
                    edges[here, there] += 1
    return edges


def layers_dot():
    package = DOCS.parent / "coursekit"
    lines = ["digraph layers {", '  rankdir=TB; node [shape=box, fontname="sans-serif", fontsize=11];',
             '  edge [color="#555555"];']
    for rank, layer in enumerate(LAYERS):
        lines.append("  { rank=same;")
        for unit in layer:
            folder = package / unit.split(".")[1]
            modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__") if folder.is_dir() else []
            label = unit + ("\\n" + ", ".join(modules[:5]) + ("\\n" + ", ".join(modules[5:10]) if modules[5:] else "")
                            + ("\\n" + ", ".join(modules[10:]) if modules[10:] else "") if modules else "")
            lines.append(f'    "{unit}" [label="{label}"];')
        lines.append("  }")
    for (here, there), count in sorted(import_graph().items()):
        lines.append(f'  "{here}" -> "{there}" [label=" {count}", fontsize=9];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_generated(app):
    GENERATED.mkdir(exist_ok=True)
    for name, text in [("configuration.rst", configuration_rst()), ("layers.dot", layers_dot())]:
        path = GENERATED / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", write_generated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
