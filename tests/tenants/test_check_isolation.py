"""`manage.py check_isolation`: the shipped isolation audit.

Green over real tenants in every mode (a silo on a second server too), then red for each rule,
each broken for real in a throwaway placement, with the finding naming the right placement,
table and rule. Whatever a test breaks in the shared pool tables or the app role it restores
in a finally block: the rest of the suite depends on both.
"""

import io
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from config import embedded
from rag.models import Document, EvalSet
from tenants import placement
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.rls import CURRENT_TENANT_SQL
from tests.helpers import connect, service_env, superuser

ROOT = Path(__file__).resolve().parents[2]
APP = settings.DATABASES["default"]["USER"]
PLATFORM_DB = settings.DATABASES["owner"]["NAME"]
AUDIT_APPLICATION = "tenantry check_isolation"


def audit(*args) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("check_isolation", "--json", *args, stdout=out, stderr=io.StringIO())
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue())


def manage(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check_isolation", *args],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def tables() -> list[str]:
    models = apps.get_app_config("rag").get_models(include_auto_created=True)
    return sorted({m._meta.db_table for m in models})


def add_document(tenant, title: str) -> Document:
    with tenant_context(tenant):
        return Document.objects.create(title=title, content_hash=uuid.uuid4().hex * 2)


def local_silo_label(tenant) -> str:
    options = settings.DATABASES["default"]["OPTIONS"]
    return f"silo:{tenant.slug}@{options['host']}:{options['port']}/{tenant.silo_database}"


def remote_label(tenant, server) -> str:
    return f"silo:{tenant.slug}@{server.socket_dir}:{server.port}/{tenant.silo_database}"


def remote_superuser(server, dbname: str) -> psycopg.Connection:
    dsn = f"host={server.socket_dir} port={server.port} user={embedded.SUPERUSER} dbname={dbname}"
    return psycopg.connect(dsn, autocommit=True)


def snapshot(conn, schema: str) -> list[tuple]:
    """Every row's identity and tenant in the tables probes write to, behind RLS (superuser)."""
    return [
        conn.execute(
            f'SELECT id::text, tenant_id, title FROM "{schema}".rag_document ORDER BY 1'
        ).fetchall(),
        conn.execute(
            f'SELECT id, tenant_id, version FROM "{schema}".rag_corpusversion ORDER BY 1'
        ).fetchall(),
    ]


def snapshots(bridge, silo, remote, server) -> list:
    with (
        superuser(PLATFORM_DB) as platform,
        superuser(silo.silo_database) as local,
        remote_superuser(server, remote.silo_database) as far,
    ):
        return [
            snapshot(platform, "public"),
            snapshot(platform, bridge.schema_name),
            snapshot(local, "public"),
            snapshot(far, "public"),
        ]


def audit_connections(server=None) -> int:
    """Backends the audit still holds on a server, after a moment for closed ones to exit."""
    for _ in range(20):
        conn = remote_superuser(server, "postgres") if server else superuser()
        with conn:
            count = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                [AUDIT_APPLICATION],
            ).fetchone()[0]
        if not count:
            return 0
        time.sleep(0.1)
    return count


