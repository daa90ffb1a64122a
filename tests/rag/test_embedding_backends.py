"""The embedding backends (rag/embedders): what each computes, that the ONNX ones are built
here from the packaged model, and that a process on an ONNX backend never loads torch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import python_last_line

TEXTS = [
    "How many lanterns does the harbour keep lit through the winter?",
    "The harbour keeps forty lanterns lit from November to March, tended by two keepers.",
    "Row-level security lets PostgreSQL filter every query by the tenant bound to it.",
    "short",
    " ".join(["A long paragraph about tide tables and the ferry schedule."] * 30),
]


def _vectors(backend: str) -> np.ndarray:
    from rag.embedding import embed_texts

    return embed_texts(TEXTS, backend=backend)


def test_onnx_vectors_equal_torch_ones(pg):
    torch_vectors, onnx_vectors = _vectors("torch"), _vectors("onnx")
    assert onnx_vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(torch_vectors * onnx_vectors, axis=1)
    assert cosines.min() > 0.9999, cosines


def test_int8_vectors_stay_close_to_fp32_and_rank_alike(pg):
    fp32, int8 = _vectors("onnx"), _vectors("onnx-int8")
    cosines = np.sum(fp32 * int8, axis=1)
    assert cosines.min() > 0.97, cosines
    # The question's nearest passage is the same one under both.
    assert np.argmax(fp32[1:] @ fp32[0]) == np.argmax(int8[1:] @ int8[0]) == 0


def test_each_backend_keys_its_own_cache_entries():
    from rag.embedding import MODEL_ID, model_id

    assert model_id("torch") == MODEL_ID  # keys written before there were backends still hit
    assert len({model_id("torch"), model_id("onnx"), model_id("onnx-int8")}) == 3


def test_an_export_is_built_once_and_reused(pg):
    from rag.embedders.onnx_export import ensure_exported

    path = ensure_exported("onnx")
    built = path.stat().st_mtime_ns
    said = []
    assert ensure_exported("onnx", progress=said.append) == path
    assert path.stat().st_mtime_ns == built and said == []


def test_export_command_reports_the_model_file(pg):
    from io import StringIO

    from django.core.management import call_command

    from rag.embedders.onnx_export import model_file

    out = StringIO()
    call_command("embedding_export", "--backend", "onnx", stdout=out)
    assert str(model_file("onnx")) in out.getvalue()
    assert model_file("onnx").stat().st_size > 50_000_000  # the weights, not a stub


def test_unknown_backend_is_refused():
    from rag import embedders

    with pytest.raises(embedders.UnknownBackend):
        embedders.get("tensorflow")


def test_a_process_on_onnx_answers_searches_without_loading_torch(pg, make_tenant):
    """The web process's path: a search of an onnx tenant (query embedding and SQL) in a fresh
    interpreter, then the modules it holds."""
    tenant = make_tenant("pool")
    assert tenant.embedding_backend == "onnx"
    code = (
        "import django, sys; django.setup();"
        "from tenants.models import Tenant; from rag.services.search import search_run;"
        f"t = Tenant.objects.get(slug={tenant.slug!r});"
        "search_run(tenant=t, query='lanterns in the harbour', k=3, mode='hybrid');"
        "import rag.embedders as e; print(e.loaded(), [m for m in ('torch', "
        "'sentence_transformers', 'transformers') if m in sys.modules])"
    )
    out = python_last_line(code)
    assert out == "['onnx'] []"
