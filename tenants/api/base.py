"""The one base for tenant API views: authenticated, scoped, and bound to the tenant context.

Every view that touches a tenant's data derives from TenantAPIView, so handlers run inside
`tenant_context(request.user.tenant)` and cannot reach another tenant's rows.
"""

from __future__ import annotations

from contextlib import ExitStack

from rest_framework.views import APIView

from ..context import tenant_context


class TenantAPIView(APIView):
    # Scope per HTTP method; a view may override required_scope() instead.
    scopes: dict[str, str] = {}

    def required_scope(self, request) -> str | None:
        return self.scopes.get(request.method, self.scopes.get("*"))

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._tenant_stack = ExitStack()
        self._tenant_stack.enter_context(tenant_context(request.user.tenant))

    def handle_exception(self, exc):
        self._leave_tenant(exc)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        self._leave_tenant(None)
        return super().finalize_response(request, response, *args, **kwargs)

    def _leave_tenant(self, exc: BaseException | None) -> None:
        stack = getattr(self, "_tenant_stack", None)
        if stack is not None:
            self._tenant_stack = None
            if exc is None:
                stack.close()
            else:
                stack.__exit__(type(exc), exc, exc.__traceback__)
