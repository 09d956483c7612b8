#!/usr/bin/env python3
"""Rewrites tests/kube/testdata/crds.yaml from the CRDs of manifests/aad-pod-identity.yaml."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_docs import crds_as_json_text  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
text = crds_as_json_text(os.path.join(root, "manifests", "aad-pod-identity.yaml"))
with open(os.path.join(root, "tests", "kube", "testdata", "crds.yaml"), "w") as f:
    f.write(text)
print("wrote the manifest's CRDs to tests/kube/testdata/crds.yaml")
