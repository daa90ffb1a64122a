"""Catalog rules, read as the owner role from pg_class, pg_policy, pg_roles and pg_proc.

The policy rule is an exact comparison with the condition tenants/rls.py installs, as
PostgreSQL deparses it, not a search for `tenant_id` in the text: `tenant_id = ... OR true`
mentions both names and lets everything through. Any other permissive expression that applies
to the app role is a finding for a person to judge, because permissive policies are OR'ed and
one loose policy opens the table whatever the others say. Restrictive policies are AND'ed and
can only narrow access, so they are not judged.

Views: any view, materialized view or foreign table the app role can read (USAGE on its schema
and SELECT on any column) in the placement's schemas is a finding, whatever it selects from.
Whether a view leaks depends on things a dependency walk through pg_depend/pg_rewrite cannot
see: its owner (a view runs with its owner's rights, and a superuser or BYPASSRLS owner skips
row-level security), whether it is materialized (a matview has no policies and holds the rows
its last REFRESH saw) and the functions it calls (pg_depend does not look inside a function's
body). The data plane needs no views, so flagging every readable one is both precise and cheap.
Bridge placements search their own schema; silo placements every schema of their database; the
pool every schema of the platform database but the bridge schemas (each audited on its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from .report import Finding, PlacementResult
from .targets import Target

# tenants.rls.CURRENT_TENANT_SQL compared with tenant_id, as pg_get_expr prints it.
TENANT_CONDITION = (
    "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"
)

APP_ROLE_SQL = """
WITH RECURSIVE member_of(oid) AS (
    SELECT oid FROM pg_roles WHERE rolname = %(app)s
    UNION
    SELECT m.roleid FROM pg_auth_members m JOIN member_of ON m.member = member_of.oid
)
SELECT r.oid, r.rolsuper, r.rolbypassrls, (SELECT array_agg(oid) FROM member_of)
FROM pg_roles r WHERE r.rolname = %(app)s
"""

TABLES_SQL = """
SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relowner,
       pg_get_userbyid(c.relowner), has_table_privilege(%(app)s, c.oid, 'TRUNCATE'),
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
               AND a.attname = 'tenant_id' AND NOT a.attisdropped)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
"""

POLICIES_SQL = """
SELECT c.relname, p.polname, p.polcmd, p.polpermissive, p.polroles,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
ORDER BY c.relname, p.polname
"""

# Schemas a placement's functions and views are searched in (see the module docstring).
SCHEMA_SCOPE_SQL = """
    AND has_schema_privilege(%(app)s, n.oid, 'USAGE')
    AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
    AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY(%(schemas)s::text[]))
    AND NOT n.nspname = ANY(%(excluded)s::text[])
"""

DEFINER_FUNCTIONS_SQL = (
    """
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
       pg_get_userbyid(p.proowner)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND p.proowner <> %(app_oid)s::oid
  AND has_function_privilege(%(app)s, p.oid, 'EXECUTE')
"""
    + SCHEMA_SCOPE_SQL
    + " ORDER BY 1, 2"
)

READABLE_VIEWS_SQL = (
    """
SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm', 'f') AND has_any_column_privilege(%(app)s, c.oid, 'SELECT')
"""
    + SCHEMA_SCOPE_SQL
    + " ORDER BY 1, 2"
)

_KINDS = {"v": "view", "m": "materialized view", "f": "foreign table"}


@dataclass(frozen=True)
class TableInfo:
    name: str
    has_tenant_id: bool


def check_catalog(
    conn: psycopg.Connection, target: Target, tables: list[str], app: str, result: PlacementResult
) -> list[TableInfo]:
    """Record catalog findings in `result`; return the tables present, for the probes."""
    finding = _reporter(target, result)
    role = conn.execute(APP_ROLE_SQL, {"app": app}).fetchone()
    if role is None:
        finding("placement_unreachable", f"the app role {app} does not exist on this server")
        return []
    app_oid, superuser, bypassrls, member_of = role
    app_roles = set(member_of)
    if superuser:
        finding("app_role_superuser", f"{app} is a superuser", object=f"role {app}")
    if bypassrls:
        finding("app_role_bypassrls", f"{app} has BYPASSRLS", object=f"role {app}")

    params = {"app": app, "schema": target.schema, "tables": tables}
    present, seen = {}, set()
    for name, kind, enabled, forced, owner_oid, owner, truncate, has_tenant_id in conn.execute(
        TABLES_SQL, params
    ):
        seen.add(name)
        if kind not in ("r", "p"):
            finding(
                "table_missing", f"{target.schema}.{name} is not a table (relkind {kind})", name
            )
            continue
        present[name] = TableInfo(name, has_tenant_id)
        if not enabled:
            finding("rls_not_enabled", "ROW LEVEL SECURITY is disabled", name)
        if not forced:
            finding("rls_not_forced", "FORCE ROW LEVEL SECURITY is off", name)
        if owner_oid in app_roles:
            via = "" if owner_oid == app_oid else f" ({app} is a member of it)"
            finding("owner_is_app_role", f"owned by {owner}{via}", name)
        elif truncate and not superuser:  # a superuser may do anything: reported once above
            finding("truncate_granted", f"{app} has TRUNCATE on it", name)
    for name in tables:
        if name not in seen:
            finding("table_missing", f"no table {target.schema}.{name}", name)

    _check_policies(conn.execute(POLICIES_SQL, params).fetchall(), present, app_roles, finding)
    if not superuser:
        _check_objects(conn, target, app, app_oid, finding)
    return [present[name] for name in tables if name in present]


def _check_policies(rows, present: dict, app_roles: set, finding) -> None:
    expected = _normalise(TENANT_CONDITION)
    by_table: dict[str, list] = {name: [] for name in present}
    for table, *policy in rows:
        if table in by_table:
            by_table[table].append(policy)
    for table, policies in by_table.items():
        tenant_policies = []
        for name, cmd, permissive, roles, using, check in policies:
            if not permissive or not (0 in roles or app_roles & set(roles)):
                continue
            for clause, expr in (("USING", using), ("WITH CHECK", check)):
                if expr is not None and _normalise(expr) != expected:
                    finding(
                        "policy_too_permissive",
                        f"permissive policy {name} (FOR {_COMMANDS[cmd]}) has {clause} ({expr})",
                        table,
                        object=f"policy {name}",
                    )
            if cmd == "*" and using is not None and _normalise(using) == expected:
                tenant_policies.append((name, check))
        if not tenant_policies:
            finding(
                "policy_missing",
                f"no permissive policy FOR ALL with USING {TENANT_CONDITION} applies to the "
                "app role",
                table,
            )
        elif all(check is None for _, check in tenant_policies):
            names = ", ".join(name for name, _ in tenant_policies)
            finding(
                "policy_missing_with_check",
                f"policy {names} has USING but no WITH CHECK (PostgreSQL then reuses USING; "
                "the platform states both so a later USING change cannot open writes)",
                table,
                object=f"policy {names}",
            )


_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def _check_objects(conn, target: Target, app: str, app_oid: int, finding) -> None:
    params = {
        "app": app,
        "app_oid": app_oid,
        "schemas": list(target.object_schemas) if target.object_schemas is not None else None,
        "excluded": list(target.excluded_schemas),
    }
    for schema, name, args, owner in conn.execute(DEFINER_FUNCTIONS_SQL, params):
        finding(
            "security_definer_function",
            f"{app} can execute it; it runs as {owner}",
            object=f"{schema}.{name}({args})",
        )
    for schema, name, kind, owner in conn.execute(READABLE_VIEWS_SQL, params):
        finding(
            "readable_view",
            f"{app} can read this {_KINDS[kind]} owned by {owner}",
            object=f"{schema}.{name}",
        )


def _normalise(expr: str) -> str:
    # Deparsed text differs only in layout and redundant parentheses between versions.
    return re.sub(r"[\s()]", "", expr).lower()


def _reporter(target: Target, result: PlacementResult):
    def finding(rule: str, detail: str, table: str | None = None, **extra) -> None:
        result.findings.append(
            Finding(placement=target.label, rule=rule, detail=detail, table=table, **extra)
        )

    return finding
