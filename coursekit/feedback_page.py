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
  :class:`coursekit.preprocessors.SummarizeExercises` at the top, and wraps
  long lines of output instead of cutting them off;
- images written as files in Markdown are embedded.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import nbgrader
from latex2mathml.converter import convert as _latex2mathml
from nbconvert.exporters import HTMLExporter
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from traitlets import default

log = logging.getLogger(__name__)

#: The folder of the course's nbconvert templates.
TEMPLATES = Path(__file__).resolve().parent / "templates" / "nbconvert"
#: nbgrader's templates (its "feedback" template is the base of ours).
NBGRADER_TEMPLATES = Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "templates"
#: Where nbgrader's template finds ``bootstrap.min.css`` (inlined into the page).
NBGRADER_CSS = (Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "static"
                / "node_modules" / "bootstrap" / "dist" / "css")

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
    return "".join(latex_to_mathml(part) if odd else html.escape(part) for odd, part in
                   ((index % 2 == 1, part) for index, part in enumerate(parts)))


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, with formulas as MathML instead of TeX left for MathJax."""

    def block_math(self, body):
        return latex_to_mathml(body, display=True)

    def inline_math(self, body):
        return latex_to_mathml(body)

    def latex_environment(self, name, body):
        return latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


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


class FeedbackExporter(HTMLExporter):
    """HTML for a feedback page: formulas as MathML, no network, the course's template."""

    @default("embed_images")
    def _embed_images_default(self):
        return True

    def default_filters(self):
        """nbconvert's filters, ``markdown2html`` as below, and ``text_with_math`` for the summary."""
        yield from super().default_filters()
        yield ("text_with_math", text_with_math)

    @pass_context
    def markdown2html(self, context, source):
        """Markdown to HTML as nbconvert does it, with MathML for the formulas."""
        cell = context.get("cell", {})
        renderer = MathMLRenderer(
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
        return MarkdownWithMath(renderer=renderer).render(source)
