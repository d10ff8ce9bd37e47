"""How a feedback page is rendered: one self-contained HTML file a student can open anywhere.

nbgrader's ``generate_feedback`` renders the graded notebook with nbconvert's
:class:`~nbconvert.exporters.HTMLExporter` and nbgrader's "feedback"
template, which loads MathJax from a CDN: offline (a downloaded page, a campus
network that blocks CDNs) every formula shows as raw TeX. The course's
exporter, :class:`FeedbackExporter` (set up by :func:`configure`, called from
``nbgrader_config.py``), changes three things:

- formulas in Markdown are turned into MathML when the page is made
  (:func:`latex_to_mathml`, with latex2mathml), which browsers draw without
  any script; a formula that cannot be converted is shown as its TeX source;
- the template ``templates/nbconvert/coursekit_feedback`` (extending
  nbgrader's) loads nothing from the network, puts the summary of
  :class:`coursekit.common.preprocessors.SummarizeExercises` at the top, and wraps
  long lines of output instead of cutting them off;
- images written as files in Markdown are embedded (regular image files of
  the notebook's own folder only, never through a link);
- everything a student wrote is made inert (:mod:`coursekit.pages.sanitize`):
  Markdown is cleaned after it is rendered, outputs by
  :class:`~coursekit.pages.sanitize.SanitizeStudentContent` (last of
  ``GenerateFeedback.preprocessors``), and the page carries a
  Content-Security-Policy (:data:`FEEDBACK_CSP`) that runs only the course's
  own animation player and lets nothing be requested.
"""

from __future__ import annotations

import base64
import html
import logging
import mimetypes
import os
import re
import stat
from pathlib import Path

import nbgrader
from jinja2 import pass_context
from latex2mathml.converter import convert as _latex2mathml
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.ansi import ansi2html
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from traitlets import default

from coursekit.pages.sanitize import (
    IMAGE_WITHOUT_ALT,
    PLAYER_SCRIPT,
    PLAYER_STYLE,
    clean_html,
    content_security_policy,
)

log = logging.getLogger(__name__)

#: The folder of the course's nbconvert templates.
TEMPLATES = Path(__file__).resolve().parent / "templates" / "nbconvert"
#: nbgrader's templates (its "feedback" template is the base of ours).
NBGRADER_TEMPLATES = Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "templates"
#: Where nbgrader's template finds ``bootstrap.min.css`` (inlined into the page).
NBGRADER_CSS = (Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "static"
                / "node_modules" / "bootstrap" / "dist" / "css")

#: The policy of every feedback page: no request at all, no script but the course's player.
FEEDBACK_CSP = content_security_policy(scripts=[PLAYER_SCRIPT])
#: The largest image file a Markdown cell may embed.
MAX_EMBEDDED_IMAGE = 5_000_000

MATHML_NAMESPACE = "http://www.w3.org/1998/Math/MathML"
_INLINE_MATH = re.compile(r"\$([^$]+)\$")


