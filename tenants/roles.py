"""The app role must not be able to bypass row-level security; refuse to run if it can.

Checked on every new app-role connection (web, workers, commands; a pooled one once), so a
misconfigured DATABASE_URL pointing at a superuser or a BYPASSRLS role fails loudly instead of
leaking. The same first statement sets the connection's statement timeout.
"""

from __future__ import annotations

import weakref

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver

# One round trip per new connection: the role check, and the statement timeout set for the
# session (a setting, not the `options` startup parameter, which PgBouncer refuses).
NEW_CONNECTION_SQL = (
    "SELECT rolsuper OR rolbypassrls, rolname, set_config('statement_timeout', %s, false) "
    "FROM pg_roles WHERE rolname = current_user"
)


class UnsafeDatabaseRole(ImproperlyConfigured):
    pass


def check_role(connection) -> None:
    """Refuse an unsafe role; and bound the session's statements (DB_STATEMENT_TIMEOUT_SECONDS)."""
    timeout_ms = str(int(settings.DB_STATEMENT_TIMEOUT_SECONDS) * 1000)
    with connection.cursor() as cursor:
        cursor.execute(NEW_CONNECTION_SQL, [timeout_ms])
        unsafe, role, _ = cursor.fetchone()
    if unsafe:
        raise UnsafeDatabaseRole(
            f"The app database role {role!r} is a superuser or has BYPASSRLS: row-level "
            "security would not protect tenants. Use a role like tenantry_app "
            "(see README, 'Database roles')."
        )


# Connections already checked. Django sends connection_created each time a pooled alias takes
# a connection from its pool; the check (and the session's timeout) holds for the connection's
# life, so it is made once per connection, not once per request.
_checked: weakref.WeakSet = weakref.WeakSet()


@receiver(connection_created)
def _check_new_connection(sender, connection, **kwargs) -> None:
    if connection.alias == "owner" or connection.alias.startswith("owner_"):
        return
    if connection.connection in _checked:
        return
    check_role(connection)
    _checked.add(connection.connection)


def assert_app_role_cannot_bypass_rls() -> None:
    """Open the app connection now so a bad role stops the server before it serves.

    The connection is closed again: servers fork after this and must not share its socket.
    """
    connections["default"].ensure_connection()
    connections["default"].close()
    # A pool (DB_POOL) keeps its connections and threads: they must not cross the fork either.
    if getattr(connections["default"], "pool", None) is not None:
        connections["default"].close_pool()
