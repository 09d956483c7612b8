"""Reading the manifests as documents: raw text (for exact comparisons) and parsed YAML."""
import re
import yaml

HEADER = """# The four CRDs, a verbatim copy of those in manifests/aad-pod-identity.yaml (the suite
# manifests checks that they are identical; after editing the manifest, run
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
