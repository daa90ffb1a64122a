"""What the isolation audit found: findings, probes it could not run, and the report's forms.

Rule codes are stable: operators grep for them, alert on them and read them in
docs/check_isolation.md. Add codes; never rename one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

RULES = {
    "placement_unreachable": "the audit could not connect to the placement (owner or app role)",
    "table_missing": "a data-plane table is missing from the placement (or is not a table)",
    "rls_not_enabled": "row-level security is not enabled on the table",
    "rls_not_forced": "row-level security is not forced, so the table owner bypasses it",
    "policy_missing": "no permissive policy FOR ALL applies the tenant condition to the app role",
    "policy_missing_with_check": "the tenant policy has no WITH CHECK expression of its own",
    "policy_too_permissive": "a permissive policy applies an expression other than the tenant "
    "condition to the app role (permissive policies are OR'ed: it widens access)",
    "owner_is_app_role": "the table is owned by the app role (or a role it is a member of), "
    "which could switch row-level security off",
    "truncate_granted": "the app role may TRUNCATE the table; TRUNCATE ignores row-level security",
    "app_role_superuser": "the app role is a superuser: row-level security does not apply to it",
    "app_role_bypassrls": "the app role has BYPASSRLS: row-level security does not apply to it",
    "security_definer_function": "the app role can execute a SECURITY DEFINER function, which "
    "runs with its owner's rights",
    "readable_view": "the app role can read a view, materialized view or foreign table in a "
    "data-plane schema",
    "probe_rows_visible": "a live probe as the app role saw rows it must not see",
    "probe_insert_other_tenant_allowed": "an INSERT naming another tenant passed row-level "
    "security",
    "probe_update_other_tenant_allowed": "an UPDATE moving a row to another tenant passed "
    "row-level security",
    "probe_error": "a live probe failed in an unexpected way, so isolation is unverified",
}


@dataclass(frozen=True)
class Finding:
    placement: str
    rule: str
    detail: str
    table: str | None = None
    object: str | None = None
    probe: str | None = None

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown rule code {self.rule!r}")


@dataclass(frozen=True)
class ProbeNotRun:
    """A probe the audit could not run live; not a finding (the catalog rules still apply)."""

    placement: str
    table: str
    probe: str
    reason: str


@dataclass
class PlacementResult:
    placement: str
    mode: str
    tenant: str | None
    database: str
    schema: str
    reachable: bool = True
    tables: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    not_run: list[ProbeNotRun] = field(default_factory=list)
    # probe name -> outcome -> tables, e.g. {"rows_malformed": {"refused_invalid_uuid": 10}}
    outcomes: dict[str, Counter] = field(default_factory=dict)

    def record(self, probe: str, outcome: str) -> None:
        self.outcomes.setdefault(probe, Counter())[outcome] += 1

    @property
    def probes_run(self) -> int:
        return sum(sum(c.values()) for c in self.outcomes.values())

    def summary_line(self) -> str:
        who = f" (bound tenant {self.tenant})" if self.mode == "pool" and self.tenant else ""
        if not self.reachable:
            state = "UNREACHABLE"
        elif self.findings:
            state = f"{len(self.findings)} finding(s)"
        else:
            state = "clean"
        skipped = f", {len(self.not_run)} not run" if self.not_run else ""
        return (
            f"{self.placement}{who}: {len(self.tables)} tables, {self.probes_run} probes"
            f"{skipped}: {state}"
        )

    def as_dict(self) -> dict:
        return {
            "placement": self.placement,
            "mode": self.mode,
            "tenant": self.tenant,
            "database": self.database,
            "schema": self.schema,
            "reachable": self.reachable,
            "tables": len(self.tables),
            "findings": len(self.findings),
            "probes_run": self.probes_run,
            "probe_outcomes": {
                p: dict(sorted(c.items())) for p, c in sorted(self.outcomes.items())
            },
        }


@dataclass
class AuditReport:
    tables: list[str]
    results: list[PlacementResult] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    @property
    def not_run(self) -> list[ProbeNotRun]:
        return [n for r in self.results for n in r.not_run]

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict:
        return {
            "clean": self.clean,
            "placements_checked": len(self.results),
            "tables_checked": sum(len(r.tables) for r in self.results),
            "tables": self.tables,
            "placements": [r.as_dict() for r in self.results],
            "findings": [asdict(f) for f in self.findings],
            "probes_not_run": [asdict(n) for n in self.not_run],
            "skipped": self.skipped,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def as_text(self) -> str:
        lines = []
        if self.findings:
            lines.append("Findings:")
            for f in self.findings:
                where = " ".join(x for x in (f.table, f.object, f.probe and f"[{f.probe}]") if x)
                lines.append(f"  {f.placement}  {where or '-'}  {f.rule}: {f.detail}")
        if self.not_run:
            reasons = Counter(f"{n.probe}: {n.reason}" for n in self.not_run)
            lines.append("Probes not run (not findings; the catalog rules cover them):")
            lines += [f"  {count} x {reason}" for reason, count in sorted(reasons.items())]
        for skip in self.skipped:
            lines.append(f"Skipped tenant {skip['tenant']}: {skip['reason']}")
        tables = sum(len(r.tables) for r in self.results)
        verdict = f"{len(self.findings)} finding(s)" if self.findings else "clean"
        lines.append(f"Audited {len(self.results)} placement(s), {tables} tables: {verdict}.")
        return "\n".join(lines)
