"""Reading the manifests as documents: raw text (for exact comparisons) and parsed YAML."""
import re
import yaml

HEADER = """# The four CRDs of manifests/aad-pod-identity.yaml as JSON documents (tests parse them as JSON;
# the suite manifests checks that they equal the manifest's; after editing the manifest, run
# tests/manifests/sync_crds.py).
"""


def text_docs(path):
    """The documents of a multi-document YAML file as text, comment-only lines removed."""
    with open(path) as f:
        text = f.read()
    docs = []
    for part in re.split(r"^---[ \t]*$", text, flags=re.M):
        body = "\n".join(l for l in part.strip("\n").split("\n") if not l.lstrip().startswith("#")).strip("\n")
        if body.strip():
            docs.append(body + "\n")
    return docs


def kind_of(doc_text):
    m = re.search(r"^kind:\s*(\S+)", doc_text, flags=re.M)
    return m.group(1) if m else ""


def name_of(doc_text):
    return (yaml.safe_load(doc_text).get("metadata") or {}).get("name", "")


def crd_docs(path):
    return [d for d in text_docs(path) if kind_of(d) == "CustomResourceDefinition"]


def objects(path):
    return [o for o in yaml.safe_load_all(open(path)) if o]


def crds_as_json_text(manifest_path):
    """The manifest's CRDs in the form of tests/kube/testdata/crds.yaml: JSON documents, one per CRD."""
    import json
    docs = [json.dumps(yaml.safe_load(d), indent=1) for d in crd_docs(manifest_path)]
    return HEADER + "\n---\n".join(docs) + "\n"


def json_docs(path):
    """The documents of a file of JSON documents separated by --- lines (comment lines skipped)."""
    import json
    return [json.loads(d) for d in text_docs(path)]
