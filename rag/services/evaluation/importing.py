"""Importing evaluation sets from JSONL, strictly: a bad line stores nothing."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from tenants.context import tenant_context
from tenants.models import Tenant

from ...models import Document, EvalQuestion, EvalSet
from .metrics import (
    MAX_ARCHETYPE,
    MAX_EXTERNAL_ID,
    MAX_FACT,
    MAX_FACTS,
    MAX_NAME,
    MAX_QUESTIONS,
    QUESTION_KEYS,
    EvalImportError,
)

logger = logging.getLogger(__name__)

# --- import -----------------------------------------------------------------------------------


@dataclass
class _Draft:
    line: int
    question: str
    archetype: str
    document_ids: list[str] = field(default_factory=list)  # explicit, must be the tenant's
    candidates: list[str] = field(default_factory=list)  # "relevant": id or external id
    external_ids: list[str] = field(default_factory=list)
    expected_facts: list[str | list[str]] = field(default_factory=list)
    unanswerable: bool = False


def evalset_import(
    *, tenant: Tenant, name: str, lines: Iterable[str | bytes], description: str = ""
) -> EvalSet:
    """Create the set `name` from JSONL lines, or replace the questions of the existing one.

    One object per line: {"question": str, "relevant": [document ids or external ids],
    "archetype": str (optional)}; `relevant_document_ids` / `relevant_external_ids` name them
    explicitly. A "relevant" entry that is one of the tenant's document ids is that document;
    anything else is an external id, kept even if no document has it yet (it may be uploaded
    later). An explicit document id must be the tenant's: ids are made by the platform, so an
    unknown one can never become valid.

    For answer evaluation a question may carry "expected_facts" (each a string or a list of
    alternatives; a correct answer states every fact, an alternative list by any of its
    entries) or "unanswerable": true (the documents do not answer it; the answer should
    decline); a question with either needs no relevant documents.

    Strict: the first bad line raises EvalImportError naming it, and nothing is stored (the
    set is written in one transaction, in the tenant's context, after every line was checked).
    """
    name = (name or "").strip()
    if not name:
        raise EvalImportError(None, "the set needs a name")
    if len(name) > MAX_NAME:
        raise EvalImportError(None, f"the set name is longer than {MAX_NAME} characters")
    drafts = _parse(lines)
    with tenant_context(tenant):
        known = _tenant_document_ids(drafts)
        questions = [_resolve(draft, known) for draft in drafts]
        eval_set = EvalSet.objects.select_for_update().filter(name=name).first()
        if eval_set is None:
            eval_set = EvalSet.objects.create(name=name, description=description)
        else:
            eval_set.description = description or eval_set.description
            eval_set.save(update_fields=["description"])
            eval_set.questions.all().delete()
        for question in questions:
            question.eval_set = eval_set
        EvalQuestion.objects.bulk_create(questions)
    return eval_set


def _parse(lines: Iterable[str | bytes]) -> list[_Draft]:
    drafts = []
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise EvalImportError(number, "not UTF-8 text") from None
        elif number == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            continue
        if len(drafts) >= MAX_QUESTIONS:
            raise EvalImportError(number, f"a set holds at most {MAX_QUESTIONS} questions")
        drafts.append(_parse_line(number, raw))
    if not drafts:
        raise EvalImportError(None, "the file has no questions (one JSON object per line)")
    return drafts


def _parse_line(number: int, raw: str) -> _Draft:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EvalImportError(number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(item, dict):
        raise EvalImportError(number, "expected a JSON object")
    unknown = sorted(set(item) - QUESTION_KEYS)
    if unknown:
        allowed = ", ".join(sorted(QUESTION_KEYS))
        raise EvalImportError(number, f"unknown key {unknown[0]!r} (allowed: {allowed})")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalImportError(number, '"question" must be a non-empty string')
    archetype = item.get("archetype") or ""
    if not isinstance(archetype, str) or len(archetype.strip()) > MAX_ARCHETYPE:
        raise EvalImportError(
            number, f'"archetype" must be a string of at most {MAX_ARCHETYPE} characters'
        )
    draft = _Draft(line=number, question=question.strip(), archetype=archetype.strip())
    draft.candidates = _strings(number, item, "relevant")
    draft.external_ids = _strings(number, item, "relevant_external_ids")
    for value in _strings(number, item, "relevant_document_ids"):
        try:
            draft.document_ids.append(str(uuid.UUID(value)))
        except ValueError:
            raise EvalImportError(
                number, f'"relevant_document_ids": {value!r} is not a document id'
            ) from None
    draft.expected_facts = _facts(number, item.get("expected_facts", []))
    unanswerable = item.get("unanswerable", False)
    if not isinstance(unanswerable, bool):
        raise EvalImportError(number, '"unanswerable" must be true or false')
    draft.unanswerable = unanswerable
    relevant = draft.candidates or draft.external_ids or draft.document_ids
    if unanswerable and (draft.expected_facts or relevant):
        raise EvalImportError(
            number, "an unanswerable question has no expected facts and no relevant documents"
        )
    if not (relevant or draft.expected_facts or unanswerable):
        raise EvalImportError(
            number,
            'no relevant documents: give "relevant" a non-empty list (or, for answer '
            'evaluation only, "expected_facts" or "unanswerable": true)',
        )
    return draft


def _facts(number: int, values) -> list[str | list[str]]:
    """Expected facts: a list of strings, or of lists of alternative strings."""
    problem = (
        f'"expected_facts" must be a list of at most {MAX_FACTS} facts, each a non-empty string '
        f"of at most {MAX_FACT} characters or a non-empty list of such alternatives"
    )

    def fact(value) -> str:
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_FACT:
            raise EvalImportError(number, problem)
        return " ".join(value.split())

    if not isinstance(values, list) or len(values) > MAX_FACTS:
        raise EvalImportError(number, problem)
    facts: list[str | list[str]] = []
    for value in values:
        if isinstance(value, list):
            if not value or len(value) > MAX_FACTS:
                raise EvalImportError(number, problem)
            facts.append([fact(v) for v in value])
        else:
            facts.append(fact(value))
    return facts


def _strings(number: int, item: dict, key: str) -> list[str]:
    values = item.get(key, [])
    if not isinstance(values, list) or not all(
        isinstance(v, str) and v.strip() and len(v.strip()) <= MAX_EXTERNAL_ID for v in values
    ):
        raise EvalImportError(
            number,
            f'"{key}" must be a list of non-empty strings of at most {MAX_EXTERNAL_ID} characters',
        )
    return [v.strip() for v in values]


def _as_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _tenant_document_ids(drafts: list[_Draft]) -> set[str]:
    """Which of the ids the file names are the bound tenant's documents (one query)."""
    ids = {d for draft in drafts for d in draft.document_ids}
    ids |= {u for draft in drafts for c in draft.candidates if (u := _as_uuid(c))}
    if not ids:
        return set()
    return {str(pk) for pk in Document.objects.filter(pk__in=ids).values_list("pk", flat=True)}


def _resolve(draft: _Draft, known: set[str]) -> EvalQuestion:
    document_ids = list(draft.document_ids)
    for document_id in document_ids:
        if document_id not in known:
            raise EvalImportError(draft.line, f"document {document_id} is not one of the tenant's")
    external_ids = list(draft.external_ids)
    for candidate in draft.candidates:
        as_id = _as_uuid(candidate)
        if as_id in known:
            document_ids.append(as_id)
        else:
            external_ids.append(candidate)
    return EvalQuestion(
        ordinal=draft.line,
        question=draft.question,
        archetype=draft.archetype,
        relevant_document_ids=list(dict.fromkeys(document_ids)),
        relevant_external_ids=list(dict.fromkeys(external_ids)),
        expected_facts=draft.expected_facts,
        unanswerable=draft.unanswerable,
    )
