#!/usr/bin/env python3
"""Reads back every object of FILE from namespace NS and compares it with what the file says:
every top-level field but metadata, plus metadata labels, annotations and finalizers.
Prints one line per object; exit status 1 on any difference.

Usage: roundtrip.py FILE NS   (kubectl: $TESTENV_KUBECTL or kubectl on PATH)
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_docs import objects  # noqa: E402

path, ns = sys.argv[1], sys.argv[2]
kubectl = os.environ.get("TESTENV_KUBECTL") or "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def without_nulls(v):
    """A null field means "absent" to every client (kubectl omits it when it writes)."""
    if isinstance(v, dict):
        return {k: without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [without_nulls(x) for x in v]
    return v


bad = 0
for want in map(without_nulls, objects(path)):
    kind, name = want["kind"], want["metadata"]["name"]
    out = subprocess.run([kubectl, "-n", want["metadata"].get("namespace", ns), "get",
                          f"{kind.lower()}.aadpodidentity.k8s.io", name, "-o", "json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL - {kind}/{name}: {out.stderr.strip()}")
        bad += 1
        continue
    got = json.loads(out.stdout)
    diffs = []
    for key in sorted(set(want) | set(got)):
        if key == "metadata":
            continue
        if want.get(key) != got.get(key):
            diffs.append(f"{key}: wrote {json.dumps(want.get(key))} read {json.dumps(got.get(key))}")
    for key in ("labels", "annotations", "finalizers"):
        w = want["metadata"].get(key)
        g = got["metadata"].get(key)
        if key == "annotations" and g:
            g = {k: v for k, v in g.items() if k != LAST_APPLIED} or None
        if w != g:
            diffs.append(f"metadata.{key}: wrote {w} read {g}")
    if diffs:
        bad += 1
        print(f"FAIL - {kind}/{name} changed: " + "; ".join(diffs))
    else:
        print(f"ok   - {kind}/{name} round-trips unchanged")
sys.exit(1 if bad else 0)
