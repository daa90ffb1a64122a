"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis), over the
real gunicorn, authenticated as a tenant: positive and negative data for every operation, the
OpenAI-compatible ones included, with every check schemathesis has: no 5xx, every status,
content type, header and body as the schema documents it, schema-valid requests accepted and
schema-violating ones refused.

Two choices, each because a JSON Schema cannot say it:
- A schema-valid request may still be refused with 422 when its meaning is wrong (an unknown
  metadata key in a filter, a conversation whose last message is not the user's), and an
  upload with 415 when its bytes are no document we read. Those are the codes for exactly
  that (RFC 9110 15.5.21, 15.5.16); 400 stays for requests that break the schema.
- No string holds U+0000: the strict JSON parser refuses it anywhere (400 `invalid_json`,
  tested in tests/tenants/test_json_parser.py), keys of free-form objects included, which
  OpenAPI 3.0 cannot express.
- In a multipart form every value is text, so "schema-violating" form values (a boolean for a
  string field) are not refused; negative JSON bodies are.
Authentication is not fuzzed here (the tests of tenants/api do it); every request carries the
tenant's key.

Driven by hand rather than by schemathesis' pytest plugin (which does not run under this
pytest): one Hypothesis run per operation and generation mode, every failure collected."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection

EXAMPLES = 15
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429"]
# Schemathesis' own list, and the refusals of sizes (a fuzzed query string can pass gunicorn's
# request-line limit: 414, problem+json too).
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "411", "413", "414", "415"]
REFUSED += ["422", "428", "429", "431"]
CONFIG = {
    "generation": {"allow-x00": False, "with-security-parameters": False},
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ACCEPTED},
        "negative_data_rejection": {"expected-statuses": REFUSED},
    },
    "operations": [
        {
            "include-path": "/api/v1/documents",
            "include-method": "POST",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "415"]}},
        }
    ],
}


@pytest.fixture
def fuzz_key(make_tenant, make_key):
    return make_key(make_tenant("pool"), scopes=["ingest", "query", "admin"])


def _fuzz(operation, mode, headers) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        # In a form every value is text: a "boolean" sent as a form field is the string
        # "true", which a string field rightly takes.
        as_form = case.media_type == "multipart/form-data" and mode is GenerationMode.NEGATIVE
        excluded = [negative_data_rejection] if as_form else []
        case.call_and_validate(headers=headers, timeout=60, excluded_checks=excluded)

    run()


def test_every_fuzzed_response_is_as_the_schema_says(web_server, fuzz_key):
    schema = schemathesis.openapi.from_url(
        f"{web_server.url}/api/schema/", config=SchemathesisConfig.from_dict(CONFIG)
    )
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert {"POST /api/v1/search", "POST /v1/chat/completions", "POST /v1/embeddings"} <= labels
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, headers)
            except Unsatisfiable:
                continue  # nothing to make invalid (an operation without parameters)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # schemathesis raises exception groups
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