def test_green_over_pool_bridge_silo_and_a_silo_on_another_server(make_tenant, second_server):
    pools = [make_tenant("pool"), make_tenant("pool")]
    bridge = make_tenant("bridge")
    silo = make_tenant("silo")
    remote = make_tenant("silo", silo_dsn=second_server.url(embedded.OWNER_ROLE, "postgres"))
    for tenant in (*pools, bridge, silo, remote):
        add_document(tenant, tenant.slug)
    before = snapshots(bridge, silo, remote, second_server)

    code, report = audit()

    assert code == 0, report["findings"]
    assert report["clean"] is True and report["findings"] == []
    names = tables()
    assert report["tables"] == names and {"rag_document", "rag_chunk"} <= set(names)
    placements = {p["placement"]: p for p in report["placements"]}
    mine = [
        "pool",
        f"bridge:{bridge.slug}",
        local_silo_label(silo),
        remote_label(remote, second_server),
    ]
    assert set(mine) <= set(placements)
    assert report["tables_checked"] == len(names) * report["placements_checked"]
    for label in mine:
        result = placements[label]
        assert result["reachable"] and result["tables"] == len(names) and result["findings"] == 0
        outcomes = result["probe_outcomes"]
        for probe in ("rows_unset", "rows_empty", "rows_other_tenant", "rows_of_others_bound"):
            assert outcomes[probe] == {"no_rows": len(names)}, (label, probe)
        # A malformed setting raises instead of matching: it shows nothing, which is a pass.
        assert outcomes["rows_malformed"] == {"refused_invalid_uuid": len(names)}
        assert outcomes["rows_injection"] == {"refused_invalid_uuid": len(names)}
        assert outcomes["insert_other_tenant"] == {"refused_rls": len(names)}
    for tenant, label in zip((bridge, silo, remote), mine[1:], strict=True):
        assert placements[label]["tenant"] == tenant.slug
        # Its document and the corpus version the trigger made: the only tables with rows.
        assert placements[label]["probe_outcomes"]["update_other_tenant"] == {"refused_rls": 2}
        not_run = {
            n["table"]
            for n in report["probes_not_run"]
            if n["placement"] == label and n["probe"] == "update_other_tenant"
        }
        assert not_run == set(names) - {"rag_document", "rag_corpusversion"}
        assert {n["reason"] for n in report["probes_not_run"] if n["placement"] == label} == {
            "no rows"
        }
    assert placements["pool"]["tenant"] is not None

    # It changed no row, and holds no connection anywhere once done.
    assert snapshots(bridge, silo, remote, second_server) == before
    assert audit_connections() == 0 and audit_connections(second_server) == 0

    proc = manage()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"bridge:{bridge.slug}: {len(names)} tables, " in proc.stdout
    assert f"{remote_label(remote, second_server)}: {len(names)} tables, " in proc.stdout
    assert proc.stdout.rstrip().endswith("tables: clean.")


Q = CURRENT_TENANT_SQL
# (statements run as the owner in the bridge schema {s}, findings expected as (rule, table or
# object)); each breaks one rule for real.
OWNER_BREAKS = {
    "rls_not_forced": (
        ["ALTER TABLE {s}.rag_document NO FORCE ROW LEVEL SECURITY"],
        {("rls_not_forced", "rag_document")},
    ),
    "rls_not_enabled": (
        ["ALTER TABLE {s}.rag_chunk DISABLE ROW LEVEL SECURITY"],
        # Without RLS nothing stops a row naming another tenant either.
        {("rls_not_enabled", "rag_chunk"), ("probe_insert_other_tenant_allowed", "rag_chunk")},
    ),
    "policy_missing": (
        ["DROP POLICY tenant_isolation ON {s}.rag_querylog"],
        {("policy_missing", "rag_querylog")},
    ),
    "policy_missing_with_check": (
        [
            "DROP POLICY tenant_isolation ON {s}.rag_document",
            f"CREATE POLICY tenant_isolation ON {{s}}.rag_document USING (tenant_id = {Q})",
        ],
        {("policy_missing_with_check", "rag_document")},
    ),
    "policy_too_permissive_true": (
        ["CREATE POLICY peek ON {s}.rag_evalset FOR SELECT USING (true)"],
        {("policy_too_permissive", "rag_evalset")},
    ),
    "policy_too_permissive_no_tenant_setting": (
        [
            "CREATE POLICY anyone ON {s}.rag_evalquestion "
            "USING (tenant_id IS NOT NULL) WITH CHECK (tenant_id IS NOT NULL)"
        ],
        {
            ("policy_too_permissive", "rag_evalquestion"),
            ("probe_insert_other_tenant_allowed", "rag_evalquestion"),
        },
    ),
    "policy_too_permissive_or_true": (
        [
            "DROP POLICY tenant_isolation ON {s}.rag_answercacheentry",
            f"CREATE POLICY tenant_isolation ON {{s}}.rag_answercacheentry "
            f"USING (tenant_id = {Q} OR true) WITH CHECK (tenant_id = {Q})",
        ],
        {
            ("policy_too_permissive", "rag_answercacheentry"),
            ("policy_missing", "rag_answercacheentry"),
        },
    ),
    "truncate_granted": (
        [f"GRANT TRUNCATE ON {{s}}.rag_document TO {APP}"],
        {("truncate_granted", "rag_document")},
    ),
    "table_missing": (["DROP TABLE {s}.rag_evalrun"], {("table_missing", "rag_evalrun")}),
    "security_definer_function": (
        [
            "CREATE FUNCTION {s}.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
            "AS 'SELECT count(*) FROM {s}.rag_document'",
            f"GRANT EXECUTE ON FUNCTION {{s}}.peek() TO {APP}",
        ],
        {("security_definer_function", "{schema}.peek()")},
    ),
    "readable_view": (
        [
            "CREATE VIEW {s}.all_documents AS SELECT * FROM {s}.rag_document",
            f"GRANT SELECT ON {{s}}.all_documents TO {APP}",
        ],
        {("readable_view", "{schema}.all_documents")},
    ),
    "readable_materialized_view": (
        [
            "CREATE MATERIALIZED VIEW {s}.titles AS SELECT title FROM {s}.rag_document",
            f"GRANT SELECT ON {{s}}.titles TO {APP}",
        ],
        {("readable_view", "{schema}.titles")},
    ),
}


