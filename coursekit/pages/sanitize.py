"""Student content made inert before a person's browser sees it.

Everything a student's notebook carries is untrusted: Markdown cells, every
output (``text/html``, ``image/svg+xml``, ``text/markdown``,
``application/javascript``, widgets), error messages, cell ids, cell and
notebook metadata, attachments. A TA opens it in formgrader, inside a
logged-in Jupyter session; a student opens a feedback page inside an LMS. In
neither may anything a student wrote run, call out, or change the page's
controls. This module is the one place that decides what survives:

- :func:`clean_html` sanitizes an HTML fragment with nh3 (the Rust library
  ammonia, maintained; bleach is deprecated) under the course's policy: the
  tags of ordinary HTML, tables and MathML; no script, style element, frame,
  object, form, base, meta or link; no event handler; images only as
  ``data:image/...;base64`` URLs; links only to anchors in the page; inline
  styles only of a few layout properties and never with ``url()``; classes
  only those the page's own CSS and player use.
- :class:`SanitizeStudentContent` is an nbconvert preprocessor that applies
  it to a whole notebook before any template sees it: HTML outputs cleaned,
  SVG turned into an ``<img>`` (a browser runs no script and loads nothing
  from an SVG shown as an image), scripts and widgets replaced by a note,
  images checked to be base64, metadata cut down to typed nbgrader fields
  (and a cell's figure description ``alt``, plain text, which the page escapes),
  cell ids checked. The animation player's frames are checked and put back
  as data for the course's own player script (:data:`PLAYER_SCRIPT`), which
  the pages include themselves.
- Every image leaves with a description: a figure in a cell without ``alt``
  and an ``<img>`` without one get :data:`NO_DESCRIPTION` (what nbconvert's
  HTMLExporter adds by parsing the whole page again, which the feedback pages
  skip).
- :func:`content_security_policy` is the second line: the policy every page
  carries (``<meta>`` in feedback pages, an HTTP header in formgrader,
  :mod:`coursekit.pages.formgrade_csp`), which allows the course's own scripts by
  hash and no request to any other origin.

Markdown goes through nbconvert's renderer first (:mod:`coursekit.pages.feedback_page`)
and then through :func:`clean_html`.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import json
import logging
import re

import nh3
from nbconvert.preprocessors import Preprocessor
from traitlets import default

from coursekit.common.paths import ROOT

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------

MATHML_TAGS = {
    "math", "maction", "menclose", "merror", "mfenced", "mfrac", "mi", "mmultiscripts", "mn", "mo", "mover",
    "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt", "mstyle", "msub", "msubsup",
    "msup", "mtable", "mtd", "mtext", "mtr", "munder", "munderover", "none", "semantics",
}
#: Tags that survive: nh3's defaults (ordinary text, lists, tables, headings,
#: images), MathML, and what the animation player's controls are made of.
TAGS = (set(nh3.ALLOWED_TAGS) | MATHML_TAGS | {"button", "input", "select", "option", "caption"}) - {"map", "area"}
#: Removed together with their content (nh3 keeps the text of other unknown tags).
CLEAN_CONTENT_TAGS = {"script", "style", "template", "iframe", "object", "embed", "noscript", "noembed", "noframes",
                      "xmp", "title", "textarea", "svg", "head", "frameset", "form", "select"} - TAGS
#: Attributes by tag ("*": every tag). No event handler, no ``srcset``, no ``href`` but anchors.
ATTRIBUTES = {
    "*": {"title", "lang", "dir", "aria-label", "aria-hidden", "aria-live", "role"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align", "style"},
    "th": {"colspan", "rowspan", "align", "scope", "style"},
    "table": {"border", "style"},
    "div": {"style", "data-interval"},
    "span": {"style"},
    "p": {"style"},
    "tr": {"style"},
    "input": {"type", "min", "max", "step", "value"},
    "button": {"type", "data-action"},
    "option": {"value", "selected"},
    "math": {"display"},
    "mo": {"stretchy", "fence", "separator", "lspace", "rspace", "form"},
    "mstyle": {"displaystyle", "scriptlevel"},
    "mtable": {"columnalign", "rowspacing", "columnspacing"},
    "mspace": {"width"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
}
#: Classes kept, by tag: pandas' tables, nbconvert's heading anchors, the animation player.
CLASSES = {
    "table": {"dataframe"},
    "a": {"anchor-link"},
    "code": {"tex"},
    "div": {"kmeans-player", "kmeans-player-controls"},
    "img": {"kmeans-player-frame"},
    "input": {"kmeans-player-slider"},
    "span": {"kmeans-player-counter"},
    "select": {"kmeans-player-mode"},
}
#: Inline style properties kept; none of them takes a URL.
STYLE_PROPERTIES = {
    "display", "text-align", "vertical-align", "white-space", "color", "background-color", "font-weight",
    "font-style", "font-size", "width", "height", "max-width", "min-width", "margin", "margin-left",
    "margin-right", "margin-top", "margin-bottom", "padding", "padding-left", "padding-right", "padding-top",
    "padding-bottom", "border-collapse", "border-spacing",
}
#: ids a student's heading may not take: the page's own elements (feedback, formgrader).
RESERVED_IDS = {"top", "notebook", "notebook-container", "summary-title", "statusmessage", "toc"}

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: The description of an image that has none: nbconvert's words, so every page says the same.
NO_DESCRIPTION = "No description has been provided for this image"
#: An ``<img>`` without ``alt`` in nh3's output, which writes each tag as ``<name attribute="value" ...>``
#: with ``<``, ``>`` and ``"`` escaped in values, and ``<`` escaped in text (so the match is exact there).
IMAGE_WITHOUT_ALT = re.compile(r'<img(?=[\s>])(?![^>]*\salt=")')
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]*={0,2}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_HEADING_ID = re.compile(r"^[A-Za-z][\w.:\-]{0,200}$")
_GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_CELL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_NUMBER = re.compile(r"^\d{1,5}(\.\d{1,3})?$")
_UNSAFE_STYLE = re.compile(r"url\s*\(|\\|expression|@import|javascript:", re.IGNORECASE)
PLAYER_ACTIONS = {"slower", "first", "previous", "reverse", "pause", "play", "next", "last", "faster"}


def _attribute_filter(tag, attribute, value):
    """nh3's per-attribute check: the URL, number and id rules that tags and attributes alone cannot say."""
    if attribute == "src":
        return value if _DATA_IMAGE.match(value) else None
    if attribute == "href":
        return value if value.startswith("#") and len(value) < 300 else None
    if attribute in ("width", "height", "colspan", "rowspan", "border", "data-interval", "min", "max", "step"):
        return value if _NUMBER.match(value.strip()) else None
    if attribute == "value":
        return value if len(value) < 50 else None
    if attribute == "type":
        return value if (tag, value) in (("button", "button"), ("input", "range")) else None
    if attribute == "data-action":
        return value if value in PLAYER_ACTIONS else None
    if attribute == "id":
        return value if _HEADING_ID.match(value) and value not in RESERVED_IDS and not value.startswith("cell-") \
            else None
    if attribute == "style":
        return None if _UNSAFE_STYLE.search(value) else value
    return value


