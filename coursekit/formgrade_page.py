"""How formgrader's grading page is rendered: formulas as MathML, nothing from a CDN.

nbgrader's formgrader renders each submission with a plain
:class:`~nbconvert.exporters.HTMLExporter` and its "formgrade" template, which
loads MathJax from cdnjs. Offline, or on a network that blocks CDNs, the
formulas stayed raw TeX and, worse, ``formgrade.js`` stopped with "MathJax is
not defined" before it set up its keyboard shortcuts (Tab to the next score or
comment, Ctrl+. to the next student). :func:`configure`, called from
``nbgrader_config.py``, gives that exporter:

- the template ``templates/nbconvert/coursekit_formgrade/``: nbgrader's
  "formgrade" with a stand-in for MathJax that ``formgrade.js`` is happy with;
- a ``markdown2html`` filter that writes the formulas as MathML (as the
  feedback pages do, :mod:`coursekit.feedback_page`), which browsers draw
  without any script.

formgrader builds its exporter itself, so this is configuration of
``HTMLExporter``, which :class:`~coursekit.feedback_page.FeedbackExporter`
(a subclass) would inherit: the feedback exporter's own settings are kept.
"""

from __future__ import annotations

from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import MarkdownWithMath

from .feedback_page import NBGRADER_TEMPLATES, TEMPLATES, MathMLRenderer


@pass_context
def markdown2html_mathml(context, source):
    """nbconvert's ``markdown2html`` (with a plain HTMLExporter's settings), formulas as MathML."""
    cell = context.get("cell", {})
    renderer = MathMLRenderer(
        escape=False,
        attachments=cell.get("attachments", {}),
        path=context.get("resources", {}).get("metadata", {}).get("path", ""),
    )
    return MarkdownWithMath(renderer=renderer).render(source)


def configure(config):
    """Make formgrader render submissions with the course's template and MathML formulas.

    formgrader sets ``HTMLExporter.template_name`` itself, winning over this
    file, so the course's page is given as ``template_file``, extending
    nbgrader's.

    Parameters
    ----------
    config : traitlets.config.Config
        The course's nbgrader configuration (``nbgrader_config.py``'s ``c``).
    """
    config.HTMLExporter.template_file = "coursekit_formgrade.html.j2"
    # nbgrader's template folder too, for ``extends 'formgrade/index.html.j2'``.
    config.HTMLExporter.extra_template_paths = [str(TEMPLATES / "coursekit_formgrade"), str(NBGRADER_TEMPLATES)]
    config.HTMLExporter.filters = {"markdown2html": f"{__name__}.markdown2html_mathml"}
    # Not for the feedback page (its exporter is a subclass): its own template
    # and its own markdown2html (which embeds images too).
    config.FeedbackExporter.template_file = "index.html.j2"
    config.FeedbackExporter.filters = {}