def found(report: dict, label: str) -> set[tuple]:
    assert {f["placement"] for f in report["findings"]} <= {label}, report["findings"]
    return {(f["rule"], f["table"] or f["object"]) for f in report["findings"]}


@pytest.mark.parametrize("case", sorted(OWNER_BREAKS))
def test_each_broken_rule_in_a_bridge_schema_is_a_finding(make_tenant, case):
    statements, expected = OWNER_BREAKS[case]
    tenant = make_tenant("bridge")
    schema = tenant.schema_name
    with connect("owner") as owner:
        for statement in statements:
            owner.execute(statement.format(s=f'"{schema}"'))

    code, report = audit("--tenant", tenant.slug)

    assert code == 1
    assert found(report, f"bridge:{tenant.slug}") == {
        (rule, where.format(schema=schema)) for rule, where in expected
    }
    # The schema is dropped with the tenant by the `pg` fixture.


def test_a_table_owned_by_the_app_role_is_a_finding(make_tenant):
    tenant = make_tenant("bridge")
    table = f'"{tenant.schema_name}".rag_document'
    with superuser(PLATFORM_DB) as su:
        su.execute(f"ALTER TABLE {table} OWNER TO {APP}")
        try:
            code, report = audit("--tenant", tenant.slug)
        finally:
            su.execute(f"ALTER TABLE {table} OWNER TO {embedded.OWNER_ROLE}")
    assert code == 1
    assert found(report, f"bridge:{tenant.slug}") == {("owner_is_app_role", "rag_document")}


@pytest.mark.parametrize(
    ("attribute", "rule"),
    [("BYPASSRLS", "app_role_bypassrls"), ("SUPERUSER", "app_role_superuser")],
)
def test_an_app_role_that_bypasses_rls_is_a_finding(make_tenant, attribute, rule):
    tenant = make_tenant("bridge")
    with superuser() as su:
        su.execute(f"ALTER ROLE {APP} {attribute}")
        try:
            code, report = audit("--tenant", tenant.slug)
        finally:
            su.execute(f"ALTER ROLE {APP} NO{attribute}")
        assert su.execute(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", [APP]
        ).fetchone() == (False,)
    assert code == 1
    findings = found(report, f"bridge:{tenant.slug}")
    assert (rule, f"role {APP}") in findings
    # Row-level security no longer applies to the role, and the live probes see it too.
    assert ("probe_insert_other_tenant_allowed", "rag_document") in findings
    assert {r for r, _ in findings} == {rule, "probe_insert_other_tenant_allowed"}


