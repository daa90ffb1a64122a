"""Data-plane models. The same models serve every isolation mode; the tenant context decides
which tables (shared pool, bridge schema or silo database) a query reaches."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models.functions import Now
from pgvector.django import HnswIndex, VectorField

from tenants.rls import TenantOwnedModel

EMBEDDING_DIMENSIONS = 384


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


# Waiting for or under ingestion: what a worker may claim, what recovery watches, what the
# console keeps polling. Written once here.
IN_PROGRESS = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING)


# Chunk ids are shown to tenants (search hits, citations, the query log). Drawn from one shared
# sequence, a pool tenant could subtract two of its own and count what its neighbours ingested
# in between; a random id says nothing about anyone. Below 2**53 because API clients parse
# `chunk_id` as a JSON number (a double); random() has 52 random bits, so 2**52 distinct ids.
# PostgreSQL draws it as the column default, so every insert path gets one; a rare collision is
# retried by rag.services.chunk_store.
#
# Every other data-plane table has random ids as well (migration 0011), for a second reason: a
# tenant moves between placements with its rows' ids (tenants/services/moves), and ids drawn
# from a bridge schema's or a silo's own sequence (1, 2, 3...) would collide with the pool's.
RANDOM_CHUNK_ID_SQL = "(floor(random() * 9007199254740991) + 1)::bigint"
RANDOM_ID_SQL = RANDOM_CHUNK_ID_SQL


class RandomId(models.Func):
    """The id default of every data-plane table: a random integer in [1, 2**53)."""

    template = RANDOM_ID_SQL
    output_field = models.BigIntegerField()

    def __init__(self, **extra):
        super().__init__(**extra)


# Named in migration 0008.
RandomChunkId = RandomId


def random_id():
    return models.BigIntegerField(primary_key=True, db_default=RandomId(), editable=False)


class CorpusVersion(TenantOwnedModel):
    """A counter that a trigger on rag_document bumps whenever a tenant's documents change
    (migration 0005). Cached answers are keyed on it, so any change, by any path, invalidates
    the tenant's cached answers: PostgreSQL keeps the cache honest, not each caller.

    Defined before Document on purpose: deleting a pool tenant's rows goes through the models
    in reverse, so this row goes after the documents whose deletion would bump it again.
    """

    id = random_id()

    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant_id"], name="corpus_version_one_per_tenant")
        ]

    def __str__(self) -> str:
        return f"corpus version {self.version}"


class MetadataBytes(models.Func):
    """The bytes a jsonb value takes as PostgreSQL prints it (what `metadata::text` returns);
    an empty object counts 0, so a document without metadata costs only its own bytes."""

    template = (
        "CASE WHEN %(expressions)s = '{}'::jsonb THEN 0 "
        "ELSE octet_length((%(expressions)s)::text) END"
    )
    output_field = models.BigIntegerField()


class Document(TenantOwnedModel):
    """A tenant's uploaded document. Its text is split into Chunks by the ingestion pipeline.

    `content_hash` deduplicates uploads per tenant; `external_id` lets a client replace a
    document it manages by its own identifier. `metadata` lives here only (search filters on
    it and returns it with each hit); `metadata_bytes` is computed by PostgreSQL from it, so
    every path that writes metadata is charged for it against the storage quota.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=500, blank=True, default="")
    external_id = models.CharField(max_length=255, blank=True, default="")
    content_hash = models.CharField(max_length=64)
    mime_type = models.CharField(max_length=100, blank=True, default="")
    size_bytes = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    metadata_bytes = models.GeneratedField(
        expression=MetadataBytes("metadata"),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    status = models.CharField(
        max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED
    )
    error = models.TextField(blank=True, default="")
    chunks_total = models.IntegerField(default=0)
    chunks_embedded = models.IntegerField(default=0)
    attempts = models.IntegerField(default=0)
    # The backend (rag/embedders) its chunk set was embedded with, written with the chunks;
    # blank until then. Rows from before backends existed were all embedded by torch.
    embedding_backend = models.CharField(max_length=20, blank=True, db_default="torch", default="")
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "content_hash"], name="document_unique_hash"
            ),
            models.UniqueConstraint(
                fields=["tenant_id", "external_id"],
                condition=~models.Q(external_id=""),
                name="document_unique_external_id",
            ),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS


