"""Every HTML page the course writes or serves, and what makes student content in it inert.

:mod:`~coursekit.pages.sanitize` (student content cleaned, the
Content-Security-Policies), :mod:`~coursekit.pages.render` (Jinja2 pages: the
class report), :mod:`~coursekit.pages.feedback_page` and
:mod:`~coursekit.pages.formgrade_page` (nbconvert exporters),
:mod:`~coursekit.pages.formgrade_csp` and :mod:`~coursekit.pages.formgrade_order`
(Jupyter server extensions: formgrader's grading page policy, its one order), and the
templates in ``coursekit/pages/templates/``.
"""
