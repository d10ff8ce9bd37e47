"""HTML pages from Jinja2 templates (``coursekit/pages/templates/``), escaped by default.

One environment for every page the pipeline writes. Every value put into a
page is escaped, as :func:`html.escape` does (quotes included), unless it is
already markup (a macro's output); templates never build HTML from strings in
Python. Each page also carries ``page_policy``, a Content-Security-Policy that
runs no script and lets nothing be requested (:mod:`coursekit.pages.sanitize`): the
pages quote what students wrote, and are opened by TAs.
"""

from __future__ import annotations

import html
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from coursekit.pages.sanitize import content_security_policy

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _escaped(value):
    """Jinja2's ``finalize``: the text of every ``{{ value }}``, escaped unless it is markup."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    finalize=_escaped,
    undefined=StrictUndefined,  # a misspelt name in a template is an error, not an empty string
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


#: The policy of the class report and the similarity pages: no script at all, images only as data: URLs.
_environment.globals["page_policy"] = content_security_policy()


def render(template, **context):
    """The page made from ``templates/<template>`` with ``context``."""
    return _environment.get_template(template).render(**context)
