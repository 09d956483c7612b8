#!/usr/bin/env python3
"""Rewrites tests/kube/testdata/crds.yaml from the CRDs of manifests/aad-pod-identity.yaml."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_docs import HEADER, crd_docs  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
docs = crd_docs(os.path.join(root, "manifests", "aad-pod-identity.yaml"))
with open(os.path.join(root, "tests", "kube", "testdata", "crds.yaml"), "w") as f:
    f.write(HEADER + "---\n".join(docs))
print(f"wrote {len(docs)} CRDs to tests/kube/testdata/crds.yaml")
