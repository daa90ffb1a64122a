"""The isolation audit behind `manage.py check_isolation`: does PostgreSQL really keep every
tenant's rows apart, in every placement, right now?

For every data-plane table in every placement (the pool tables, each bridge schema, each silo
database wherever its server is) it checks the catalog as the owner role (catalog.py) and then
probes live as the app role, in transactions it always rolls back (probes.py). It is meant to
be run against production: it changes nothing, holds no transaction longer than one probe,
closes each silo's connections before the next, and keeps going past an unreachable placement.

    with IsolationAudit(tenant=None) as audit:
        for target in audit.targets:
            audit.check(target)
    audit.report.clean, audit.report.findings
"""

from __future__ import annotations

import uuid

import psycopg

from ... import placement
from ...models import Tenant
from .catalog import check_catalog
from .probes import ConnectionLost, run_probes
from .report import RULES, AuditReport, Finding, PlacementResult, ProbeNotRun
from .targets import Target, audit_targets, dataplane_tables

__all__ = ["RULES", "AuditReport", "Finding", "IsolationAudit", "PlacementResult", "ProbeNotRun"]


class IsolationAudit:
    """One audit run. `targets` are known up front (for a progress bar); `check` audits one
    and appends its result to `report`. The platform database's owner connection is shared by
    the pool and every bridge placement and closed with the audit; silo connections are
    closed as soon as their placement is done."""

    def __init__(self, *, tenant: Tenant | None = None):
        self.tables = dataplane_tables()
        self.targets, skipped = audit_targets(tenant=tenant)
        self.report = AuditReport(tables=self.tables, skipped=skipped)
        self._app_role = placement.app_role()
        # A tenant id no tenant has (uuid4 collisions aside), the same for every placement.
        self._other_id = uuid.uuid4()
        self._platform_owner: psycopg.Connection | None = None

    def __enter__(self) -> IsolationAudit:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._platform_owner is not None:
            self._platform_owner.close()
            self._platform_owner = None

    def check(self, target: Target) -> PlacementResult:
        subject = target.subject
        result = PlacementResult(
            placement=target.label,
            mode=target.mode,
            tenant=subject.slug if subject else None,
            database=target.database,
            schema=target.schema,
        )
        self.report.results.append(result)
        try:
            tables = self._catalog(target, result)
        except psycopg.OperationalError as exc:
            return self._unreachable(target, result, "owner", exc)
        if any(f.rule == "placement_unreachable" for f in result.findings):
            result.reachable = False
            return result
        result.tables = [t.name for t in tables]
        try:
            # A fresh connection per placement: see run_probes on why `unset` needs one.
            with psycopg.connect(autocommit=True, **target.app) as conn:
                run_probes(conn, target, tables, result, other_id=self._other_id)
        except (psycopg.OperationalError, ConnectionLost) as exc:
            return self._unreachable(target, result, "app", exc)
        return result

    def _catalog(self, target: Target, result: PlacementResult):
        if not target.shares_platform_database:
            with psycopg.connect(autocommit=True, **target.owner) as conn:
                return check_catalog(conn, target, self.tables, self._app_role, result)
        if self._platform_owner is None or self._platform_owner.closed:
            self._platform_owner = psycopg.connect(autocommit=True, **target.owner)
        return check_catalog(self._platform_owner, target, self.tables, self._app_role, result)

    def _unreachable(
        self, target: Target, result: PlacementResult, role: str, exc
    ) -> PlacementResult:
        if role == "owner" and target.shares_platform_database:
            self.close()  # a broken shared connection is reopened by the next placement
        result.reachable = False
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.findings.append(
            Finding(
                target.label,
                "placement_unreachable",
                f"as the {role} role: {message}",
                object=f"database {target.database}",
            )
        )
        return result
