"""Validation of exported lines against the OCSF 1.5.0 JSON schema, the schema's own truth.

The schema comes from ``ocsf-json-schema`` (PyPI, MIT; pinned in pyproject.toml and
requirements.lock), which ships the OCSF schema server's export of each released version
(``ocsf_json_schema/ocsf/1.5.0.json``, from https://schema.ocsf.io/1.5.0/export/schema, Apache-2.0)
and turns a class with its profiles into a JSON Schema (draft 2020-12, no unknown attributes
allowed). jsonschema checks each line against it; OCSF's own enum captions give the observable
and user types their names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

VERSION = "1.5.0"
CLASSES = {2004: "detection_finding", 2005: "incident_finding"}
PROFILES = ["cloud"]


@functools.cache
def _raw() -> dict[str, Any]:
    schema: dict[str, Any] = get_ocsf_schema(version=VERSION)
    return schema


@functools.cache
def _validator(class_uid: int) -> jsonschema.protocols.Validator:
    schema = OcsfJsonSchemaEmbedded(_raw()).get_class_schema(CLASSES[class_uid], PROFILES)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def errors(document: Mapping[str, Any]) -> list[str]:
    """Every way ``document`` breaks the OCSF 1.5.0 schema of its class (empty: valid)."""
    class_uid = document.get("class_uid")
    if class_uid not in CLASSES:
        return [f"class_uid {class_uid!r} is not one keytrail exports"]
    found = _validator(int(class_uid)).iter_errors(document)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in found]


def assert_valid(documents: Iterable[Mapping[str, Any]]) -> int:
    """Assert every document is valid OCSF 1.5.0; returns how many were checked."""
    checked = 0
    for document in documents:
        problems = errors(document)
        assert problems == [], (document.get("metadata", {}).get("uid"), problems[:10])
        checked += 1
    assert checked, "no OCSF document to check"
    return checked


def enum_caption(object_name: str, attribute: str, value: int) -> str:
    """The caption OCSF 1.5.0 gives ``value`` of ``object_name.attribute`` (an enum)."""
    enum = _raw()["objects"][object_name]["attributes"][attribute]["enum"]
    return str(enum[str(value)]["caption"])


def type_ids_missing(document: Any, path: str = "") -> list[str]:
    """Paths of objects that carry a ``type`` where OCSF 1.5.0 defines a ``type_id`` beside it
    but the document leaves it out (checked against the class's JSON schema)."""
    schema = OcsfJsonSchemaEmbedded(_raw()).get_class_schema(
        CLASSES[document["class_uid"]], PROFILES
    )
    return _walk(document, schema, schema.get("$defs", {}), path)


def _walk(value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> list[str]:
    if "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
    if isinstance(value, list):
        return [m for i, item in enumerate(value)
                for m in _walk(item, schema.get("items", {}), defs, f"{path}[{i}]")]  # fmt: skip
    if not isinstance(value, dict):
        return []
    properties = schema.get("properties", {})
    missing = [path or "(top)"] if "type" in value and "type_id" in properties and (
        "type_id" not in value
    ) else []  # fmt: skip
    for key, item in value.items():
        if key in properties:
            missing += _walk(item, properties[key], defs, f"{path}.{key}" if path else key)
    return missing
