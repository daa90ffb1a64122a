"""`manage.py embedding_export [--backend NAME]`: build the ONNX models of the embedding
backends on this machine now (rag/embedders/onnx_export.py), rather than on first use.
`make run` runs it for EMBEDDING_BACKEND before starting any process; a model already built
for this model version and these libraries is kept."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ...embedders import ONNX, ONNX_INT8, TORCH
from ...embedders.onnx_export import ExportFailed, ensure_exported


class Command(BaseCommand):
    help = "Export the packaged embedding model to ONNX for the onnx backends (once per machine)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--backend",
            action="append",
            choices=[ONNX, ONNX_INT8],
            help="default: EMBEDDING_BACKEND",
        )

    def handle(self, *args, backend, **options):
        backends = backend or [settings.EMBEDDING_BACKEND]
        for name in backends:
            if name == TORCH:
                self.stdout.write("torch needs no export.")
                continue
            try:
                path = ensure_exported(name, progress=lambda line: self.stdout.write(f"  {line}"))
            except ExportFailed as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{name}: {path}")
