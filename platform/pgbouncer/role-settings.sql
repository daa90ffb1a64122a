-- Behind PgBouncer in transaction mode a session setting stays on whichever server connection
-- ran it, so the app role's statement timeout is set on the role too: every server connection
-- starts with it (docs/pgbouncer.md, "Statement timeout"). The same 30 s as the default of
-- DB_STATEMENT_TIMEOUT_SECONDS; change both together.
-- Run after platform/postgres/roles.sql (compose.yaml mounts it as 20-..., after 10-roles.sql).
ALTER ROLE tenantry_app SET statement_timeout = '30s';
