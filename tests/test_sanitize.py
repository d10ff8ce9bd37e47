"""Student content made inert (coursekit.pages.sanitize): the payload battery, notebooks, the player, the pages' policy.

Fast: no grading, no browser. The same payloads are graded through the real
pipeline and opened in chromium in ``test_inert_pages.py``.
"""

import base64
import copy
import html.parser
import json
import os
import re

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell
from payloads import FLAG, HTML_PAYLOADS, JAVASCRIPT_PAYLOAD, MARKDOWN_PAYLOADS, SVG_PAYLOAD

from coursekit.common.paths import ROOT
from coursekit.pages.feedback_page import FEEDBACK_CSP, FeedbackExporter, page_resources, render_markdown
from coursekit.pages.formgrade_csp import grading_page_policy
from coursekit.pages.formgrade_page import SCRIPTS, formgrade_ids
from coursekit.pages import sanitize
from coursekit.pages.sanitize import SanitizeStudentContent, clean_html, clean_output, script_hash
from coursekit.steps import build

URL = "http://127.0.0.1:9"
URL_ATTRIBUTES = {"src", "href", "srcset", "srcdoc", "action", "formaction", "data", "background", "ping",
                  "xlink:href", "poster", "content", "style"}


class Elements(html.parser.HTMLParser):
    """Every start tag of a fragment with its attributes, as a browser's tokenizer sees them."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.found = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def assert_inert(text, page=False):
    """Nothing in ``text`` runs, calls out, or is a tag the policy does not allow (on a whole page: the page's own tags)."""
    for tag, attrs in Elements(text).found:
        assert page or tag in sanitize.TAGS, f"<{tag}> survived in {text!r}"
        if page and tag in ("script", "style", "meta"):
            continue  # the page's own: checked by the caller
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler {name} survived in {text!r}"
            value = value or ""
            if name == "src":
                assert re.match(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,", value), text
            elif name == "href":
                assert value.startswith("#"), text
            elif name == "style":
                assert "url(" not in value and "expression" not in value and "position" not in value, text
            else:
                assert name not in URL_ATTRIBUTES, f"{name}={value!r} survived in {text!r}"
            assert "javascript:" not in value.lower() and URL not in value, text


def test_the_battery_is_large_enough():
    assert len(HTML_PAYLOADS) + len(MARKDOWN_PAYLOADS) >= 30


@pytest.mark.parametrize("name, payload", HTML_PAYLOADS, ids=[name for name, _ in HTML_PAYLOADS])
def test_each_html_payload_is_made_inert(name, payload):
    assert_inert(clean_html(payload.format(url=URL)))


@pytest.mark.parametrize("name, payload", HTML_PAYLOADS + MARKDOWN_PAYLOADS,
                         ids=[name for name, _ in HTML_PAYLOADS + MARKDOWN_PAYLOADS])
def test_each_payload_in_markdown_is_made_inert(name, payload):
    assert_inert(render_markdown(f"Some text\n\n{payload.format(url=URL)}\n\nmore text"))


def test_an_image_without_a_description_gets_one_and_nothing_else_changes():
    png = "data:image/png;base64,iVBORw0KGgo="
    given = (f'<pre>\n\n\nx &lt;img y</pre><img src="{png}"><IMG SRC="{png}" title="t"><img alt="" src="{png}">'
             f'<img alt=\'a> b" alt="c\' src="{png}"><input type="range" min="1" max="9">')
    assert clean_html(given) == (
        f'<pre>\n\nx &lt;img y</pre><img alt="{sanitize.NO_DESCRIPTION}" src="{png}">'  # HTML drops <pre>'s 1st newline
        f'<img alt="{sanitize.NO_DESCRIPTION}" src="{png}" title="t"><img alt="" src="{png}">'
        f'<img alt="a&gt; b&quot; alt=&quot;c" src="{png}"><input type="range" min="1" max="9">')


def test_what_graders_need_still_shows():
    table = ('<table class="dataframe" border="1"><thead><tr style="text-align: right;"><th></th><th>k</th></tr>'
             '</thead><tbody><tr><th>0</th><td>3</td></tr></tbody></table>')
    assert clean_html(table) == ('<table class="dataframe" border="1"><thead><tr style="text-align:right"><th></th>'
                                 '<th>k</th></tr></thead><tbody><tr><th>0</th><td>3</td></tr></tbody></table>')
    png = "data:image/png;base64,iVBORw0KGgo="
    assert clean_html(f'<img src="{png}" alt="a figure" width="100">') == f'<img src="{png}" alt="a figure" width="100">'
    math = render_markdown("The objective $J^{\\rm clust}$ and a [section](#Part-1).")
    assert "<math" in math and "<msup>" in math and 'href="#Part-1"' in math
    assert "<b>bold</b> <code>x = 1</code>" in clean_html("<b>bold</b> <code>x = 1</code>")


def test_markdown_links_keep_their_text_and_lose_their_target():
    cleaned = render_markdown(f"See [the docs]({URL}/docs) and ![a cat]({URL}/cat.png).")
    assert "the docs" in cleaned and URL not in cleaned


def test_headings_keep_their_anchor_but_not_the_pages_own_ids():
    assert 'id="Part-1"' in render_markdown("# Part 1")
    assert "id=" not in clean_html('<h2 id="notebook">x</h2><h2 id="cell-abc">y</h2><p id="Part-1">z</p>')


# --------------------------------------------------------------------------
# Outputs and notebooks
# --------------------------------------------------------------------------

def _display(data, metadata=None):
    return new_output("display_data", data=data, metadata=metadata or {})


def test_svg_is_shown_as_an_image_that_runs_nothing():
    out = clean_output(_display({"image/svg+xml": SVG_PAYLOAD.format(url=URL), "text/plain": "<Figure>"}))
    img = out["data"]["text/html"]
    assert img.startswith('<img src="data:image/svg+xml;base64,') and "image/svg+xml" not in out["data"]
    assert base64.b64decode(re.search(r"base64,([^\"]+)", img).group(1)).decode() == SVG_PAYLOAD.format(url=URL)


def test_scripts_and_widgets_become_a_note():
    for data in ({"application/javascript": JAVASCRIPT_PAYLOAD.format(url=URL)},
                 {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2}}):
        out = clean_output(_display(data))
        assert list(out["data"]) == ["text/plain"] and "is not shown here" in out["data"]["text/plain"]


def test_a_png_that_is_not_base64_and_metadata_that_is_not_a_size_are_dropped():
    fake = '"><img src=x onerror=' + FLAG + '>'
    out = clean_output(_display({"image/png": fake, "text/plain": "fig"},
                                {"image/png": {"width": '1" onload="x'}, "text/html": {"isolated": True}}))
    assert out["data"] == {"text/plain": "fig"} and out["metadata"] == {}
    good = clean_output(_display({"image/png": "iVBO\nRw0KGgo=\n"}, {"image/png": {"width": 200, "alt": "x"}}))
    assert good["data"] == {"image/png": "iVBORw0KGgo="} and good["metadata"] == {"image/png": {"width": 200}}


def _hostile_notebook():
    answer = new_code_cell("def f(): ...")
    answer.metadata = {"nbgrader": {"grade": False, "solution": True, "locked": False, "grade_id": "ex1",
                                    "schema_version": 3, "extra": "<script>"},
                       "tags": ['"><img src=x onerror=' + FLAG + '>'], "jupyter": {"source_hidden": True}}
    answer.outputs = [_display({"text/html": payload.format(url=URL)}) for _, payload in HTML_PAYLOADS]
    answer.outputs += [new_output("error", ename="ValueError", evalue="<img src=x onerror=" + FLAG + ">",
                                  traceback=["\x1b[31m<script>" + FLAG + "</script>"])]
    bad_id = new_markdown_cell("**answer**")
    bad_id.metadata = {"nbgrader": {"grade": True, "solution": True, "grade_id": '"><script>', "points": 1}}
    written = new_markdown_cell("\n\n".join(p.format(url=URL) for _, p in HTML_PAYLOADS + MARKDOWN_PAYLOADS))
    written.attachments = {"a.png": {"image/png": "iVBORw0KGgo=", "text/html": "<script>x</script>"},
                           "b.svg": {"image/svg+xml": "<svg onload=x/>"}}
    raw = new_raw_cell("<script>" + FLAG + "</script>")
    raw.metadata = {"raw_mimetype": "text/html"}
    nb = new_notebook(cells=[answer, bad_id, written, raw])
    nb.cells[0]["id"] = 'x"><img src=x onerror=top.PWNED=1>'  # nbformat would refuse it in new_notebook
    nb.metadata = {"widgets": {"application/vnd.jupyter.widget-state+json": {"x": "</script><script>x</script>"}},
                   "language_info": {"name": "python", "pygments_lexer": "ipython3"},
                   "kernelspec": {"display_name": "<script>", "name": "python3"}}
    return nb


def test_the_preprocessor_cuts_metadata_down_and_makes_every_output_inert():
    nb, _ = SanitizeStudentContent()(_hostile_notebook(), {})
    answer, bad_id, written, raw = nb.cells
    assert answer.id == "cell0" and answer.metadata == {"nbgrader": {"grade": False, "solution": True, "locked": False,
                                                                     "grade_id": "ex1", "schema_version": 3}}
    assert bad_id.metadata == {}
    for output in answer.outputs[:-1]:
        assert_inert(output["data"].get("text/html", ""))
    assert answer.outputs[-1]["output_type"] == "error"  # shown escaped by nbconvert
    assert written.attachments == {"a.png": {"image/png": "iVBORw0KGgo="}}
    assert raw.cell_type == "markdown" and raw.source.startswith("```")
    assert nb.metadata == {"language_info": {"name": "python", "pygments_lexer": "ipython3"}}


def _page(nb):
    return FeedbackExporter(config=build.load_course_config(ROOT)).from_notebook_node(nb, {"nbgrader": {"notebook": "clustering", "score": 1,
                                                                   "max_score": 2, "late_penalty": 0},
                                                      "exercise_summary": []})[0]


def test_a_feedback_page_of_a_hostile_notebook_has_no_student_script_and_carries_the_policy():
    nb, _ = SanitizeStudentContent()(_hostile_notebook(), {})
    page = _page(nb)
    head = page[page.index("<head>"):page.index("</head>")]
    assert head.index('http-equiv="Content-Security-Policy"') < head.index("<style")
    scripts = re.findall(r"<script(?![^>]*application/json)[^>]*>(.*?)</script>", page, re.DOTALL)
    assert scripts == [sanitize.PLAYER_SCRIPT], "only the course's own player script"
    assert script_hash(scripts[0]) in FEEDBACK_CSP
    assert_inert(page[page.index("<body"):], page=True)
    assert "&lt;img src=x onerror=top.PWNED=1&gt;" in page, "the error message is shown, escaped"


def test_the_feedback_policy_allows_no_request_and_no_other_script():
    directives = dict(d.split(" ", 1) for d in FEEDBACK_CSP.split("; "))
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'none'"
    assert directives["img-src"] == "data:" and directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'none'" and directives["frame-src"] == "'none'"
    assert directives["script-src"] == script_hash(sanitize.PLAYER_SCRIPT)


def test_the_grading_page_policy_allows_formgraders_static_scripts_and_the_courses_by_hash():
    policy = grading_page_policy("127.0.0.1:8888", "/user/ta/")
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    sources = directives["script-src"].split()
    assert "127.0.0.1:8888/user/ta/formgrader/static/" in sources
    assert {script_hash(s) for s in SCRIPTS.values()} <= set(sources)
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources and "*" not in sources
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'self'"


def test_the_page_ids_cannot_end_their_json_block():
    text = formgrade_ids({"submission_id": "</script><script>x</script>", "notebook_id": "a&b"})
    assert "<" not in text and ">" not in text and "&" not in text


# --------------------------------------------------------------------------
# The animation player
# --------------------------------------------------------------------------

def _player(frames=2, captions=None):
    import importlib.util
    spec = importlib.util.spec_from_file_location("kmeans_animation_for_test", ROOT / "kmeans_animation.py")
    module = importlib.util.module_from_spec(spec)
    import sys
    sys.path.insert(0, str(ROOT))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT))
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3)).save(buffer, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return module.player_html([uri] * frames, captions=captions or [f"frame caption {i}" for i in range(frames)])


def test_the_player_keeps_its_frames_and_controls_but_not_its_script():
    original = _player()
    cleaned = clean_output(_display({"text/html": original}))["data"]["text/html"]
    assert "<script>" not in cleaned and sanitize.PLAYER_SCRIPT.strip()[:40] not in cleaned
    frames = re.search(r'<script type="application/json" class="kmeans-player-frames">(.*?)</script>', cleaned).group(1)
    assert '"frame caption 1"' in frames and frames.count("data:image/png;base64,") == 2
    assert cleaned.count("data-action=") == 9 and 'class="kmeans-player-slider"' in cleaned
    assert 'style="display:none"' in cleaned, "the controls stay hidden until the course's script shows them"
    assert cleaned.rstrip().endswith("</script></div>")


@pytest.mark.parametrize("forged", ['"javascript:alert(1)"', '"data:text/html;base64,PHNjcmlwdD4="'])
def test_a_player_with_forged_frames_loses_them(forged):
    original = re.sub(r'"frames": \["data:image/png;base64,[^"]+"', f'"frames": [{forged}', _player())
    cleaned = clean_output(_display({"text/html": original}))["data"]["text/html"]
    assert "kmeans-player-frames" not in cleaned and "javascript:" not in cleaned


def test_a_caption_cannot_close_the_data_block():
    caption = "</script><script>" + FLAG + "</script><!--"
    cleaned = clean_output(_display({"text/html": _player(captions=["a", caption])}))["data"]["text/html"]
    assert cleaned.count("</script>") == 1 and "<script>" not in cleaned and "<!--" not in cleaned
    block = re.search(r'class="kmeans-player-frames">(.*?)</script>', cleaned).group(1)
    assert json.loads(block)["captions"] == ["a", caption]


def test_the_page_uses_the_helpers_own_player_script():
    assert "function player(root)" in sanitize.PLAYER_SCRIPT
    assert sanitize.PLAYER_SCRIPT in _player(), "the script the helper writes into its own output"


# --------------------------------------------------------------------------
# Images a Markdown cell names are embedded only from the notebook's folder, never through a link
# --------------------------------------------------------------------------

def test_markdown_images_are_embedded_only_from_regular_files_of_the_folder(tmp_path):
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    (tmp_path / "ok.png").write_bytes(png)
    secret = tmp_path.parent / f"{tmp_path.name}-secret.png"
    secret.write_bytes(png + b"SECRET")
    (tmp_path / "link.png").symlink_to(secret)
    os.mkfifo(tmp_path / "pipe.png")
    source = "![ok](ok.png) ![link](link.png) ![pipe](pipe.png) ![up](../%s)" % secret.name
    page = render_markdown(source, embed_images=True, path=str(tmp_path))
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [png]


def test_every_image_on_a_page_has_a_description_without_nbconvert_s_second_parse():
    # nbconvert's HTMLExporter ends by parsing the whole page again to describe images without alt;
    # the feedback page skips that pass (44% of its time), so the sanitizer must leave nothing for it to do.
    png = "iVBORw0KGgo="
    plain = new_code_cell("plt.show()")
    plain.outputs = [_display({"image/png": png}), _display({"image/jpeg": png})]
    described = new_code_cell("plt.show()")
    described.metadata = {"alt": "the clusters"}
    described.outputs = [_display({"image/png": png})]
    html_images = new_code_cell("HTML(...)")
    html_images.outputs = [_display({"text/html": f'<img src="data:image/png;base64,{png}">'
                                                  f'<img alt="mine" src="data:image/png;base64,{png}">'}),
                           _display({"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg'/>"})]
    markdown = new_markdown_cell(f'<img src="data:image/png;base64,{png}"> ![a dot](data:image/png;base64,{png})')
    nb, _ = SanitizeStudentContent()(new_notebook(cells=[plain, described, html_images, markdown]), {})
    page = _page(nb)
    body = BeautifulSoup(page[page.index("<body"):], "html.parser")
    assert [image.get("alt") for image in body.find_all("img")] == [
        sanitize.NO_DESCRIPTION, sanitize.NO_DESCRIPTION, "the clusters", sanitize.NO_DESCRIPTION, "mine",
        "figure (SVG)", sanitize.NO_DESCRIPTION, "a dot"]
    # What nbconvert's own export writes (the same page put through its second parse) is this page.
    exporter = FeedbackExporter(config=build.load_course_config(ROOT))
    resources = {"nbgrader": {"notebook": "clustering", "score": 1, "max_score": 2, "late_penalty": 0},
                 "exercise_summary": []}
    nbconvert_page, _ = HTMLExporter.from_notebook_node(exporter, nb, page_resources(resources))
    assert nbconvert_page == str(BeautifulSoup(page, "html.parser"))
    assert "tabindex=\"0\"" not in nbconvert_page


def test_a_figure_description_is_kept_as_plain_text_and_written_escaped():
    figure = new_code_cell("plt.show()")
    figure.metadata = {"alt": 'A plot"><img src=x onerror=' + FLAG + ">", "tags": ["x"]}
    figure.outputs = [_display({"image/png": "iVBORw0KGgo="})]
    unreadable = new_code_cell("plt.show()")
    unreadable.metadata = {"alt": {"not": "text"}}
    nb, _ = SanitizeStudentContent()(new_notebook(cells=[figure, unreadable]), {})
    assert nb.cells[0].metadata == {"alt": 'A plot"><img src=x onerror=' + FLAG + ">"}
    assert nb.cells[1].metadata == {}
    page = _page(nb)
    images = BeautifulSoup(page[page.index("<body"):], "html.parser").find_all("img")
    assert [image.get("alt") for image in images] == ['A plot"><img src=x onerror=' + FLAG + ">"]  # one image, its text
    assert_inert(page[page.index("<body"):], page=True)
