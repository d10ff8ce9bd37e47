"""Sphinx configuration of the course's documentation site (``make docs``).

Pages are MyST Markdown. The API reference is read from the NumPy-style
docstrings (autodoc + numpydoc), and the configuration reference and the
architecture diagram from the code itself (``_ext/coursekit_docs.py``). The
build is offline: no intersphinx inventory can be fetched, so references to
other projects' objects are listed in ``nitpick_ignore_regex`` as external;
every reference to this project's own objects and pages must resolve
(``make docs`` runs with ``-W -n``).
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the helper's modules (KmeansAnimate2D.py, ...) live at the repository root

project = "k-means lab"
author = "the course team"
copyright = "2026, the course team"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc_once",  # numpydoc, its template compiled once (_ext/numpydoc_once.py)
    "sphinx.ext.graphviz",
    "coursekit_docs",
]

root_doc = "index"
exclude_patterns = ["_build", "_generated/*.rst", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

# --- MyST -----------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# --- the API reference --------------------------------------------------------------
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_typehints = "none"
# numpydoc: types in docstrings are prose ("ndarray of shape (n, 2)"), not
# cross-references; members are listed by autodoc, not again by numpydoc.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# --- the diagram ------------------------------------------------------------------
graphviz_output_format = "svg"

# --- references ---------------------------------------------------------------------
nitpicky = True
#: Objects of other projects (no inventory offline): Python's standard library,
#: NumPy, Jupyter's and nbgrader's packages, and the other libraries the course uses.
EXTERNAL = (
    r"(abc|argparse|ast|types|base64|collections|concurrent|contextlib|csv|dataclasses|datetime|enum|html|io|json|logging|"
    r"multiprocessing|os|pathlib|queue|re|shutil|signal|sqlite3|subprocess|sys|tempfile|threading|typing|zipfile|"
    r"numpy|np|matplotlib|PIL|sklearn|skimage|jinja2|markupsafe|nh3|bs4|copydetect|psycopg|sqlalchemy|"
    r"nbgrader|nbconvert|nbformat|nbclient|jupyter_client|jupyter_server|traitlets|tornado|IPython|"
    r"ipykernel|playwright)(\..*)?"
)
BUILTINS = r"(str|int|float|bool|bytes|dict|list|tuple|set|frozenset|object|None|Exception|ValueError|TypeError|OSError|RuntimeError|KeyError|NamedTuple|Path|ndarray)"
nitpick_ignore_regex = [
    (r"py:.*", EXTERNAL),
    (r"py:.*", BUILTINS),
]

# --- HTML ----------------------------------------------------------------------------
html_theme = "furo"
html_title = "k-means lab: course package"
html_static_path = []
html_show_sourcelink = False