def test_live_probes_see_the_rows_a_loose_policy_lets_through(make_tenant):
    tenant = make_tenant("bridge")
    schema = f'"{tenant.schema_name}"'
    with tenant_context(tenant):
        EvalSet.objects.create(name="ours")
    with superuser(PLATFORM_DB) as su:
        # Another tenant's row in the schema: the bound tenant must never see it.
        su.execute(
            f"INSERT INTO {schema}.rag_evalset (tenant_id, name, description) "
            "VALUES (%s, 'theirs', '')",
            [uuid.uuid4()],
        )
        rows = f"SELECT id, tenant_id, name FROM {schema}.rag_evalset ORDER BY id"
        before = su.execute(rows).fetchall()
    assert audit("--tenant", tenant.slug)[0] == 0

    with connect("owner") as owner:
        owner.execute(f"DROP POLICY tenant_isolation ON {schema}.rag_evalset")
        # RLS stays enabled and forced: only the policy is loose.
        owner.execute(f"CREATE POLICY tenant_isolation ON {schema}.rag_evalset USING (true)")
    code, report = audit("--tenant", tenant.slug)

    assert code == 1
    label = f"bridge:{tenant.slug}"
    assert {f["table"] for f in report["findings"]} == {"rag_evalset"}
    assert found(report, label) == {
        ("policy_too_permissive", "rag_evalset"),
        ("policy_missing", "rag_evalset"),
        ("probe_rows_visible", "rag_evalset"),
        ("probe_insert_other_tenant_allowed", "rag_evalset"),
        ("probe_update_other_tenant_allowed", "rag_evalset"),
    }
    visible = {f["probe"]: f["detail"] for f in report["findings"] if f["probe"]}
    for probe in ("rows_unset", "rows_empty", "rows_malformed", "rows_injection"):
        assert visible[probe].startswith("2 rows visible"), visible[probe]
    assert visible["rows_other_tenant"].startswith("2 rows visible")
    assert visible["rows_of_others_bound"].startswith("1 row visible")
    with superuser(PLATFORM_DB) as su:
        assert su.execute(rows).fetchall() == before  # the probes' writes were rolled back


def test_a_broken_pool_table_fails_the_real_command(make_tenant):
    tenant = make_tenant("pool")
    with connect("owner") as owner:
        owner.execute("ALTER TABLE public.rag_documentsource NO FORCE ROW LEVEL SECURITY")
        try:
            proc = manage("--tenant", tenant.slug, "--json")
        finally:
            owner.execute("ALTER TABLE public.rag_documentsource FORCE ROW LEVEL SECURITY")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert [(f["placement"], f["table"], f["rule"]) for f in report["findings"]] == [
        ("pool", "rag_documentsource", "rls_not_forced")
    ]
    assert [p["tenant"] for p in report["placements"]] == [tenant.slug]


def test_a_readable_view_in_a_silo_on_another_server(make_tenant, second_server):
    tenant = make_tenant("silo", silo_dsn=second_server.url(embedded.OWNER_ROLE, "postgres"))
    owner_url = second_server.url(embedded.OWNER_ROLE, tenant.silo_database)
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute("CREATE VIEW all_chunks AS SELECT * FROM rag_chunk")
        owner.execute(f"GRANT SELECT ON all_chunks TO {APP}")

    code, report = audit("--tenant", tenant.slug)

    assert code == 1
    assert found(report, remote_label(tenant, second_server)) == {
        ("readable_view", "public.all_chunks")
    }


def test_an_unreachable_silo_is_a_finding_and_the_audit_goes_on(make_tenant):
    bridge = make_tenant("bridge")
    silo = make_tenant("silo")
    Tenant.objects.filter(pk=silo.pk).update(
        silo_dsn="postgresql://tenantry_owner:x@127.0.0.1:1/postgres"
    )
    placement.forget(silo)  # drop the aliases registered with the working settings
    try:
        code, report = audit()
    finally:
        Tenant.objects.filter(pk=silo.pk).update(silo_dsn="")
        placement.forget(silo)

    assert code == 1
    label = f"silo:{silo.slug}@127.0.0.1:1/{silo.silo_database}"
    assert [f["rule"] for f in report["findings"] if f["placement"] == label] == [
        "placement_unreachable"
    ]
    placements = {p["placement"]: p for p in report["placements"]}
    assert placements[label]["reachable"] is False
    assert placements["pool"]["reachable"] and placements["pool"]["findings"] == 0
    assert placements[f"bridge:{bridge.slug}"]["findings"] == 0
    assert placements[f"bridge:{bridge.slug}"]["tables"] == len(tables())


def test_an_unknown_tenant_is_a_usage_error(pg):
    with pytest.raises(CommandError, match="No tenant with slug 'nobody'") as raised:
        call_command("check_isolation", "--tenant", "nobody", stdout=io.StringIO())
    assert raised.value.returncode == 2
