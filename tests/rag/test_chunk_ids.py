"""Chunk ids a tenant sees carry nothing about other tenants (issue 12).

Ids used to come from one identity sequence shared by every pool tenant, so a tenant could
subtract two of its own ids and count the chunks its neighbours ingested in between. They are
now random, drawn by PostgreSQL as the column default; migration 0008 renumbers existing
chunks; and the chunk store draws again when a random id collides.
"""

from __future__ import annotations

import itertools
import uuid

import numpy as np
import pytest
from django.conf import settings
from psycopg import sql
from psycopg.errors import UniqueViolation

from rag.chunking import ChunkDraft
from rag.models import RANDOM_CHUNK_ID_SQL, AnswerCacheEntry, Chunk, Document, QueryLog
from rag.services.chunk_store import ID_ATTEMPTS, chunks_replace
from tenants import placement
from tenants.context import data_alias, tenant_context
from tenants.services.dataplane import dataplane_migrate
from tests.helpers import connect, superuser

JS_SAFE = 2**53
BEFORE_RANDOM_IDS = "0007_gin_without_pending_list"


def _guide(topic: str, sections: int) -> str:
    """A Markdown document of `sections` headed sections, one chunk each (each longer than
    CHUNK_MIN_TOKENS, so none is joined with its neighbour)."""
    parts = [f"# {topic.title()} notes"]
    for n in range(sections):
        parts.append(
            f"## {topic} part {n}\n\nThe {topic} keeper wrote entry {n} about {topic} "
            f"number {n}, noting its colour, its weight and where it was found. The entry "
            f"also records the weather that day, who came along on the walk, how long the "
            f"search for {topic} number {n} took, and which of the old maps turned out to be "
            "right about the path through the marsh and the old footbridge by the mill."
        )
    return "\n\n".join(parts)


def _ingest(upload, wait_done, key: str, text: str) -> dict:
    response = upload(key, text=text)
    assert response.status_code == 202, response.content
    done = wait_done(key, response.json()["id"])
    assert done["status"] == "ready", done
    return done


def _ids_by_document(tenant, document_ids: list[str]) -> list[list[int]]:
    """The tenant's chunk ids of each document, in ordinal order."""
    with tenant_context(tenant):
        return [
            list(
                Chunk.objects.filter(document_id=doc)
                .order_by("ordinal")
                .values_list("id", flat=True)
            )
            for doc in document_ids
        ]


def test_pool_chunk_ids_tell_nothing_about_the_neighbours_ingestion(
    make_tenant, make_key, upload, wait_done, search, worker
):
    """With the shared sequence, A's ids rose one by one in ordinal order and the gap between
    A's two documents was exactly B's chunks plus one: every assertion here failed then."""
    a, b = make_tenant("pool"), make_tenant("pool")
    key_a, key_b = make_key(a), make_key(b)
    first = _ingest(upload, wait_done, key_a, _guide("heron", 6))
    neighbours = sum(
        _ingest(upload, wait_done, key_b, _guide(topic, 3))["chunk_count"]
        for topic in ("beetle", "walnut", "comet")
    )
    second = _ingest(upload, wait_done, key_a, _guide("otter", 6))

    ids_first, ids_second = _ids_by_document(a, [first["id"], second["id"]])
    assert len(ids_first) == first["chunk_count"] >= 6 and len(ids_second) >= 6
    ids = ids_first + ids_second
    assert all(1 <= i < JS_SAFE for i in ids)
    assert ids != sorted(ids), "ids still rise in ingestion order"
    assert any(later - earlier != 1 for earlier, later in itertools.pairwise(ids_first))
    assert ids_second[0] - ids_first[-1] != neighbours + 1, "the gap still counts B's chunks"

    # What the API hands out is these ids, as JSON integers.
    results = search(key_a, "otter keeper entry", k=10)["results"]
    assert results and all(type(r["chunk_id"]) is int for r in results)
    assert {r["chunk_id"] for r in results} <= set(ids)


