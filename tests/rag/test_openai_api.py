"""The official OpenAI Python client against a real gunicorn serving the platform."""

import numpy as np
import openai
import pytest

from tests.helpers import MODES

SMOLLM = "SmolLM2-135M-Instruct.Q8_0"

ZOO = (
    "# Lakeside zoo handbook\n\n## Zebras\n\nThe zebras at Lakeside zoo eat fresh meadow hay "
    "twice a day.\n\n## Penguins\n\nThe penguins are fed herring every morning."
)


@pytest.fixture
def client_for(web_server):
    def make(key: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=web_server.url + "/v1", max_retries=0)

    return make


@pytest.fixture
def zoo_key(make_tenant, make_key, upload, wait_done, worker):
    key = make_key(make_tenant("pool"))
    document_id = upload(key, text=ZOO, title="Zoo handbook").json()["id"]
    assert wait_done(key, document_id)["status"] == "ready"
    return key, document_id


def test_chat_completion(client_for, zoo_key):
    key, document_id = zoo_key
    completion = client_for(key).chat.completions.create(
        model=SMOLLM,
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "What do the zebras eat?"},
        ],
        max_tokens=16,
        temperature=0,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "SmolLM2-135M-Instruct.Q8_0"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert completion.model_extra["citations"][0]["document_id"] == document_id


def test_streaming_chat_completion(client_for, zoo_key):
    key, _ = zoo_key
    stream = client_for(key).chat.completions.create(
        model=SMOLLM,
        messages=[{"role": "user", "content": "What are the penguins fed?"}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 12
    assert chunks[-1].usage.total_tokens == (
        chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    )


def test_embeddings_match_the_retrieval_model(client_for, zoo_key):
    from rag.embedding import embed_texts

    key, _ = zoo_key
    client = client_for(key)
    texts = ["zebras eat hay", "penguins eat herring"]
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # base64 on the wire
    assert [d.index for d in response.data] == [0, 1]
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    assert got.shape == (2, 384)
    np.testing.assert_allclose(got, embed_texts(texts), atol=1e-5)
    assert response.usage.prompt_tokens > 0
    floats = client.embeddings.create(
        model="all-MiniLM-L6-v2", input="zebras eat hay", encoding_format="float"
    )
    np.testing.assert_allclose(floats.data[0].embedding, got[0], atol=1e-5)


def test_models_list(client_for, zoo_key):
    key, _ = zoo_key
    ids = {m.id for m in client_for(key).models.list()}
    assert ids == {SMOLLM, "gemma-3-270m-q4_k_m", "all-MiniLM-L6-v2"}


def test_errors_take_openai_shape(client_for, zoo_key):
    from tenants.services.apikeys import apikey_revoke

    key, _ = zoo_key
    with pytest.raises(openai.AuthenticationError) as denied:
        client_for("tnt_000000000000_not-a-real-key").models.list()
    assert denied.value.body["code"] == "invalid_api_key"
    assert denied.value.body["type"] == "authentication_error"
    apikey_revoke(prefix_or_id=key)
    with pytest.raises(openai.AuthenticationError) as revoked:
        client_for(key).embeddings.create(model="m", input="x")
    assert revoked.value.body["code"] == "api_key_revoked"


def test_bad_requests_take_openai_shape(client_for, zoo_key):
    key, _ = zoo_key
    # Well-formed messages whose last is not the user's: 422 (a schema cannot say it).
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client_for(key).chat.completions.create(
            model="m", messages=[{"role": "assistant", "content": "hi"}]
        )
    assert bad.value.body["type"] == "invalid_request_error"
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as tokens:
        client_for(key).embeddings.create(model="m", input=[[1, 2, 3]])
    assert tokens.value.body["param"] == "input"


@pytest.mark.parametrize("mode", MODES)
def test_chat_completions_are_tenant_scoped(
    mode, client_for, make_tenant, make_key, upload, wait_done, worker
):
    # Both tenants can answer the question; A's document says it better. B's answer is B's.
    a_key, b_key = make_key(make_tenant(mode)), make_key(make_tenant(mode))
    goats = "# Zoo goats\n\nThe goats at Lakeside zoo graze on fresh meadow hay every day."
    a_doc = upload(a_key, text=goats, title="Zoo goats").json()["id"]
    b_doc = upload(b_key, text="# Farm\n\nOur goats graze on clover.", title="Farm").json()["id"]
    assert wait_done(a_key, a_doc)["status"] == "ready"
    assert wait_done(b_key, b_doc)["status"] == "ready"
    completion = client_for(b_key).chat.completions.create(
        model=SMOLLM,
        messages=[{"role": "user", "content": "What do the goats graze on?"}],
        max_tokens=8,
    )
    assert {c["document_id"] for c in completion.model_extra["citations"]} == {b_doc}
    assert "meadow hay" not in completion.model_dump_json()
