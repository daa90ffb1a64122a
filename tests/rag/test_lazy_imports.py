"""Importing the task and API modules must not import the heavy ML libraries."""

from tests.helpers import python_last_line

HEAVY = ("torch", "sentence_transformers", "transformers", "llama_cpp", "onnxruntime", "onnx")


def test_importing_tasks_and_views_does_not_import_ml_libraries(pg):
    code = (
        "import django, sys; django.setup();"
        "import rag.tasks, rag.api.views, rag.services.ingest, rag.services.search, config.urls;"
        "import rag.services.answer, rag.api.answer, rag.api.openai.views, rag.generation.gate;"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = python_last_line(code)
    assert out == "[]"


def test_services_never_import_the_task_module(pg):
    """Imports point one way, tasks -> services: services hand work off by task name
    (rag.handoff). Loading every data-plane service and interface must not load rag.tasks."""
    code = (
        "import django, sys; django.setup();"
        "import rag.services.documents, rag.services.recovery, rag.services.evaluation;"
        "import rag.services.ingest, rag.services.querylog, rag.api.views, rag.api.answer;"
        "import console.views.documents, rag.management.commands.ingest, config.urls;"
        "print('rag.tasks' in sys.modules)"
    )
    out = python_last_line(code)
    assert out == "False"