def test_an_orm_created_chunk_gets_its_random_id_back_from_postgres(make_tenant):
    """Django sends DEFAULT for the id and reads it back with RETURNING."""
    tenant = make_tenant("pool")
    with tenant_context(tenant):
        doc = Document.objects.create(title="orm", content_hash="e" * 64, status="ready")
        made = [
            Chunk.objects.create(document=doc, ordinal=n, text=f"hay {n}", embedding=[0.1] * 384)
            for n in range(3)
        ]
        assert all(isinstance(c.id, int) and 1 <= c.id < JS_SAFE for c in made)
        assert [Chunk.objects.get(pk=c.id).text for c in made] == ["hay 0", "hay 1", "hay 2"]


# --- Migration 0008 on existing rows -------------------------------------------------------------
def _database_of(tenant) -> str:
    return tenant.silo_database or settings.DATABASES["default"]["NAME"]


def _behind_rls(tenant):
    """A superuser connection to the tenant's placement, to see every tenant's rows in it."""
    conn = superuser(_database_of(tenant))
    conn.execute(f"SET search_path = {placement.search_path_for(tenant)}")
    return conn


NEIGHBOUR_SQL = """
WITH doc AS (
    INSERT INTO rag_document (id, tenant_id, title, external_id, content_hash, mime_type,
        size_bytes, metadata, status, error, chunks_total, chunks_embedded, attempts, updated_at)
    VALUES (gen_random_uuid(), %(tenant)s, 'n', '', repeat('n', 64), '', 0, '{}', 'ready', '',
        1, 1, 0, now())
    RETURNING id
), chunk AS (
    INSERT INTO rag_chunk (document_id, tenant_id, ordinal, heading_path, text, token_count,
        metadata, embedding)
    SELECT id, %(tenant)s, 0, '', 'neighbour passage', 2, '{}', array_fill(0.1, ARRAY[384])::vector
    FROM doc
    RETURNING id
)
INSERT INTO rag_querylog (tenant_id, kind, question, question_sha256, mode, k, status, timings,
    prompt_tokens, completion_tokens, citations, api_key_prefix, source, cache_hit)
SELECT %(tenant)s, 'search', 'q', repeat('0', 64), 'hybrid', 1, 'ok', '{}', 0, 0,
    jsonb_build_array(jsonb_build_object('n', 1, 'chunk_id', id, 'document_id', '')), '', 'api',
    false
FROM chunk
RETURNING (citations -> 0 ->> 'chunk_id')::bigint
"""


def _old_rows(conn, tenant_id, topic: str, sections: int) -> str:
    """A ready document of `sections` chunks written as the code before 0008 wrote them (the
    schema of 0007: chunk metadata, sequence ids); returns the document id."""
    doc = conn.execute(
        "INSERT INTO rag_document (id, tenant_id, title, external_id, content_hash, mime_type, "
        "size_bytes, metadata, status, error, chunks_total, chunks_embedded, attempts, "
        "updated_at) VALUES (gen_random_uuid(), %s, %s, '', md5(%s) || md5(%s), 'text/plain', "
        "0, '{}', 'ready', '', %s, %s, 1, now()) RETURNING id",
        [tenant_id, topic, topic, topic, sections, sections],
    ).fetchone()[0]
    for n in range(sections):
        conn.execute(
            "INSERT INTO rag_chunk (document_id, tenant_id, ordinal, heading_path, text, "
            "token_count, metadata, embedding) VALUES (%s, %s, %s, '', %s, 12, '{}', "
            "array_fill(0.1, ARRAY[384])::vector)",
            [doc, tenant_id, n, f"The {topic} keeper wrote entry {n} about {topic} number {n}."],
        )
    return str(doc)


