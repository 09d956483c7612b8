"""The real test kube-apiserver (tools/kube-testenv) for the end-to-end tests, and a small REST client.

    kube = KubeTestenv.start()       # reuses $KUBECONFIG_TESTENV when it is live
    kube.apply_crds()
    kube.create("/api/v1/namespaces", {...})
    kube.stop()

Stdlib only. kubectl (from `tools/kube-testenv/build --kubectl`) is used once to read the kubeconfig.
"""

import base64
import json
import os
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.environ.get("AAD_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TESTENV = os.path.join(ROOT, "tools", "kube-testenv")
CRDS = os.path.join(ROOT, "tests", "kube", "testdata", "crds.yaml")
AAD_GROUP = "/apis/aadpodidentity.k8s.io/v1"


class KubeError(Exception):
    def __init__(self, status, body):
        super().__init__(f"kube-apiserver answered {status}: {body}")
        self.status = status
        self.body = body


def kubectl_path():
    return subprocess.run([os.path.join(TESTENV, "build"), "--kubectl"], check=True, capture_output=True,
                          text=True).stdout.strip()


class KubeTestenv:
    def __init__(self, kubeconfig, proc=None, work=None, files=()):
        self.kubeconfig = kubeconfig
        self.proc = proc
        self.work = work
        self.files = list(files)
        self.kubectl = kubectl_path()
        cfg = json.loads(subprocess.run([self.kubectl, "--kubeconfig", kubeconfig, "config", "view", "--raw",
                                         "--minify", "-o", "json"], check=True, capture_output=True,
                                        text=True).stdout)
        cluster = cfg["clusters"][0]["cluster"]
        self.server = cluster["server"].rstrip("/")
        self.port = int(self.server.rsplit(":", 1)[1])
        self.token = cfg["users"][0]["user"]["token"]
        self.ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.ssl = ssl.create_default_context(cadata=self.ca_pem)

    @classmethod
    def start(cls, ready_timeout=180):
        """Starts tools/kube-testenv/start (ended with this process), or reuses $KUBECONFIG_TESTENV."""
        reuse = os.environ.get("KUBECONFIG_TESTENV")
        if reuse and os.path.exists(reuse):
            env = cls(reuse)
            try:
                env.get("/readyz", raw=True)
                return env
            except (OSError, KubeError):
                pass
        subprocess.run([os.path.join(TESTENV, "build")], check=True, stdout=subprocess.DEVNULL)
        work = tempfile.mkdtemp(prefix="e2e-testenv-")
        out = open(os.path.join(work, "stdout"), "w+")
        err = open(os.path.join(work, "stderr"), "w")
        proc = subprocess.Popen([os.path.join(TESTENV, "start"), "--watch-parent"], stdout=out, stderr=err)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            out.seek(0)
            line = next((l for l in out.read().splitlines() if l.startswith("READY ")), None)
            if line:
                return cls(line[6:].strip(), proc, work, (out, err))
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        proc.kill()
        proc.wait()
        out.close()
        err.close()
        with open(os.path.join(work, "stderr")) as fh:
            raise RuntimeError("kube-testenv did not become ready: " + fh.read()[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in self.files:
            f.close()
        if self.work:
            subprocess.run(["rm", "-rf", self.work])

    # ---- REST
    def call(self, method, path, body=None, content_type="application/json", raw=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              **({"Content-Type": content_type} if data else {})})
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise KubeError(exc.code, exc.read().decode(errors="replace")) from None
        return text if raw else (json.loads(text) if text else None)

    def get(self, path, raw=False):
        return self.call("GET", path, raw=raw)

    def create(self, path, obj):
        return self.call("POST", path, obj)

    def delete(self, path):
        return self.call("DELETE", path)

    def patch_status(self, path, patch):
        return self.call("PATCH", path + "/status", patch, "application/merge-patch+json")

    def kubectl_run(self, *args, stdin=None):
        return subprocess.run([self.kubectl, "--kubeconfig", self.kubeconfig, *args], input=stdin,
                              capture_output=True, text=True, check=True).stdout

    def apply_crds(self):
        self.kubectl_run("apply", "-f", CRDS)
        for plural in ("azureidentities", "azureidentitybindings", "azureassignedidentities",
                       "azurepodidentityexceptions"):
            self._wait_established(f"{plural}.aadpodidentity.k8s.io")

    def _wait_established(self, name, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            if any(c["type"] == "Established" and c["status"] == "True"
                   for c in crd.get("status", {}).get("conditions", [])):
                return
            time.sleep(0.2)
        raise RuntimeError(f"CRD {name} not established")

    # ---- objects the end-to-end tests need
    def namespace(self, prefix):
        name = f"{prefix}-{os.urandom(3).hex()}"
        self.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def create_node(self, name, provider_id):
        return self.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                             "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                                             "spec": {"providerID": provider_id}})

    def create_pod(self, ns, name, node, ip, labels=None, phase="Running", owner_replicaset=None):
        """A Pod bound to `node` (no scheduler), then status.phase/podIP/podIPs as a kubelet would set them."""
        meta = {"name": name, "namespace": ns, "labels": dict(labels or {})}
        if owner_replicaset:
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner_replicaset,
                                        "uid": "0b9b6b1e-8d9c-4f0e-9a57-5f0a3e3c1d2b", "controller": True}]
        self.create(f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "hostNetwork": False, "automountServiceAccountToken": False,
                     "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}})
        return self.patch_status(f"/api/v1/namespaces/{ns}/pods/{name}",
                                 {"status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}})

    def create_secret(self, ns, name, data):
        return self.create(f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "type": "Opaque",
            "data": {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
                     for k, v in data.items()}})

    def create_identity(self, ns, name, spec, annotations=None):
        meta = {"name": name, "namespace": ns}
        if annotations:
            meta["annotations"] = annotations
        return self.create(f"{AAD_GROUP}/namespaces/{ns}/azureidentities",
                           {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity", "metadata": meta,
                            "spec": spec})

    def create_binding(self, ns, name, identity, selector):
        return self.create(f"{AAD_GROUP}/namespaces/{ns}/azureidentitybindings",
                           {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentityBinding",
                            "metadata": {"name": name, "namespace": ns},
                            "spec": {"azureIdentity": identity, "selector": selector}})

    def create_exception(self, ns, name, pod_labels):
        return self.create(f"{AAD_GROUP}/namespaces/{ns}/azurepodidentityexceptions",
                           {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzurePodIdentityException",
                            "metadata": {"name": name, "namespace": ns}, "spec": {"podLabels": pod_labels}})

    def assign(self, identity, binding, pod_ns, pod, node, state="Assigned", aai_ns="default"):
        """The AzureAssignedIdentity MIC would create (original-behaviour.md 1.5): name
        <pod>-<podns>-<identity>, label nodename, embedded copies of the identity and binding."""
        name = f"{pod}-{pod_ns}-{identity['metadata']['name']}"
        obj = {"apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureAssignedIdentity",
               "metadata": {"name": name, "namespace": aai_ns, "labels": {"nodename": node},
                            "finalizers": ["azureassignedidentity.finalizers.aadpodidentity.k8s.io"]},
               "spec": {"azureIdentityRef": identity, "azureBindingRef": binding, "pod": pod,
                        "podNamespace": pod_ns, "nodename": node},
               "status": {"status": state, "availableReplicas": 1}}
        return self.create(f"{AAD_GROUP}/namespaces/{aai_ns}/azureassignedidentities", obj)

    def set_assigned_state(self, aai, state):
        ns, name = aai["metadata"]["namespace"], aai["metadata"]["name"]
        return self.call("PATCH", f"{AAD_GROUP}/namespaces/{ns}/azureassignedidentities/{name}",
                         {"status": {"status": state, "availableReplicas": 1}}, "application/merge-patch+json")

