"""The one base for tenant API views: authenticated, scoped per method, bound per unit of work.

Every `/api/` and `/v1/` view derives from TenantAPIView (a test walks the URL conf to prove
it). Authentication resolves the caller's tenant once; the view then reads and writes only
through services and selectors that take `tenant=` and bind it for their own short
transactions. No transaction spans the request: none is open while the model generates or a
response streams, so no lock or pooled server connection is held for seconds. A handler that
forgot and queried a data-plane model directly would raise TenantNotBound.

Scopes: `scopes` maps each handled method to the key scope it needs (`"*"` for all of them;
ANY_KEY for any key of the tenant). HEAD needs GET's scope, OPTIONS the scope of any method the
view handles; a handled method with no entry is refused (fail closed), so a new handler cannot
be reached by every key by omission.
"""

from __future__ import annotations

from rest_framework.views import APIView

ANY_KEY = "any key"
DERIVED_METHODS = frozenset({"HEAD", "OPTIONS"})


class TenantAPIView(APIView):
    scopes: dict[str, str] = {}

    def handled_methods(self) -> list[str]:
        return [
            m.upper()
            for m in self.http_method_names
            if hasattr(self, m) and m.upper() not in DERIVED_METHODS
        ]

    def required_scopes(self, request) -> frozenset[str] | None:
        """Scopes any one of which allows this request; None: any key of the tenant.

        An empty set allows no key. Methods the view does not handle need nothing: DRF
        answers them 405 without running any handler.
        """
        method = "GET" if request.method == "HEAD" else request.method
        if method == "OPTIONS":
            needed = [self._scope_for(m) for m in self.handled_methods()]
            if ANY_KEY in needed:
                return None
            return frozenset(scope for scope in needed if scope is not None)
        if method not in self.handled_methods():
            return None
        scope = self._scope_for(method)
        if scope == ANY_KEY:
            return None
        return frozenset() if scope is None else frozenset({scope})

    def _scope_for(self, method: str) -> str | None:
        return self.scopes.get(method, self.scopes.get("*"))