def latex_to_mathml(tex, display=False):
    """MathML for one TeX formula, or the escaped TeX in a ``<code>`` when it cannot be converted.

    Parameters
    ----------
    tex : str
        The formula without its ``$`` delimiters.
    display : bool, default=False
        A displayed (block) formula rather than one inside a line of text.

    Returns
    -------
    str
        HTML: a ``<math>`` element, or ``<code class="tex">...</code>``.
    """
    try:
        mathml = _latex2mathml(tex.strip(), display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises many kinds on bad TeX
        log.debug(f"formula left as TeX ({error}): {tex!r}")
        return f'<code class="tex">{html.escape(tex)}</code>'
    # In HTML a <math> element is MathML without saying so. Declared, the
    # namespace turns into an "ns0:" prefix when nbconvert re-parses a heading
    # to add its anchor link, and browsers then no longer see MathML.
    return mathml.replace(f' xmlns="{MATHML_NAMESPACE}"', "", 1)


def text_with_math(text):
    """Plain text with ``$...$`` formulas as HTML: text escaped, formulas as MathML (for headings)."""
    parts = _INLINE_MATH.split(text)
    return clean_html("".join(latex_to_mathml(part) if odd else html.escape(part) for odd, part in
                   ((index % 2 == 1, part) for index, part in enumerate(parts))))


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, with formulas as MathML instead of TeX left for MathJax."""

    def block_math(self, body):
        return latex_to_mathml(body, display=True)

    def inline_math(self, body):
        return latex_to_mathml(body)

    def latex_environment(self, name, body):
        return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    def _src_to_base64(self, src):
        """An image file of the notebook's folder as a data URL; None for anything else.

        nbconvert's own reads any path inside the folder, through links and
        pipes (``![](fifo)`` would hang the feedback step); this one reads only
        regular image files, not through a link, of bounded size.
        """
        folder = os.path.realpath(self.path or ".")
        path = os.path.join(folder, src)
        mime_type, _ = mimetypes.guess_type(path)
        if mime_type not in ("image/png", "image/jpeg", "image/gif", "image/webp") or "\0" in path:
            return None
        if os.path.commonpath([folder, os.path.realpath(path)]) != folder or os.path.realpath(path) != os.path.abspath(path):
            return None
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(descriptor, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_EMBEDDED_IMAGE:
                return None
            data = base64.b64encode(file.read(MAX_EMBEDDED_IMAGE)).decode("ascii")
        return f"data:{mime_type};base64,{data}"


def render_markdown(source, **options):
    """Markdown to HTML as nbconvert does it, formulas as MathML, then made inert (:func:`coursekit.pages.sanitize.clean_html`)."""
    return clean_html(MarkdownWithMath(renderer=MathMLRenderer(escape=False, **options)).render(source))


#: The pygments style of code on the pages (accessible-pygments): every colour at least 7:1 on its background.
CODE_STYLE = "a11y-high-contrast-light"


#: ANSI colours of outputs and tracebacks on the pages, each at least 5:1 on white, on the code's grey and
#: on the pink of stderr (nbconvert's own, for a dark terminal, go down to 1.6:1).
ANSI_COLOURS = {"black": "#3e424d", "red": "#a8262c", "green": "#006b24", "yellow": "#805600", "blue": "#0058b0",
                "magenta": "#8f2a86", "cyan": "#00686b", "white": "#595959"}

#: CSS giving the ANSI classes nbconvert writes (normal and intense) :data:`ANSI_COLOURS`.
ANSI_CSS = "\n".join(f".ansi-{name}-fg, .ansi-{name}-intense-fg {{ color: {colour}; }}"
                      for name, colour in ANSI_COLOURS.items())

#: The course's own CSS on a page with student outputs: the animation player's, and the ANSI colours.
COURSE_STYLE = PLAYER_STYLE + "\n" + ANSI_CSS

_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _basic_colours_only(parameters):
    """An SGR sequence's parameters without 256-colour, true-colour and background colours."""
    codes, kept = parameters.split(";") if parameters else [], []
    index = 0
    while index < len(codes):
        code = codes[index]
        if code in ("38", "48"):  # 38;5;n or 38;2;r;g;b (and 48 for the background): drop the whole colour
            index += 3 if index + 1 < len(codes) and codes[index + 1] == "5" else 5
            continue
        if not (code.isdigit() and (40 <= int(code) <= 49 or 100 <= int(code) <= 107)):
            kept.append(code)
        index += 1
    return ";".join(kept)


def accessible_ansi2html(text):
    """nbconvert's ``ansi2html`` with only the 8 basic foreground colours (as :data:`ANSI_CSS` draws them).

    IPython colours tracebacks with 256-colour codes, which nbconvert writes as
    inline colours nothing can restyle (grey-green comments at 3.6:1 on the
    code's grey); backgrounds set by a program can hide text. Both are dropped:
    the text keeps the page's own colour.
    """
    return ansi2html(_SGR.sub(lambda match: f"\x1b[{_basic_colours_only(match[1])}m", text))


def configure(config):
    """Make nbgrader's ``generate_feedback`` render pages with :class:`FeedbackExporter` and its template.

    Set in the configuration, not as the class's defaults: nbgrader's
    GenerateFeedback puts its own template into ``HTMLExporter``'s
    configuration, which would win over any default of a subclass.

    Parameters
    ----------
    config : traitlets.config.Config
        The course's nbgrader configuration (``nbgrader_config.py``'s ``c``).
    """
    config.GenerateFeedback.exporter_class = FeedbackExporter
    config.FeedbackExporter.template_name = "coursekit_feedback"
    config.FeedbackExporter.extra_template_basedirs = [str(TEMPLATES), str(NBGRADER_TEMPLATES)]
    # nbgrader's folder itself too, for ``extends 'feedback/index.html.j2'``, and its bootstrap.min.css.
    config.FeedbackExporter.extra_template_paths = [str(NBGRADER_TEMPLATES), str(NBGRADER_CSS)]
    # Code colours that keep 4.5:1 contrast (WCAG AA), here and on formgrader's grading page.
    config.CSSHTMLHeaderPreprocessor.style = CODE_STYLE


def page_resources(resources=None):
    """``resources`` and what the course's template adds to a page: its policy, player script and style."""
    return {**(resources or {}), "content_security_policy": FEEDBACK_CSP, "player_script": PLAYER_SCRIPT,
            "course_style": COURSE_STYLE}


class FeedbackExporter(HTMLExporter):
    """HTML for a feedback page: formulas as MathML, no network, the course's template."""

    @default("embed_images")
    def _embed_images_default(self):
        return True

    def default_filters(self):
        """nbconvert's filters, ``markdown2html`` as below, and ``text_with_math`` for the summary."""
        yield from super().default_filters()
        yield ("text_with_math", text_with_math)
        yield ("ansi2html", accessible_ansi2html)

    def from_notebook_node(self, nb, resources=None, **kw):
        """The page, with the policy and the course's player script handed to the template.

        Rendered as :class:`~nbconvert.exporters.HTMLExporter` renders, but
        for its last step: it parses the finished page again with
        BeautifulSoup, to describe images without ``alt`` and to make
        JupyterLab-styled cells focusable, which took 44% of a page's time.
        Here every image is described already
        (:data:`coursekit.pages.sanitize.NO_DESCRIPTION`, by
        :class:`~coursekit.pages.sanitize.SanitizeStudentContent` and
        :func:`~coursekit.pages.sanitize.clean_html`), and the page is
        nbgrader's classic layout, which has no such cells.
        """
        resources = self._init_resources(page_resources(resources))
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        self.register_filter("highlight_code",
                             self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
        self.register_filter("filter_data_type",
                             WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        undescribed = len(IMAGE_WITHOUT_ALT.findall(page))
        if undescribed:  # as nbconvert warns; then the notebook did not go through SanitizeStudentContent
            self.log.warning("Alternative text is missing on %s image(s).", undescribed)
        return page, resources

    @pass_context
    def markdown2html(self, context, source):
        """Markdown to HTML as nbconvert does it, with MathML for the formulas, made inert."""
        cell = context.get("cell", {})
        return render_markdown(
            source,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