class Chunk(TenantOwnedModel):
    """A passage of a document with its embedding and full-text vector.

    Its id is random (RANDOM_CHUNK_ID_SQL says why), not the sequence of an identity column.
    It carries no metadata: that is the document's (a copy per chunk multiplied a document's
    metadata by its chunk count on disk and in every search response).
    """

    id = random_id()
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.IntegerField()
    heading_path = models.TextField(blank=True, default="")
    text = models.TextField()
    token_count = models.IntegerField(default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    # The vector from the backend a re-embedding moves the tenant to, filled while searches go
    # on with `embedding`, swapped in for all the tenant's chunks at once (rag.services.reembed).
    embedding_next = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("heading_path", "text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal"),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            # No pending list: with fastupdate, new rows wait in an unsorted list that every
            # keyword search scans (up to gin_pending_list_limit, 4 MB) until a vacuum merges
            # it, and a platform that keeps ingesting keeps it full. Inserting straight into
            # the index costs the worker little beside the embedding.
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin", fastupdate=False),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class DocumentSource(TenantOwnedModel):
    """The uploaded bytes, kept in the tenant's own placement so workers (and re-processing
    after a chunking or model change) read them under the same isolation as the chunks."""

    document = models.OneToOneField(
        Document, on_delete=models.CASCADE, primary_key=True, related_name="source"
    )
    filename = models.CharField(max_length=255, blank=True, default="")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"source of {self.document_id}"


class QueryLog(TenantOwnedModel):
    """One search or answer: what was asked, how long each stage took, what it used and cited.

    It holds the tenant's questions, so it lives in the tenant's own placement under RLS like
    its documents. With QUERY_LOG_STORE_TEXT off only the question's SHA-256 is kept.
    """

    KINDS = [("search", "Search"), ("answer", "Answer")]
    SOURCES = [
        ("api", "API"),
        ("console", "Console"),
        ("cli", "Command"),
        ("openai", "OpenAI API"),
        ("eval", "Evaluation"),
    ]
    STATUSES = [("ok", "OK"), ("error", "Error")]

    id = random_id()
    created_at = models.DateTimeField(db_default=Now())
    kind = models.CharField(max_length=10, choices=KINDS)
    question = models.TextField(blank=True, default="")
    question_sha256 = models.CharField(max_length=64)
    mode = models.CharField(max_length=10, blank=True, default="")
    k = models.IntegerField(default=0)
    status = models.CharField(max_length=10, choices=STATUSES, default="ok")
    timings = models.JSONField(default=dict, blank=True)  # stage -> milliseconds
    prompt_tokens = models.IntegerField(default=0)
    completion_tokens = models.IntegerField(default=0)
    citations = models.JSONField(default=list, blank=True)  # [{"n", "chunk_id", "document_id"}]
    api_key_prefix = models.CharField(max_length=16, blank=True, default="")
    source = models.CharField(max_length=10, choices=SOURCES, default="api")
    cache_hit = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_at"], name="querylog_created_at")]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class AnswerCacheEntry(TenantOwnedModel):
    """A deterministic answer (temperature 0), keyed by a hash of everything that decides it:
    normalised question, k, filter, documents, max tokens, model and the corpus version.

    It lives in the tenant's own placement under RLS, so no other tenant can ever read it.
    """

    id = random_id()

    key = models.CharField(max_length=64)
    corpus_version = models.BigIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "key"], name="answer_cache_unique_key")
        ]

    def __str__(self) -> str:
        return f"answer {self.key[:12]}"


class EmbeddingCacheEntry(TenantOwnedModel):
    """A text's embedding, keyed by (model, SHA-256 of the text), so a repeated query or a
    re-ingested chunk skips the model. Per tenant (under RLS): sharing vectors across tenants
    would let one tenant learn by timing that another embedded the same text."""

    id = random_id()

    model = models.CharField(max_length=200)
    text_sha256 = models.CharField(max_length=64)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    last_used_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "model", "text_sha256"], name="embedding_cache_unique_text"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model}:{self.text_sha256[:12]}"


class EvalSet(TenantOwnedModel):
    """A named set of questions with known relevant documents, used to measure retrieval.

    The questions are the tenant's data (they reveal what its users ask), so the set lives in
    the tenant's own placement under RLS, next to the documents it refers to.
    """

    id = random_id()

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "name"], name="evalset_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class EvalQuestion(TenantOwnedModel):
    """One question of a set and the documents that answer it.

    Relevant documents are named by id or by the client's external id; external ids are
    resolved when a run starts, so a set may be imported before its documents are uploaded.
    """

    id = random_id()

    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="questions")
    ordinal = models.IntegerField(default=0)  # the question's position in the imported file
    question = models.TextField()
    relevant_document_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    relevant_external_ids = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    archetype = models.CharField(max_length=50, blank=True, default="")
    # For answer evaluation: facts a correct answer states (each a string, or a list of
    # alternatives any one of which will do), or a question the documents cannot answer.
    expected_facts = models.JSONField(default=list, blank=True)
    unanswerable = models.BooleanField(default=False)

    class Meta:
        ordering = ["eval_set_id", "ordinal"]

    def __str__(self) -> str:
        return self.question[:80]


class EvalRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class EvalRunKind(models.TextChoices):
    RETRIEVAL = "retrieval", "Retrieval"
    ANSWERS = "answers", "Answers"


class EvalRun(TenantOwnedModel):
    """One evaluation of a set: metrics per retrieval mode (overall and per archetype), or for
    an answer run per model and answer policy, and the settings they were measured with, so
    two runs of the same kind can be compared knowing what changed."""

    id = random_id()

    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(
        max_length=10, choices=EvalRunKind.choices, default=EvalRunKind.RETRIEVAL
    )
    status = models.CharField(
        max_length=10, choices=EvalRunStatus.choices, default=EvalRunStatus.QUEUED
    )
    k = models.IntegerField(default=10)
    progress_done = models.IntegerField(default=0)
    progress_total = models.IntegerField(default=0)
    settings = models.JSONField(default=dict, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.eval_set_id}"

    @property
    def is_active(self) -> bool:
        return self.status in (EvalRunStatus.QUEUED, EvalRunStatus.RUNNING)
