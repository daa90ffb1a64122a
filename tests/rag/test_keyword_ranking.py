"""Keyword search ranks every chunk that holds a rare word of the query, by all its words.

It used to take the chunks holding every word, else the first KEYWORD_CANDIDATES holding any,
in no order, and rank only those: the passage that answers a question in other words was often
not among them (issue 15). Word rarity is the tenant's own (row-level security applies to the
counting too), so another tenant's documents cannot push a word out of this one's ranking.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from rag.services.search import chunk_search
from tests.helpers import ingest_now

MODES = ("pool", "bridge", "silo")


def _keyword(tenant, names, query: str, k: int = 3) -> list[str]:
    hits = chunk_search(tenant=tenant, query=query, k=k, mode="keyword", observe=False).hits
    return [names[hit.document_id] for hit in hits]


FILLER = {
    f"keeper-{i}": f"Keeper log {i}: the keeper climbed the stairs and the keeper wrote it down."
    for i in range(6)
}


@pytest.mark.parametrize("mode", MODES)
@override_settings(KEYWORD_CANDIDATES=3)
def test_a_rare_word_finds_its_chunk_among_many_with_the_common_words(make_tenant, mode):
    tenant = make_tenant(mode)
    names = ingest_now(
        tenant, {**FILLER, "target": "Trim the wick of the lamp every evening before dusk."}
    )

    # "keeper" is common (6 chunks, the threshold is 3), "wick" rare; no chunk holds both.
    assert _keyword(tenant, names, "how often should the keeper trim the wick")[0] == "target"


@pytest.mark.parametrize("mode", MODES)
@override_settings(KEYWORD_CANDIDATES=3)
def test_common_words_alone_are_ranked_not_taken_in_storage_order(make_tenant, mode):
    tenant = make_tenant(mode)
    names = ingest_now(
        tenant,
        {**FILLER, "target": "The keeper, the keeper's keeper and the keeper's log of keepers."},
    )

    # Every chunk holds "keeper"; the one that holds it most ranks first, though stored last.
    assert _keyword(tenant, names, "keeper")[0] == "target"


@override_settings(KEYWORD_CANDIDATES=3)
def test_word_rarity_is_the_tenants_own_in_the_pool(make_tenant):
    mine, theirs = make_tenant("pool"), make_tenant("pool")
    ingest_now(
        theirs, {f"wick-{i}": f"Wick number {i}, a wick like any other wick." for i in range(8)}
    )
    names = ingest_now(mine, {**FILLER, "target": "Trim the wick of the lamp every evening."})

    # Eight of their chunks hold "wick": for this tenant it is still rare, and ranks first.
    assert _keyword(mine, names, "keeper trim wick")[0] == "target"
    assert set(_keyword(mine, names, "wick", k=10)) == {"target"}


@pytest.mark.parametrize(
    "query",
    ["it's \\ a back\\slash", "o'clock ''' \\'", "a & b | !c <-> d:* (e", "the of and", "¶ §"],
)
def test_punctuation_and_operators_in_a_query_are_words_not_syntax(make_tenant, query):
    tenant = make_tenant("pool")
    names = ingest_now(tenant, {"target": "It's nine o'clock: a backslash \\ and a slash."})

    found = _keyword(tenant, names, query)

    assert found in ([], ["target"])
