"""Structured output: how each kind of endpoint is asked to follow a JSON Schema
(:func:`body_fields`; ``auto`` is resolved from ``/models`` by :func:`dialect_from_models`).

OpenAI's strict mode wants every property required, ``additionalProperties: false`` and a
subset of keywords: :func:`strict_schema` makes optional properties required-but-nullable
and drops the other keywords (the client's validation still applies them), and
:func:`drop_added_nulls` removes the nulls strict mode made the model write.
"""
from __future__ import annotations

import copy
import re

DIALECTS = ("auto", "openai", "vllm", "llamacpp", "ollama", "off")
_DROPPED = ("minLength", "maxLength", "pattern", "format", "minimum", "maximum",
            "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
            "uniqueItems", "minProperties", "maxProperties", "patternProperties",
            "propertyNames", "unevaluatedProperties", "unevaluatedItems", "contains",
            "minContains", "maxContains", "default", "examples", "$schema", "title")
_REFUSAL = re.compile(r"response_format|json_schema|schema|grammar|\bformat\b|structured|"
                      r"guided", re.IGNORECASE)


def strict_schema(schema: dict) -> tuple[dict, bool]:
    """``(schema adapted to OpenAI's strict mode, whether it could be made strict)``."""
    ok = [True]

    def adapt(node):
        if not isinstance(node, dict):
            return node
        node = {k: v for k, v in node.items() if k not in _DROPPED}
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        for key in ("anyOf", "allOf"):
            if key in node:
                node[key] = [adapt(n) for n in node[key]]
        if "items" in node:
            node["items"] = adapt(node["items"])
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types)
        if is_object:
            props = node.get("properties")
            if not props:
                ok[0] = False
                return node
            required = set(node.get("required", []))
            node["properties"] = {name: adapt(sub) if name in required else _nullable(adapt(sub))
                                  for name, sub in props.items()}
            node["required"] = list(props)
            node["additionalProperties"] = False
        return node

    adapted = adapt(copy.deepcopy(schema))
    return adapted, ok[0] and adapted.get("type") == "object"


def _nullable(node: dict) -> dict:
    if not isinstance(node, dict) or _allows_null(node):
        return node
    if "anyOf" in node:
        return {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    types = node.get("type")
    if isinstance(types, (str, list)) and "enum" not in node:  # not null: _allows_null
        return {**node, "type": [*([types] if isinstance(types, str) else types), "null"]}
    return {"anyOf": [node, {"type": "null"}]}


def drop_added_nulls(value, schema: dict):
    """``value`` without the ``null`` values of properties ``schema`` left optional and did
    not allow to be null (those strict mode made the model write)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required", []))
        out = {}
        for key, item in value.items():
            sub = schema["properties"].get(key)
            if item is None and key not in required and not _allows_null(sub):
                continue
            out[key] = drop_added_nulls(item, sub) if sub is not None else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_added_nulls(v, schema["items"]) for v in value]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and isinstance(value, (dict, list)):
            kind = dict if isinstance(value, dict) else list
            for option in schema[key]:
                if isinstance(option, dict) and _json_kind(option) is kind:
                    return drop_added_nulls(value, option)
    return value


def _json_kind(schema: dict):
    types = schema.get("type")
    if types == "object" or "properties" in schema:
        return dict
    if types == "array" or "items" in schema:
        return list
    return None


def _allows_null(schema) -> bool:
    if not isinstance(schema, dict):
        return True
    types = schema.get("type")
    if types == "null" or (isinstance(types, list) and "null" in types) or \
            None in schema.get("enum", [0]):
        return True
    return any(_allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", [])
               if isinstance(s, dict))


def body_fields(dialect: str, schema: dict, name: str = "reply") -> dict:
    """The request-body fields that ask an endpoint of ``dialect`` to follow ``schema``."""
    if dialect == "openai":
        strict, ok = strict_schema(schema)
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": name, "schema": strict if ok else schema, "strict": ok}}}
    if dialect == "vllm":
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": name, "schema": schema}}}
    if dialect == "llamacpp":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if dialect == "ollama":
        return {"format": schema}
    return {}


def dialect_from_models(listing, base_url: str | None) -> str:
    """The dialect a ``/models`` answer (parsed JSON, or None) points to."""
    if base_url and "api.openai.com" in base_url:
        return "openai"
    models = (listing.get("data") or []) if isinstance(listing, dict) else []
    owners = {str(m.get("owned_by", "")).lower() for m in models if isinstance(m, dict)}
    if "vllm" in owners:
        return "vllm"
    if owners & {"llamacpp", "llama.cpp", "llama-cpp"}:
        return "llamacpp"
    if owners & {"library", "ollama"}:
        return "ollama"
    return "openai"


def looks_like_refusal(status: int | None, message: str) -> bool:
    """Whether an error answer refuses the structured-output part of a request."""
    return status in (400, 404, 415, 422, 500, 501) and bool(_REFUSAL.search(message or ""))