_cleaner = nh3.Cleaner(
    tags=TAGS,
    clean_content_tags=CLEAN_CONTENT_TAGS,
    attributes=ATTRIBUTES,
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel=None,
    url_schemes={"data"},
    allowed_classes=CLASSES,
    filter_style_properties=STYLE_PROPERTIES,
)


def clean_html(fragment):
    """An HTML fragment with everything that could run, call out or restyle the page removed.

    Parameters
    ----------
    fragment : str
        HTML from a student's notebook (an output, or Markdown rendered to HTML).

    Returns
    -------
    str
        The same content under the course's policy (see the module's docstring).
    """
    cleaned = _cleaner.clean(fragment if isinstance(fragment, str) else "")
    return IMAGE_WITHOUT_ALT.sub(f'<img alt="{NO_DESCRIPTION}"', cleaned)


def is_base64(text):
    """Whether ``text`` is base64 (line breaks allowed), as an image in a notebook must be."""
    if not isinstance(text, str):
        return False
    compact = "".join(text.split())
    if not _BASE64.match(compact) or len(compact) % 4:
        return False
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def svg_as_image(svg):
    """An SVG figure as an ``<img>``: drawn as before, but a browser runs no script and loads nothing from it."""
    data = base64.b64encode(svg.encode("utf-8", "replace")).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="figure (SVG)">'


# ---------------------------------------------------------------------------
# The animation player
# ---------------------------------------------------------------------------

_PLAYER_FRAMES = re.compile(r'<script type="application/json" class="kmeans-player-frames">(.*?)</script>', re.DOTALL)
_FRAME = re.compile(r"^data:image/(png|webp|jpeg|gif);base64,[A-Za-z0-9+/]+={0,2}$")
MAX_FRAMES = 1000


