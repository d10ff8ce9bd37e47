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
  feedback pages do, :mod:`coursekit.pages.feedback_page`), which browsers draw
  without any script, and cleans what it renders;
- :class:`~coursekit.pages.sanitize.SanitizeStudentContent` before the template:
  the submission is made inert before a TA's logged-in browser sees it;
- the filters ``formgrade_ids`` and ``course_script``, with which the
  template puts the page's ids in a JSON block and the course's own scripts
  inline, byte for byte as :data:`SCRIPTS` has them, so that the page's
  Content-Security-Policy (:mod:`coursekit.pages.formgrade_csp`) allows exactly them.

formgrader builds its exporter itself, so this is configuration of
``HTMLExporter``, which :class:`~coursekit.pages.feedback_page.FeedbackExporter`
(a subclass) would inherit: the feedback exporter's own settings are kept.
"""

from __future__ import annotations

import json

from jinja2 import pass_context
from markupsafe import Markup

from coursekit.pages.feedback_page import COURSE_STYLE, NBGRADER_TEMPLATES, TEMPLATES, render_markdown
from coursekit.pages.sanitize import PLAYER_SCRIPT

#: The course's own inline scripts of the grading page, by name: the only inline scripts its policy runs.
SCRIPTS = {
    "formgrade_setup.js": (TEMPLATES / "coursekit_formgrade" / "formgrade_setup.js").read_text(encoding="utf-8"),
    "player": PLAYER_SCRIPT,
}


def course_style(_):
    """The course's CSS: the animation player's style (a student's own ``<style>`` does not survive), the ANSI colours."""
    return Markup(COURSE_STYLE)


def course_script(name):
    """The text of one of :data:`SCRIPTS`, for a ``<script>`` element of the template."""
    return Markup(SCRIPTS[name])


def formgrade_ids(resources):
    """The ids formgrade.js needs (submission, notebook, assignment, base URL) as JSON safe inside ``<script>``."""
    ids = {key: str(resources.get(key, "")) for key in ("submission_id", "notebook_id", "assignment_id", "base_url")}
    text = json.dumps(ids, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


@pass_context
def markdown2html_mathml(context, source):
    """nbconvert's ``markdown2html`` (with a plain HTMLExporter's settings), formulas as MathML, made inert."""
    cell = context.get("cell", {})
    return render_markdown(
        source,
        attachments=cell.get("attachments", {}),
        path=context.get("resources", {}).get("metadata", {}).get("path", ""),
    )


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
    config.HTMLExporter.filters = {"markdown2html": f"{__name__}.markdown2html_mathml",
                                   "formgrade_ids": f"{__name__}.formgrade_ids",
                                   "course_script": f"{__name__}.course_script",
                                   "course_style": f"{__name__}.course_style",
                                   "ansi2html": "coursekit.pages.feedback_page.accessible_ansi2html"}
    config.HTMLExporter.preprocessors = ["coursekit.pages.sanitize.SanitizeStudentContent"]
    # Not for the feedback page (its exporter is a subclass): its own template
    # and its own markdown2html (which embeds images too).
    config.FeedbackExporter.template_file = "index.html.j2"
    config.FeedbackExporter.filters = {}
    config.FeedbackExporter.preprocessors = []  # GenerateFeedback runs SanitizeStudentContent itself, last
