-- Roles and databases for Tenantry on an external PostgreSQL (>= 15, with pgvector >= 0.8).
-- Run as a superuser. The embedded runtime does the same in config/embedded.py.
-- Replace the passwords; use the same app password on every server that hosts silo databases.

CREATE ROLE tenantry_owner LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD 'change-me-owner';
CREATE ROLE tenantry_app   LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD 'change-me-app';
-- Lets the owner end the app role's sessions when it drops a deleted silo database.
GRANT pg_signal_backend TO tenantry_owner;

CREATE DATABASE tenantry OWNER tenantry_owner;
-- Silo databases are cloned from this template, which carries pgvector (not a trusted extension).
CREATE DATABASE tenantry_template OWNER tenantry_owner IS_TEMPLATE true;

\connect tenantry
CREATE EXTENSION IF NOT EXISTS vector;
-- Under RLS an index serves a condition only if its operator is LEAKPROOF: full-text search.
ALTER FUNCTION ts_match_vq(tsvector, tsquery) LEAKPROOF;
REVOKE ALL ON DATABASE tenantry FROM PUBLIC;
-- TEMPORARY: chunks are COPYed into a temp table, then INSERTed under row-level security.
GRANT CONNECT, TEMPORARY ON DATABASE tenantry TO tenantry_app;
ALTER SCHEMA public OWNER TO tenantry_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

\connect tenantry_template
CREATE EXTENSION IF NOT EXISTS vector;
ALTER FUNCTION ts_match_vq(tsvector, tsquery) LEAKPROOF;
REVOKE ALL ON DATABASE tenantry_template FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE tenantry_template TO tenantry_app;
ALTER SCHEMA public OWNER TO tenantry_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