@pytest.mark.parametrize("mode", ["bridge", "silo"])
def test_migration_renumbers_existing_chunks_which_stay_searchable(
    mode, make_tenant, make_key, upload, wait_done, search, worker
):
    """The tenant's placement goes back to before random ids (its own migration history: the
    shared pool tables are never migrated backwards here), gets chunks with sequence ids as the
    code of then wrote them, a logged search, a cached answer and, beside them, a second
    tenant's rows as in the pool; then 0008 (and what follows) runs as it would in production,
    as the owner, under forced row-level security."""
    tenant = make_tenant(mode)
    dataplane_migrate(tenant=tenant, target=BEFORE_RANDOM_IDS)
    key = make_key(tenant)
    with _behind_rls(tenant) as conn:
        docs = [_old_rows(conn, tenant.id, topic, 3) for topic in ("lichen", "quartz")]
    question = "quartz keeper entry 2"

    with tenant_context(tenant):
        before = {
            (str(d), o): (i, t)
            for i, d, o, t in Chunk.objects.values_list("id", "document_id", "ordinal", "text")
        }
        cited = next(i for (d, o), (i, _) in before.items() if d == docs[1] and o == 2)
        QueryLog.objects.create(
            kind="search",
            question=question,
            question_sha256="q" * 64,
            citations=[{"n": 1, "chunk_id": cited, "document_id": docs[1]}],
        )
        logged = QueryLog.objects.get(kind="search").citations
        AnswerCacheEntry.objects.create(
            key="a" * 64, corpus_version=1, response={"citations": [{"chunk_id": 1}]}
        )
    old_ids = sorted(i for i, _ in before.values())
    assert old_ids == list(range(1, len(before) + 1)), "premise: sequence ids before 0008"
    neighbour = uuid.uuid4()
    with _behind_rls(tenant) as conn:
        neighbour_old = conn.execute(NEIGHBOUR_SQL, {"tenant": neighbour}).fetchone()[0]

    applied = dataplane_migrate(tenant=tenant)
    assert applied[:2] == ["0008_random_chunk_ids", "0009_metadata_on_documents_only"]

    with tenant_context(tenant):
        after = {
            (str(d), o): (i, t)
            for i, d, o, t in Chunk.objects.values_list("id", "document_id", "ordinal", "text")
        }
        relogged = QueryLog.objects.get(kind="search").citations
        assert AnswerCacheEntry.objects.count() == 0
    assert after.keys() == before.keys()
    assert all(after[k][1] == before[k][1] for k in before)  # same passages
    new_ids = [i for i, _ in after.values()]
    assert all(1 <= i < JS_SAFE for i in new_ids) and not set(new_ids) & set(old_ids)

    # The query log follows its chunks to their new ids.
    old_key = {i: k for k, (i, _) in before.items()}
    assert (
        relogged == [{**c, "chunk_id": after[old_key[c["chunk_id"]]][0]} for c in logged]
        and len(logged) >= 1
    )

    # Still searchable: the cited passage comes first, under its new id.
    top_after = search(key, question, k=3, mode="keyword")["results"][0]
    assert top_after["chunk_id"] == after[old_key[cited]][0]
    assert top_after["text"] == before[old_key[cited]][1] and top_after["document_id"] in docs

    with _behind_rls(tenant) as conn:
        neighbour_new = conn.execute(
            "SELECT id FROM rag_chunk WHERE tenant_id = %s", [neighbour]
        ).fetchone()[0]
        neighbour_cited = conn.execute(
            "SELECT (citations -> 0 ->> 'chunk_id')::bigint FROM rag_querylog WHERE tenant_id = %s",
            [neighbour],
        ).fetchone()[0]
        forced = conn.execute(
            "SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE oid = ANY(ARRAY["
            "'rag_chunk'::regclass, 'rag_querylog'::regclass, 'rag_answercacheentry'::regclass])"
        ).fetchone()[0]
        identity, default = conn.execute(
            "SELECT a.attidentity, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
            "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = 'rag_chunk'::regclass AND a.attname = 'id'"
        ).fetchone()
    assert neighbour_new != neighbour_old and neighbour_cited == neighbour_new
    assert forced is True
    assert identity == "" and "random()" in default

    # And what the worker stores from now on gets random ids in this placement too.
    third = _ingest(upload, wait_done, key, _guide("sparrow", 6))["id"]
    (ids,) = _ids_by_document(tenant, [third])
    # Not "not sorted": six random ids are in ordinal order once in 720 runs (seen in a
    # clean-clone run). A sequence would have given six ids within a few of each other.
    assert all(1 <= i < JS_SAFE for i in ids) and max(ids) - min(ids) > 10**6


# --- Collisions ----------------------------------------------------------------------------------
def _drafts(n: int, *, ordinals=None) -> list[ChunkDraft]:
    return [
        ChunkDraft(ordinal=o, text=f"passage {o}", heading_path="", token_count=2)
        for o in (ordinals if ordinals is not None else range(n))
    ]


