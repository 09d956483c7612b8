#!/usr/bin/env python3
"""Suite manifests, no apiserver: the manifests agree with each other, with the test CRDs and
with the binary's flags, and no RBAC rule uses a wildcard.

Usage: static_test.py SOURCE_ROOT BINARY
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yaml  # noqa: E402
from manifest_docs import crd_docs, crds_as_json_text, json_docs, kind_of, name_of, objects, text_docs  # noqa: E402

root, binary = sys.argv[1], sys.argv[2]
M = lambda *p: os.path.join(root, "manifests", *p)  # noqa: E731
main_file, managed, noazure = M("aad-pod-identity.yaml"), M("managed-mode.yaml"), M("noazurejson.yaml")

passed = failed = 0


def check(desc, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   - {desc}")
    else:
        failed += 1
        print(f"FAIL - {desc}{': ' + detail if detail else ''}")


def by_key(path):
    return {(kind_of(d), name_of(d)): d for d in text_docs(path)}


# --- one source for the CRDs ------------------------------------------------------------------
main_crds = crd_docs(main_file)
check("aad-pod-identity.yaml has the four CRDs", len(main_crds) == 4)
test_crds = os.path.join(root, "tests", "kube", "testdata", "crds.yaml")
check("tests/kube/testdata/crds.yaml holds the manifest's CRDs (run tests/manifests/sync_crds.py)",
      json_docs(test_crds) == [yaml.safe_load(d) for d in main_crds])
with open(test_crds) as fh:
    check("tests/kube/testdata/crds.yaml is in the generated JSON form (other tests parse it as JSON)",
          fh.read() == crds_as_json_text(main_file))
check("managed-mode.yaml has the same CRDs except AzureAssignedIdentity",
      crd_docs(managed) == [d for d in main_crds if "azureassignedidentities." not in d])
check("noazurejson.yaml has the same four CRDs", crd_docs(noazure) == main_crds)

# --- the variants differ from the main file only where they must ------------------------------
main_docs, noaz_docs = by_key(main_file), by_key(noazure)
extra = set(noaz_docs) - set(main_docs)
check("noazurejson.yaml adds only the Secret aadpodidentity-admin-secret",
      extra == {("Secret", "aadpodidentity-admin-secret")}, str(extra))
same = [k for k in main_docs if k != ("Deployment", "mic")]
diff = [k for k in same if noaz_docs.get(k) != main_docs[k]]
check("noazurejson.yaml: every object but the MIC Deployment is identical to aad-pod-identity.yaml", not diff, str(diff))
man_docs = by_key(managed)
for key in [("ServiceAccount", "aad-pod-id-nmi-service-account"), ("ClusterRoleBinding", "aad-pod-id-nmi-binding")]:
    check(f"managed-mode.yaml {key[0]} is the main one in kube-system",
          man_docs.get(key) == main_docs[key].replace("namespace: default", "namespace: kube-system"))
ds_main = main_docs[("DaemonSet", "nmi")].replace("namespace: default", "namespace: kube-system")
ds_main = ds_main.replace("- --metadata-header-required=true\n",
                          "- --metadata-header-required=true\n        - --operation-mode=managed\n        - --forceNamespaced\n")
check("managed-mode.yaml NMI DaemonSet = the main one + --operation-mode=managed --forceNamespaced, in kube-system",
      man_docs.get(("DaemonSet", "nmi")) == ds_main)
check("managed-mode.yaml has no MIC and no AzureAssignedIdentity rule",
      ("Deployment", "mic") not in man_docs and "azureassignedidentities" not in "".join(
          d for k, d in man_docs.items() if k[0] == "ClusterRole"))

# --- RBAC: no wildcards ------------------------------------------------------------------------
for path in (main_file, managed, noazure):
    for o in objects(path):
        if o["kind"] in ("ClusterRole", "Role"):
            rules = o.get("rules", [])
            wild = [r for r in rules for f in ("verbs", "resources", "apiGroups") if "*" in r.get(f, [])]
            check(f"{os.path.basename(path)} {o['kind']} {o['metadata']['name']}: no wildcard", rules and not wild, str(wild))

# --- workloads use only flags the binary has ----------------------------------------------------
def help_flags(role):
    out = subprocess.run([binary, f"--role={role}", "--help"], capture_output=True, text=True)
    return set(re.findall(r"^\s+--([A-Za-z0-9_-]+)", out.stdout + out.stderr, flags=re.M))


flags = {"mic": help_flags("mic"), "nmi": help_flags("nmi")}
check("the binary lists its flags", len(flags["mic"]) > 10 and len(flags["nmi"]) > 10)
for path in (main_file, managed, noazure):
    for o in objects(path):
        if o["kind"] not in ("Deployment", "DaemonSet"):
            continue
        role = "mic" if o["kind"] == "Deployment" else "nmi"
        for c in o["spec"]["template"]["spec"]["containers"]:
            used = [a.split("=", 1)[0].lstrip("-") for a in c.get("args", [])]
            unknown = [u for u in used if u not in flags[role]]
            check(f"{os.path.basename(path)} {o['kind']} {o['metadata']['name']}: flags {used} exist for --role={role}",
                  not unknown, str(unknown))
            # The exact arguments pass the binary's validation (it validates them all before --version).
            argv = [binary, f"--role={role}"] + [re.sub(r"\$\(NODE_NAME\)", "node-1", a) for a in c.get("args", [])]
            env = dict(os.environ, MIC_POD_NAMESPACE="default", NODE_NAME="node-1")
            r = subprocess.run(argv + ["--version"], capture_output=True, text=True, env=env)
            check(f"{os.path.basename(path)} {o['metadata']['name']}: the binary accepts exactly these arguments",
                  r.returncode == 0, r.stderr.strip())
            probe_port = next(a.split("=", 1)[1] for a in c["args"] if a.startswith("--http-probe-port="))
            ports = {c["livenessProbe"]["httpGet"]["port"], c["readinessProbe"]["httpGet"]["port"]}
            check(f"{os.path.basename(path)} {o['metadata']['name']}: probes on the --http-probe-port ({probe_port})",
                  ports == {int(probe_port)})
            sc = c["securityContext"]
            check(f"{os.path.basename(path)} {o['metadata']['name']}: read-only root, no privilege escalation, caps dropped",
                  sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                  and sc["capabilities"]["drop"] == ["ALL"] and not sc.get("privileged"))
            if role == "nmi":
                check(f"{os.path.basename(path)} nmi: only NET_ADMIN and NET_RAW added",
                      sorted(sc["capabilities"].get("add", [])) == ["NET_ADMIN", "NET_RAW"])
            else:
                check(f"{os.path.basename(path)} mic: no capability added", not sc["capabilities"].get("add"))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
