"""`/v1/chat/completions`, `/v1/embeddings` and `/v1/models` for OpenAI clients."""

from __future__ import annotations

import base64
import time
import uuid

from rest_framework.response import Response

from tenants.api.base import ANY_KEY, TenantAPIView
from tenants.api.quota import admit, quota_problem, with_headers
from tenants.models import ApiKeyScope
from tenants.services.quotas import QuotaExceeded, quota_admit
from tenants.services.usage import usage_record

from ...embedding import embed_texts
from ...generation.prompt import Turn
from ...generation.registry import model_names
from ...models import EMBEDDING_DIMENSIONS
from ...tokenizer import MODEL_MAX_TOKENS, count_tokens_batch
from ..answer import start_answer
from ..sse import EventStream, sse_event, sse_response
from .errors import OpenAIError, error_body, openai_exception_handler
from .schema import chat_schema, embeddings_schema, models_schema
from .serializers import ChatCompletionRequestSerializer, EmbeddingRequestSerializer

EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class OpenAIView(TenantAPIView):
    """Tenant-bound like every API view, with OpenAI-shaped errors."""

    def get_exception_handler(self):
        return openai_exception_handler


class ModelsView(OpenAIView):
    scopes = {"GET": ANY_KEY}

    @models_schema
    def get(self, request):
        created = 0
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "tenantry"}
            for name in [*model_names(), EMBEDDING_MODEL]
        ]
        return Response({"object": "list", "data": data})


class EmbeddingsView(OpenAIView):
    scopes = {"POST": ApiKeyScope.QUERY}

    @embeddings_schema
    def post(self, request):
        params = EmbeddingRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        dimensions = params.validated_data.get("dimensions")
        if dimensions not in (None, EMBEDDING_DIMENSIONS):
            raise OpenAIError(
                400,
                "invalid_dimensions",
                f"{EMBEDDING_MODEL} has {EMBEDDING_DIMENSIONS} dimensions.",
                param="dimensions",
            )
        texts = params.validated_data["input"]
        # Each input is one request against `embeddings_per_hour`, the batch admitted whole or
        # refused: the model's work grows with the inputs (256 of them took 13 s of CPU).
        try:
            rate_headers = quota_admit(
                tenant=request.user.tenant, kind="embeddings", amount=len(texts)
            )
        except QuotaExceeded as exc:
            raise quota_problem(exc) from exc
        vectors = embed_texts(texts, backend=request.user.tenant.embedding_backend)
        # The model reads at most MODEL_MAX_TOKENS word pieces per input (the rest is cut).
        tokens = sum(min(n + 2, MODEL_MAX_TOKENS) for n in count_tokens_batch(texts))
        usage_record(
            tenant=request.user.tenant,
            api_key=request.auth,
            kind="embeddings",
            requests=len(texts),
            embedding_tokens=tokens,
        )
        as_base64 = params.validated_data["encoding_format"] == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(vector.astype("<f4").tobytes()).decode()
                    if as_base64
                    else vector.tolist()
                ),
            }
            for i, vector in enumerate(vectors)
        ]
        body = {
            "object": "list",
            "data": data,
            "model": EMBEDDING_MODEL,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return with_headers(Response(body), rate_headers)


def openai_finish_reason(session) -> str:
    """OpenAI's clients know `stop` and `length`: a declined answer (the documents do not say)
    ends with `stop`, and says it in the `grounding` extension (`declined: true`)."""
    reason = session.stats.finish_reason
    return "stop" if reason == "declined" else reason


class ChatCompletionsView(OpenAIView):
    """Chat completions grounded in the tenant's documents.

    The last user message is the question that drives retrieval; earlier user and assistant
    messages are the conversation; system (or developer) messages are the application's
    instructions, added after Tenantry's own grounding rules. `model` names one of
    `/v1/models` (404 `model_not_found` otherwise); empty or absent: the tenant's default.
    """

    scopes = {"POST": ApiKeyScope.QUERY}

    @chat_schema
    def post(self, request):
        params = ChatCompletionRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        messages = data["messages"]
        rate_headers = admit(request, "answer")
        session = start_answer(
            request,
            {
                "question": messages[-1]["content"],
                "k": data["k"],
                "filter": data.get("filter"),
                "max_tokens": data.get("max_completion_tokens") or data.get("max_tokens"),
                "temperature": data.get("temperature"),
                "model": data.get("model"),
            },
            history=[
                Turn(m["role"], m["content"])
                for m in messages[:-1]
                if m["role"] in ("user", "assistant")
            ],
            instructions="\n".join(
                m["content"] for m in messages if m["role"] in ("system", "developer")
            ),
            source="openai",
        )
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not data.get("stream"):
            session.run()
            body = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": session.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": session.answer},
                        "finish_reason": openai_finish_reason(session),
                        "logprobs": None,
                    }
                ],
                "usage": session.usage(),
                "citations": [c.__dict__ for c in session.citations],
                "timings": session.tenant_timings(),
                "cached": session.cached is not None,
                "grounding": session.checked.grounding(),
            }
            return with_headers(Response(body), rate_headers)
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish_reason=None, **extra) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            body = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": session.model_name,
                "choices": [choice],
                **extra,
            }
            return sse_event(body)

        def events():
            yield chunk({"role": "assistant", "content": ""})
            for delta in session.deltas():
                yield chunk({"content": delta})
            yield chunk(
                {},
                openai_finish_reason(session),
                usage=session.usage(),
                citations=[c.__dict__ for c in session.citations],
                timings=session.tenant_timings(),
                grounding=session.checked.grounding(),
            )
            if include_usage:
                usage_chunk = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": session.model_name,
                    "choices": [],
                    "usage": session.usage(),
                }
                yield sse_event(usage_chunk)
            yield sse_event("[DONE]")

        def on_error(exc: Exception) -> bytes:
            return sse_event(error_body(500, "generation_failed", "Generation failed."))

        return sse_response(
            EventStream(events, close=session.close, on_error=on_error), rate_headers
        )