def _store(tenant, document_id, drafts) -> int:
    vectors = np.full((len(drafts), 384), 384**-0.5, dtype=np.float32)
    with tenant_context(tenant):
        return chunks_replace(
            alias=data_alias(), document_id=document_id, chunks=drafts, vectors=vectors
        )


@pytest.fixture
def rigged(make_tenant):
    """A bridge tenant holding one chunk, and `rig(when)`: set its chunk id default (as the
    owner, on its own schema only) to that chunk's id while the SQL condition `when` holds on
    a draw counter, to a random id otherwise.

    The counter is a sequence because sequences ignore rollbacks: the savepoint that undoes a
    collided INSERT does not undo its draws, so the counter tells how many ids were drawn,
    and therefore how many times the INSERT ran.
    """
    tenant = make_tenant("bridge")
    with tenant_context(tenant):
        taken = Document.objects.create(title="taken", content_hash="t" * 64, status="ready")
        existing = Chunk.objects.create(
            document=taken, ordinal=0, text="taken", embedding=[0.1] * 384
        )
        fresh = Document.objects.create(title="fresh", content_hash="f" * 64, status="ready")
    schema = sql.Identifier(tenant.schema_name)
    counter = sql.SQL("{}.chunk_id_draws").format(schema)
    owner = connect("owner")

    def rig(when: str) -> None:
        # CASCADE: the column default of the last rig depends on the counter.
        owner.execute(sql.SQL("DROP SEQUENCE IF EXISTS {} CASCADE").format(counter))
        owner.execute(sql.SQL("CREATE SEQUENCE {}").format(counter))
        owner.execute(
            sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                counter, sql.Identifier(placement.app_role())
            )
        )
        draw = sql.SQL("nextval({})").format(sql.Literal(f"{tenant.schema_name}.chunk_id_draws"))
        owner.execute(
            sql.SQL(
                "ALTER TABLE {}.rag_chunk ALTER COLUMN id SET DEFAULT "
                "CASE WHEN {} THEN {}::bigint ELSE {} END"
            ).format(
                schema,
                sql.SQL(when).format(draw=draw),
                sql.Literal(existing.id),
                sql.SQL(RANDOM_CHUNK_ID_SQL),
            )
        )

    def draws() -> int:
        return owner.execute(sql.SQL("SELECT last_value FROM {}").format(counter)).fetchone()[0]

    yield tenant, existing, fresh, rig, draws
    owner.close()


def test_a_colliding_chunk_id_is_drawn_again_and_the_ingestion_succeeds(rigged):
    """The first id drawn is one an existing chunk holds: PostgreSQL raises a real primary-key
    violation, the chunk store rolls back to its savepoint and inserts again with new ids."""
    tenant, existing, fresh, rig, draws = rigged
    rig("{draw} = 1")

    assert _store(tenant, fresh.id, _drafts(3)) == 3
    assert draws() == 1 + 3  # one id that collided, then one for each of the three rows

    with tenant_context(tenant):
        stored = list(Chunk.objects.filter(document=fresh).order_by("ordinal"))
        assert [c.text for c in stored] == ["passage 0", "passage 1", "passage 2"]
        assert existing.id not in {c.id for c in stored}
        assert Chunk.objects.get(pk=existing.id).text == "taken"  # untouched


def test_collision_retries_are_bounded_and_only_for_the_primary_key(rigged):
    """An id that always collides is a bug, not bad luck: raised after ID_ATTEMPTS inserts.
    Another unique violation (two chunks with one ordinal) is raised at once, not retried."""
    tenant, _, fresh, rig, draws = rigged
    rig("{draw} > 0")  # every draw is the existing chunk's id
    with pytest.raises(UniqueViolation) as raised:
        _store(tenant, fresh.id, _drafts(3))
    assert raised.value.diag.constraint_name == "rag_chunk_pkey"
    assert draws() == ID_ATTEMPTS  # each attempt fails at its first row

    rig("{draw} < 0")  # random ids again (still counting draws)
    with pytest.raises(UniqueViolation) as raised:
        _store(tenant, fresh.id, _drafts(2, ordinals=[0, 0]))
    assert raised.value.diag.constraint_name == "chunk_unique_ordinal"
    assert draws() == 2  # one attempt: both rows drawn once

    with tenant_context(tenant):
        assert not Chunk.objects.filter(document=fresh).exists()