def _player_data(original):
    """The frames and captions of the one player in ``original``, checked; None if there is none or they are odd."""
    if original.count('class="kmeans-player"') != 1:
        return None
    found = _PLAYER_FRAMES.findall(original)
    if len(found) != 1:
        return None
    try:
        data = json.loads(found[0])
    except ValueError:
        return None
    frames, captions = (data.get("frames"), data.get("captions")) if isinstance(data, dict) else (None, None)
    if not (isinstance(frames, list) and isinstance(captions, list) and 0 < len(frames) == len(captions) <= MAX_FRAMES):
        return None
    if not all(isinstance(f, str) and _FRAME.match(f) for f in frames):
        return None
    if not all(isinstance(c, str) and len(c) <= 300 for c in captions):
        return None
    return {"frames": frames, "captions": captions}


def _with_player_data(cleaned, original):
    """The cleaned player with its checked frames put back as a JSON data block for the course's player script."""
    data = _player_data(original)
    if data is None or not cleaned.rstrip().endswith("</div>") or cleaned.count('class="kmeans-player"') != 1:
        return cleaned
    # Every "<" escaped: nothing in the block can end it or open a comment.
    block = json.dumps(data, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    end = cleaned.rstrip().rfind("</div>")
    return f'{cleaned[:end]}<script type="application/json" class="kmeans-player-frames">{block}</script></div>'


def _helper_constants(*names):
    """String constants of the course's own helper ``kmeans_animation.py``, read (not imported)."""
    tree = ast.parse((ROOT / "kmeans_animation.py").read_text(encoding="utf-8"))
    found = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) and len(node.targets) == 1
             and getattr(node.targets[0], "id", None) in names}
    missing = [name for name in names if name not in found]
    if missing:
        raise RuntimeError(f"kmeans_animation.py has no {', '.join(missing)}")
    return [found[name] for name in names]


#: The course's player script and style: pages include these copies, never those in a student's output.
PLAYER_SCRIPT, PLAYER_STYLE = _helper_constants("PLAYER_SCRIPT", "PLAYER_STYLE")


