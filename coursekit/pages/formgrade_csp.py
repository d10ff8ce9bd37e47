"""A Jupyter server extension: a Content-Security-Policy on formgrader's grading page.

formgrader shows a student's submission inside the TA's logged-in Jupyter
session, where a script could read the master notebook through
``/api/contents``, change grades through formgrader's API or open a terminal.
The submission is made inert before it is rendered
(:class:`coursekit.pages.sanitize.SanitizeStudentContent`); this policy is the
second line, should anything slip through. On formgrader's grading page
(``<base_url>formgrader/submissions/...``) it allows:

- scripts only from formgrader's own static folder and the course's two
  inline scripts by hash (:data:`coursekit.pages.formgrade_page.SCRIPTS`): no inline
  event handler, no ``eval``, nothing from another origin;
- requests (``connect-src``) to this server only, images and fonts from it or
  ``data:``, styles from it or inline;
- no frame, object, form target or ``<base>``; the page may be framed only by
  this server's own pages (JupyterLab's formgrader panel).

Every other page of the server (JupyterLab, formgrader's lists) keeps Jupyter
server's own headers. It is switched on for every Jupyter server of the
course's environment by ``jupyter-config/coursekit.json``, which ``make venv``
installs into ``<venv>/etc/jupyter/jupyter_server_config.d/``.
"""

from __future__ import annotations

import logging

from tornado.web import OutputTransform

from coursekit.pages.formgrade_page import SCRIPTS
from coursekit.pages.sanitize import content_security_policy

log = logging.getLogger(__name__)

#: The path under the server's base URL that the policy covers.
GRADING_PAGES = "formgrader/submissions/"


def grading_page_policy(host, base_url):
    """The policy of the grading page served from ``host`` under ``base_url`` (which ends in "/")."""
    # A source without a scheme takes the page's own (http, or https behind a proxy).
    static = f"{host}{base_url}formgrader/static/"
    return content_security_policy(
        scripts=SCRIPTS.values(), script_sources=[static], connect="'self'", images="'self' data:",
        styles="'self' 'unsafe-inline'", fonts="'self' data:", extra=["frame-ancestors 'self'"])


class GradingPagePolicy(OutputTransform):
    """Sets the policy on responses for formgrader's grading page; leaves every other response alone."""

    base_url = "/"

    def __init__(self, request):
        super().__init__(request)
        self.request = request

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        if self.request.path.startswith(self.base_url + GRADING_PAGES):
            headers["Content-Security-Policy"] = grading_page_policy(self.request.host, self.base_url)
            headers["X-Content-Type-Options"] = "nosniff"
            headers["Referrer-Policy"] = "no-referrer"
        return status_code, headers, chunk


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    """Add the policy to the server's responses."""
    transform = type("GradingPagePolicy", (GradingPagePolicy,), {"base_url": serverapp.base_url})
    serverapp.web_app.add_transform(transform)
    serverapp.log.info(f"coursekit: Content-Security-Policy on {serverapp.base_url}{GRADING_PAGES}")
