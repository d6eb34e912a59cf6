#!/usr/bin/env python3
"""Generate src/dialect/tables/arrays.json from UPS's OpenAPI specs.

For every operation of every spec, walk the JSON request body schema and the 200
answer schema ($refs resolved, allOf merged, oneOf: every branch) and record each
property path whose schema is `type: array`. Paths are keyed by the wrapper's
top-level property (the XML root element: `RateRequest`, `RateResponse`, ...) and
written below it, slash-joined (`Shipment/Package`). The XML <-> JSON engine reads
this file to decide which elements are arrays, so the decision never depends on
how often an element repeats in one document.

Usage: python3 scripts/gen-schema-tables.py [SPEC_DIR] > src/dialect/tables/arrays.json
(SPEC_DIR defaults to ../shared/ups-openapi relative to the repository root.)
Needs PyYAML. Output is deterministic (sorted) so a re-run shows no diff.
"""
import glob
import json
import os
import sys

import yaml

MAX_DEPTH = 24  # XOLTWS schemas nest ~12 deep; this bounds recursive schemas.


def load(path):
    # Shipping.yaml carries a literal tab after a quoted scalar, which YAML forbids.
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f.read().replace("\t", " "))


def resolve(spec, schema):
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        node = spec
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node
        seen += 1
    return schema if isinstance(schema, dict) else {}


def properties(spec, schema):
    """(name, schema) of an object schema, allOf/oneOf/anyOf branches merged."""
    schema = resolve(spec, schema)
    out = list((schema.get("properties") or {}).items())
    for key in ("allOf", "oneOf", "anyOf"):
        for branch in schema.get(key) or []:
            out.extend(properties(spec, branch))
    return out


def is_array(spec, schema):
    schema = resolve(spec, schema)
    if schema.get("type") == "array":
        return True
    # "string or array of strings" (Pickup AddressLine): an array is valid, so list it.
    return any(resolve(spec, b).get("type") == "array" for b in schema.get("oneOf") or [])


def items(spec, schema):
    schema = resolve(spec, schema)
    if schema.get("type") == "array":
        return schema.get("items") or {}
    for b in schema.get("oneOf") or []:
        b = resolve(spec, b)
        if b.get("type") == "array":
            return b.get("items") or {}
    return schema


def walk(spec, schema, prefix, out, depth):
    if depth > MAX_DEPTH:
        return
    for name, sub in properties(spec, schema):
        path = f"{prefix}/{name}" if prefix else name
        if is_array(spec, sub):
            out.add(path)
        walk(spec, items(spec, sub), path, out, depth + 1)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "ups-openapi")
    tables = {}
    for path in sorted(glob.glob(os.path.join(spec_dir, "*.yaml"))):
        spec = load(path)
        for ops in (spec.get("paths") or {}).values():
            for op in ops.values():
                if not isinstance(op, dict):
                    continue
                schemas = []
                body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}
                if "schema" in body:
                    schemas.append(body["schema"])
                ok = (((op.get("responses") or {}).get("200") or {}).get("content") or {}).get("application/json") or {}
                if "schema" in ok:
                    schemas.append(ok["schema"])
                for s in schemas:
                    for wrapper, sub in properties(spec, s):
                        found = tables.setdefault(wrapper, set())
                        if is_array(spec, sub):
                            found.add("")
                        walk(spec, items(spec, sub), "", found, 0)
    # Only the XOLTWS wrappers (`RateRequest`, ...) and the camelCase answer roots.
    out = {k: sorted(v) for k, v in sorted(tables.items()) if k.lower().endswith(("request", "response"))}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
