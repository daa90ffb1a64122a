"""The console's Content-Security-Policy: its pages run only the console's own static scripts
(no inline script, no inline event handler, no eval), apply only its own stylesheets, load
nothing from elsewhere and cannot be framed.

Document titles and text, metadata, questions and model answers are tenant-controlled text
that these pages show to staff. Django's autoescaping keeps that text text; the policy is the
second wall, so that one missed escape (a `|safe`, a script that builds HTML) still cannot run
script in a staff session. Django 5.2 has no CSP support of its own, and one fixed header
needs no dependency.

Only the console gets it: the API answers JSON, and the API docs page (drf-spectacular's
Swagger UI) runs inline script of its own.
"""

from __future__ import annotations

HEADER = "Content-Security-Policy"
POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
# Where config/urls.py mounts the console (404s under it are console pages too).
CONSOLE_PREFIX = "/console/"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path_info.startswith(CONSOLE_PREFIX):
            response.headers.setdefault(HEADER, POLICY)
        return response
