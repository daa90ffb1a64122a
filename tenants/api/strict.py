"""Request serializers that take JSON types at their word.

DRF coerces: `"query": 5` becomes "5", `"stream": 1` becomes True, `"k": "5"` becomes 5,
`"document_ids": [5]` becomes the UUID with integer value 5. A client bug then goes unnoticed
and the API accepts what its schema says it refuses. A JSON body's values must already have
the field's JSON type; form and query-string input (strings by nature) is left to DRF.
"""

from __future__ import annotations

from rest_framework import serializers

# (field class, accepted JSON types, name in the error); the first match decides.
_RULES = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.UUIDField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.ListField, (list,), "a list"),
)


def json_type_error(field: serializers.Field, value) -> str | None:
    """Why `value` (parsed JSON) cannot be `field`'s input, or None."""
    if value is None:
        return None  # the field's own allow_null decides
    for cls, types, name in _RULES:
        if isinstance(field, cls):
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                return f"Must be {name}."
            if isinstance(field, serializers.ListField):
                return next((e for v in value if (e := json_type_error(field.child, v))), None)
            return None
    if isinstance(field, serializers.ChoiceField) and all(
        isinstance(c, str) for c in field.choices
    ):
        return None if isinstance(value, str) else "Must be a string."
    return None


class StrictSerializer(serializers.Serializer):
    """The base of request serializers: a JSON body's values are checked for their JSON type
    before DRF converts them (nested StrictSerializers check their own)."""

    def to_internal_value(self, data):
        if type(data) is dict:  # parsed JSON; forms and query strings are QueryDicts
            errors = {
                name: [error]
                for name, field in self.fields.items()
                if not field.read_only
                and field.source != "*"
                and name in data
                and (error := json_type_error(field, data[name]))
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def single_valued(query_params) -> dict:
    """A query string as a plain dict, refusing a parameter given twice (`?status=a&status=b`
    would otherwise mean the last one, silently). Not the QueryDict itself: DRF reads `status=`
    in a form as "not sent", where a query string means an empty, invalid status."""
    repeated = sorted(name for name, values in query_params.lists() if len(values) > 1)
    if repeated:
        raise serializers.ValidationError(
            {name: ["Give this query parameter once."] for name in repeated}
        )
    return query_params.dict()
