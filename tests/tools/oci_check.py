#!/usr/bin/env python3
"""Checks an OCI image layout the way a strict consumer would.

Usage: oci_check.py LAYOUT_DIR [SCHEMA_DIR]

- every JSON document validates against the OCI image-spec JSON schemas (draft-04);
- every descriptor's blob exists, its sha256 equals the digest and its length the size;
- nested indexes are walked; a descriptor's platform equals the config's os/architecture;
- each layer's gunzipped sha256 equals the config's diff_id at the same position.

Exits 0 and prints a summary when everything holds, else prints each problem and exits 1.
"""
import gzip
import hashlib
import json
import os
import sys

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DEFAULT_SCHEMAS = "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema"
MEDIA = {
    "application/vnd.oci.image.index.v1+json": "image-index-schema.json",
    "application/vnd.oci.image.manifest.v1+json": "image-manifest-schema.json",
    "application/vnd.oci.image.config.v1+json": "config-schema.json",
}


def strip_ids(node):
    if isinstance(node, dict):
        return {k: strip_ids(v) for k, v in node.items() if k != "id"}
    if isinstance(node, list):
        return [strip_ids(v) for v in node]
    return node


def main():
    layout = sys.argv[1]
    schema_dir = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_SCHEMAS
    schemas = {}
    for name in os.listdir(schema_dir):
        if name.endswith(".json"):
            with open(os.path.join(schema_dir, name)) as f:
                schemas[name] = strip_ids(json.load(f))
    registry = Registry().with_resources(
        (name, Resource.from_contents(s, default_specification=DRAFT4)) for name, s in schemas.items()
    )
    problems = []
    counts = {"index": 0, "manifest": 0, "config": 0, "layer": 0}

    def validate(doc, schema_name, what):
        v = Draft4Validator(schemas[schema_name], registry=registry)
        for err in v.iter_errors(doc):
            problems.append(f"{what}: schema {schema_name}: {err.message} at /{'/'.join(map(str, err.path))}")

    def blob(desc, what):
        digest = desc.get("digest", "")
        algo, _, hexd = digest.partition(":")
        path = os.path.join(layout, "blobs", algo, hexd)
        if not os.path.isfile(path):
            problems.append(f"{what}: blob {digest} missing")
            return None
        data = open(path, "rb").read()
        if hashlib.sha256(data).hexdigest() != hexd:
            problems.append(f"{what}: blob {digest} content does not match its digest")
        if len(data) != desc.get("size"):
            problems.append(f"{what}: size {desc.get('size')} but blob has {len(data)} bytes")
        return data

    def walk(desc, what):
        media = desc.get("mediaType")
        data = blob(desc, what)
        if data is None:
            return
        doc = json.loads(data)
        if doc.get("mediaType") != media:
            problems.append(f"{what}: descriptor says {media}, document says {doc.get('mediaType')}")
        if media == "application/vnd.oci.image.index.v1+json":
            counts["index"] += 1
            validate(doc, MEDIA[media], what)
            for i, child in enumerate(doc.get("manifests", [])):
                walk(child, f"{what}/manifests[{i}]")
        elif media == "application/vnd.oci.image.manifest.v1+json":
            counts["manifest"] += 1
            validate(doc, MEDIA[media], what)
            cdesc = doc["config"]
            cdata = blob(cdesc, f"{what}/config")
            if cdata is None:
                return
            config = json.loads(cdata)
            counts["config"] += 1
            validate(config, MEDIA[cdesc["mediaType"]], f"{what}/config")
            platform = desc.get("platform")
            if platform and (platform.get("os"), platform.get("architecture")) != (
                config.get("os"),
                config.get("architecture"),
            ):
                problems.append(f"{what}: platform {platform} differs from config {config.get('os')}/{config.get('architecture')}")
            diff_ids = config.get("rootfs", {}).get("diff_ids", [])
            layers = doc.get("layers", [])
            if len(diff_ids) != len(layers):
                problems.append(f"{what}: {len(layers)} layers but {len(diff_ids)} diff_ids")
            for i, (layer, diff_id) in enumerate(zip(layers, diff_ids)):
                ldata = blob(layer, f"{what}/layers[{i}]")
                if ldata is None:
                    continue
                counts["layer"] += 1
                try:
                    raw = gzip.decompress(ldata) if layer["mediaType"].endswith("+gzip") else ldata
                except (OSError, EOFError) as e:
                    problems.append(f"{what}/layers[{i}]: not a valid gzip stream ({e})")
                    continue
                if "sha256:" + hashlib.sha256(raw).hexdigest() != diff_id:
                    problems.append(f"{what}/layers[{i}]: diff_id mismatch")
        else:
            problems.append(f"{what}: unexpected media type {media}")

    with open(os.path.join(layout, "oci-layout")) as f:
        validate(json.load(f), "image-layout-schema.json", "oci-layout")
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    validate(top, "image-index-schema.json", "index.json")
    for i, desc in enumerate(top.get("manifests", [])):
        walk(desc, f"index.json/manifests[{i}]")

    if problems:
        for p in problems:
            print(p)
        sys.exit(1)
    print("ok: {index} indexes, {manifest} manifests, {config} configs, {layer} layers".format(**counts))


if __name__ == "__main__":
    main()
