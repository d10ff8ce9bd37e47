"""The manual: ``make docs`` builds it offline, warnings and broken references are errors.

The site is built once per run, as ``make docs`` does (``sphinx -W -n``), into a
temporary folder; the tests then read the HTML a reader gets.
"""

import functools
import html.parser
import http.server
import inspect
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from coursekit.common.paths import ROOT

pytestmark = pytest.mark.timeout(300)

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site: (output folder, sphinx's output). Built from scratch (-E), as on a fresh clone."""
    out = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-E", "-q", "-b", "html",
         "-d", str(out.parent / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, f"make docs failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return out


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])


def parsed(page):
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_of_the_site_leads_somewhere(site):
    """Links between pages, to anchors in them and to images: the target file and the anchor exist."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 40, "the site has the guide pages and one API page per module"
    ids = {}
    broken = []
    for page in pages:
        for link in parsed(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = parsed(target).ids
                if unquote(parts.fragment) not in ids[target]:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:40])


def test_the_site_is_organised_by_reader(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    for reader_page in ("students/index.html", "instructors/index.html", "tas/index.html",
                        "operators/index.html", "developers/architecture.html", "reference/index.html"):
        assert (site / reader_page).is_file() and reader_page in index, reader_page


def test_the_configuration_reference_lists_every_setting_of_the_course_s_classes(site):
    """Read from the traitlets classes: each of the course's settings is on the page with its help text."""
    from traitlets.config import Configurable

    from coursekit.grading import execute, sandbox, timing
    from coursekit.pages import sanitize
    from coursekit.steps import build

    page = (site / "reference" / "configuration.html").read_text(encoding="utf-8")
    checked = 0
    for module in (build, execute, sandbox, timing, sanitize):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, Configurable):
                continue
            for name in cls.class_traits(config=True):
                if name in cls.__dict__:
                    assert f"c.{cls.__name__}.{name}" in page, f"c.{cls.__name__}.{name} is missing"
                    checked += 1
    assert checked >= 20
    assert "Memory of the whole sandbox" in page  # a help text, read from the trait


def test_the_api_reference_has_a_page_per_module_with_its_docstring(site):
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                     for p in (ROOT / "coursekit").rglob("*.py") if p.stem not in ("__init__", "__main__"))
    api = site / "reference" / "_autosummary"
    missing = [name for name in modules if not (api / f"{name}.html").is_file()]
    assert not missing, f"no API page for {missing}"
    page = (api / "coursekit.grading.sandbox.html").read_text(encoding="utf-8")
    assert "SandboxedKernelManager" in page and "bubblewrap" in page
    helper = (api / "KmeansAnimate2D.html").read_text(encoding="utf-8")
    assert "assign_clusters" in helper and "Animation2D" in helper


def test_the_architecture_diagram_is_drawn_from_the_imports(site):
    page = (site / "developers" / "architecture.html").read_text(encoding="utf-8")
    dot = (DOCS / "_generated" / "layers.dot").read_text(encoding="utf-8")
    assert '"coursekit.steps" -> "coursekit.grading"' in dot
    assert '"coursekit.common" ->' not in dot, "the base imports nothing above it"
    assert "<svg" in page or ".svg" in page


def test_readme_is_a_front_door():
    """What this is, the two commands, what the demo prints and where to read next, in 200 lines at most."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for must in ("make demo", "make test", "make docs", "docs/tas/", "20260005"):
        assert must in readme, must


@pytest.fixture
def served_site(site):
    """The built site over HTTP on 127.0.0.1, as a web server would serve it."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_reader_finds_the_ta_guide_and_the_diagrams_show(served_site, chromium):
    """In Chromium: the home page links each reader to their part; the diagrams are drawn; nothing is fetched elsewhere."""
    from conftest import SCREENSHOTS

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{served_site}/index.html")
    page.screenshot(path=SCREENSHOTS / "docs_index.png")
    page.get_by_role("main").get_by_role("link", name="TAs", exact=True).click()
    page.wait_for_load_state()
    assert page.url.endswith("tas/index.html"), page.url
    assert "grade" in page.get_by_role("main").inner_text().lower()
    page.goto(f"{served_site}/developers/architecture.html")
    diagrams = page.get_by_role("main").locator("object.graphviz")
    assert diagrams.count() >= 3
    # Each diagram is an SVG file in an <object>: drawn once its document holds graphviz's nodes.
    page.wait_for_function("""() => [...document.querySelectorAll('object.graphviz')].every(
        o => o.contentDocument && o.contentDocument.querySelectorAll('g.node').length >= 4)""", timeout=10000)
    for index in range(diagrams.count()):
        box = diagrams.nth(index).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, "a diagram is drawn, not a broken image"
    page.screenshot(path=SCREENSHOTS / "docs_architecture.png", full_page=True)
    outside = [url for url in requests if not url.startswith((served_site, "data:"))]
    assert not outside, f"the manual asked the network for {outside}"
