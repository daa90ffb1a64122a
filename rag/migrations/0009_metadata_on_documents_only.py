"""Metadata lives on the document only, and is counted against the storage quota.

`rag_chunk.metadata` held a copy of the document's metadata in every chunk row: 1 MB of
metadata on a 100-chunk document was 100 MB on disk and in search responses. Search now filters
on, and returns, the document's own metadata (rag.services.search), so the column goes.

`rag_document.metadata_bytes` is a stored generated column (rag.models.MetadataBytes): the
bytes of the metadata as PostgreSQL prints it, 0 when it is empty. Storage quotas add it to
`size_bytes` (RagConfig.stored). Being computed by PostgreSQL, it is right for rows written
before this migration and by any path that writes metadata.

Neither operation reads or writes rows through row-level security: adding a stored generated
column rewrites the table as its owner computes each value (DDL is not subject to policies),
and dropping a column touches no policy (the policies name only tenant_id). So the same
migration serves the pool tables, each bridge schema and each silo database. Both take an
ACCESS EXCLUSIVE lock on their table for the time of the rewrite.

Backwards, the chunk column comes back empty (`{}`): the document still holds the metadata.
"""

from django.db import migrations, models

import rag.models


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0008_random_chunk_ids"),
    ]

    operations = [
        migrations.RemoveField(model_name="chunk", name="metadata"),
        migrations.AddField(
            model_name="document",
            name="metadata_bytes",
            field=models.GeneratedField(
                db_persist=True,
                expression=rag.models.MetadataBytes("metadata"),
                output_field=models.BigIntegerField(),
            ),
        ),
    ]
