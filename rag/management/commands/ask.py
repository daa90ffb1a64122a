"""`manage.py ask SLUG "question" [--k N] [--model NAME] [--policy P]`: the answer API's
answer, streamed to a terminal, then its sources and what the support check found."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.management.commands._base import get_tenant
from tenants.services.provisioning import TenantNotActive
from tenants.services.quotas import QuotaExceeded

from ...filters import FilterError
from ...generation.gate import GeneratorBusy
from ...generation.model import GenerationModelMissing, ModelUnavailable
from ...generation.registry import UnknownModel, model_names
from ...services.answer import answer_prepare
from ...services.grounding import POLICIES


class Command(BaseCommand):
    help = "Ask a question over a tenant's documents; the answer streams as it is generated."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("question")
        parser.add_argument("--k", type=int, default=5, help="sources to retrieve (1-20)")
        parser.add_argument("--max-tokens", type=int, default=None)
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument(
            "--model",
            default=None,
            help=f"a registered model ({', '.join(model_names())}); default: the tenant's",
        )
        parser.add_argument(
            "--policy", choices=POLICIES, default=None, help="default: the tenant's answer_policy"
        )

    def handle(self, *args, slug, question, k, max_tokens, temperature, model, policy, **options):
        if not 1 <= k <= 20:
            raise CommandError("--k must be between 1 and 20.")
        if not question.strip():
            raise CommandError("The question is empty.")
        try:
            session = answer_prepare(
                tenant=get_tenant(slug),
                question=question,
                k=k,
                max_tokens=max_tokens,
                temperature=temperature,
                source="cli",
                model=model,
                policy=policy,
            ).start()
        except (
            FilterError,
            QuotaExceeded,
            GeneratorBusy,
            TenantNotActive,
            UnknownModel,
            ModelUnavailable,
            GenerationModelMissing,
        ) as exc:
            raise CommandError(str(exc)) from exc
        for delta in session.deltas():
            self.stdout.write(delta, ending="")
            self.stdout.flush()
        self.stdout.write("\n")
        result = session.result()
        if result["citations"]:
            self.stdout.write("\nSources:")
            for c in result["citations"]:
                snippet = c["snippet"][:120].replace("\n", " ")
                self.stdout.write(f"  [{c['n']}] {c['title'] or c['document_id']}: {snippet}")
        if result["declined"]:
            self.stdout.write("\ndeclined: the documents do not answer this question")
        else:
            self.stdout.write(
                f"\ngrounded: {result['grounded']:.0%} of the claims supported "
                f"(policy {result['policy']})"
            )
            for s in result["sentences"]:
                if s["claim"] and not s["supported"]:
                    state = "removed" if not s["kept"] else "unsupported"
                    self.stdout.write(f"  {state}: {s['text'][:120]}")
        usage = result["usage"]
        self.stdout.write(
            f"\nusage: {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion "
            f"= {usage['total_tokens']} tokens ({result['model']})"
        )
        timings = ", ".join(f"{name} {value:.0f}" for name, value in result["timings"].items())
        self.stdout.write(f"timings (ms): {timings}")