def script_hash(script):
    """The Content-Security-Policy source that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(scripts=(), script_sources=(), connect="'none'", images="data:", styles="'unsafe-inline'",
                            fonts="data:", extra=()):
    """A Content-Security-Policy: nothing from any other origin, the given inline scripts by hash.

    Parameters
    ----------
    scripts : iterable of str
        Inline scripts the page carries itself (each allowed by its hash).
    script_sources : iterable of str
        Other script sources (formgrader's static folder).
    connect, images, styles, fonts : str
        The sources of ``connect-src``, ``img-src``, ``style-src``, ``font-src``.
    extra : iterable of str
        More directives, as written.
    """
    script_src = " ".join([*map(script_hash, scripts), *script_sources]) or "'none'"
    return "; ".join([
        "default-src 'none'", f"script-src {script_src}", f"style-src {styles}", f"img-src {images}",
        f"font-src {fonts}", f"connect-src {connect}", "media-src 'none'", "object-src 'none'", "frame-src 'none'",
        "child-src 'none'", "worker-src 'none'", "manifest-src 'none'", "base-uri 'none'", "form-action 'none'",
        *extra,
    ])


# ---------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------

#: nbgrader's cell metadata, by key and the type each must have; nothing else is kept.
NBGRADER_FIELDS = {"schema_version": int, "grade": bool, "solution": bool, "locked": bool, "task": bool,
                   "grade_id": str, "points": (int, float), "score": (int, float), "comment": str,
                   "checksum": str, "cell_type": str}


#: Longest figure description (a cell's ``alt``) kept; nbconvert writes it, escaped, as its images' alt text.
MAX_ALT = 500


def _cell_metadata(metadata):
    """What a page uses of a cell's metadata: its typed nbgrader fields, and ``alt`` as plain text."""
    kept = _nbgrader_metadata(metadata)
    alt = metadata.get("alt") if isinstance(metadata, dict) else None
    if isinstance(alt, str) and alt.isprintable():
        kept["alt"] = alt[:MAX_ALT]
    return kept


def _nbgrader_metadata(metadata):
    """The typed nbgrader fields of a cell's metadata; none if its grade id is not one nbgrader would accept."""
    fields = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    if not isinstance(fields, dict):
        return {}
    kept = {key: value for key, value in fields.items()
            if key in NBGRADER_FIELDS and isinstance(value, NBGRADER_FIELDS[key])
            and not (isinstance(value, bool) and NBGRADER_FIELDS[key] in (int, (int, float)))}
    if "grade_id" in kept and not _GRADE_ID.match(kept["grade_id"]):
        return {}
    return {"nbgrader": kept}


def _note(kind):
    return {"text/plain": f"[an output of type {kind} is not shown here]"}


def clean_output(output):
    """One output of a code cell, made inert, or None to drop it."""
    kind = output.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": "stderr" if output.get("name") == "stderr" else "stdout",
                "text": output.get("text") if isinstance(output.get("text"), str) else ""}
    if kind == "error":
        traceback = output.get("traceback")
        return {"output_type": "error", "ename": str(output.get("ename", "")), "evalue": str(output.get("evalue", "")),
                "traceback": [line for line in traceback if isinstance(line, str)] if isinstance(traceback, list) else []}
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    kept, dropped = {}, []
    for mime, value in data.items():
        if mime in ("text/plain", "text/markdown", "text/latex") and isinstance(value, str):
            kept[mime] = value  # text: escaped by the template (Markdown: rendered, then clean_html)
        elif mime == "text/html" and isinstance(value, str):
            kept[mime] = _with_player_data(clean_html(value), value)
        elif mime in IMAGE_TYPES and is_base64(value):
            kept[mime] = "".join(value.split())
        elif mime == "image/svg+xml" and isinstance(value, str):
            kept.setdefault("text/html", svg_as_image(value))
        else:
            dropped.append(mime)
    if not kept:
        kept = _note(", ".join(sorted(map(str, dropped))) or "unknown")
    metadata = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    sizes = {}
    for mime in IMAGE_TYPES:
        if mime in kept and isinstance(metadata.get(mime), dict):
            size = {k: v for k, v in metadata[mime].items()
                    if k in ("width", "height") and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if size:
                sizes[mime] = size
    cleaned = {"output_type": kind, "data": kept, "metadata": sizes}
    if kind == "execute_result":
        count = output.get("execution_count")
        cleaned["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None
    return cleaned


def _describe_images(output):
    """:data:`NO_DESCRIPTION` as the description of an output's images (of a cell without its own)."""
    for mime in IMAGE_TYPES:
        if mime in output.get("data", {}):
            output["metadata"].setdefault(mime, {})["alt"] = NO_DESCRIPTION


def _clean_attachments(attachments):
    """A Markdown cell's attachments: images given as base64 only."""
    kept = {}
    for name, bundle in (attachments.items() if isinstance(attachments, dict) else ()):
        if isinstance(name, str) and isinstance(bundle, dict):
            images = {mime: "".join(data.split()) for mime, data in bundle.items()
                      if mime in IMAGE_TYPES and is_base64(data)}
            if images:
                kept[name] = images
    return kept


def _clean_notebook_metadata(metadata):
    """Only the language, which picks the code highlighter; widget state and everything else go."""
    info = metadata.get("language_info") if isinstance(metadata, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    lexer = info.get("pygments_lexer") if isinstance(info, dict) else None
    language = {"name": name if isinstance(name, str) and re.match(r"^[\w+-]{1,32}$", name) else "python"}
    if isinstance(lexer, str) and re.match(r"^[\w+-]{1,32}$", lexer):
        language["pygments_lexer"] = lexer
    return {"language_info": language}


class SanitizeStudentContent(Preprocessor):
    """Make a graded notebook inert before it is rendered for a person (formgrader, feedback).

    Runs last, after every preprocessor that reads the notebook's metadata.
    Markdown cells are left to the exporter's ``markdown2html`` filter, which
    cleans what it renders (:mod:`coursekit.pages.feedback_page`); their attachments
    are checked here.
    """

    @default("enabled")
    def _enabled_default(self):
        return True  # nbconvert's preprocessors are off unless switched on; this one must always run

    def preprocess(self, nb, resources):
        nb.metadata = _clean_notebook_metadata(nb.get("metadata"))
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if not (isinstance(cell.get("id"), str) and _CELL_ID.match(cell["id"])):
            cell["id"] = f"cell{index}"
        if not isinstance(cell.get("source"), str):
            cell["source"] = ""
        cell["metadata"] = _cell_metadata(cell.get("metadata"))
        if cell.get("cell_type") == "code":
            outputs = cell.get("outputs") if isinstance(cell.get("outputs"), list) else []
            cell["outputs"] = [o for o in (clean_output(o) for o in outputs if isinstance(o, dict)) if o is not None]
            if "alt" not in cell["metadata"]:
                for output in cell["outputs"]:
                    _describe_images(output)
        elif cell.get("cell_type") == "markdown":
            if "attachments" in cell:
                cell["attachments"] = _clean_attachments(cell["attachments"])
        else:  # a raw cell (or anything else): shown as text, never as HTML
            cell["cell_type"] = "markdown"
            cell["source"] = "```\n" + cell["source"].replace("```", "` ` `") + "\n```"
            cell.pop("attachments", None)
        return cell, resources
