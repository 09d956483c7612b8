"""The quickstart flow (run by tools/quickstart, as root, with the test virtualenv's Python).

A local cluster on this machine: the real kube-apiserver (tools/kube-testenv), the Azure emulator
(a VM scale set with two instances, a user-assigned identity, MIC's service principal), a "node"
network namespace running NMI with its real iptables redirect, and a "pod" namespace whose
process asks 169.254.169.254 for a token with the Azure SDK. MIC and NMI are the real binary,
each with a TokenRequest token of exactly its ServiceAccount from manifests/aad-pod-identity.yaml.
Prints each step with its duration; exit 0 only if the pod got its token.
"""

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.environ.get("AAD_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "azure-emulator"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from admin_client import AdminClient  # noqa: E402
from netlab import Lab  # noqa: E402

SUB = "4be8920b-2978-43d7-ab14-04d8549c1d05"       # the emulator's default subscription
TENANT = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"    # and tenant (also in manifests/demo)
NODE_RG = "MC_quickstart_cluster_westeurope"
VMSS = "aks-nodepool1-vmss"
NODES = [f"{VMSS}00000{i}" for i in range(2)]
DEMO_ID = {"resourceGroup": "demo-rg", "name": "demo-identity",
           "clientId": "3b2f6a9c-1d4e-4f8a-9b7c-2e5d6f7a8b9c"}  # = manifests/demo/azureidentity-msi.yaml
NS = "default"                                     # the namespace of manifests/aad-pod-identity.yaml
MIC_SA, NMI_SA = "aad-pod-id-mic-service-account", "aad-pod-id-nmi-service-account"


class Failed(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM or SIGINT: stop where we are and tear down."""


def _interrupt(*_):
    raise Interrupted()


class Quickstart:
    def __init__(self, opts):
        self.opts = opts
        self.kubectl_bin = opts.kubectl
        self.work = tempfile.mkdtemp(prefix="aad-quickstart-")
        self.procs = []
        self.lab = None
        self.kubeconfig = None
        self.token_ok = False
        self.timings = []

    # ---- output
    def step(self, title, fn):
        print(f"==> {title}", flush=True)
        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            print(f"    FAILED after {time.monotonic() - t0:.1f}s: {exc}", flush=True)
            raise Failed(title) from exc
        took = time.monotonic() - t0
        self.timings.append((title, took))
        print(f"    done in {took:.1f}s", flush=True)
        return result

    @staticmethod
    def say(text):
        for line in str(text).rstrip("\n").split("\n"):
            print(f"    {line}", flush=True)

    # ---- processes
    def spawn(self, name, argv, netns=None, env=None):
        log = open(os.path.join(self.work, f"{name}.log"), "w")
        full_env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBECONFIG_TESTENV")}
        full_env.update(env or {})
        if netns:
            p = self.lab.popen(netns, argv, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        else:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                 preexec_fn=lambda: _die_with_parent())
            self.procs.append(p)
        p.log_path = log.name
        return p

    def log_tail(self, p, lines=30):
        with open(p.log_path) as fh:
            return "".join(fh.readlines()[-lines:])

    def kubectl(self, *args, stdin=None, check=True, kubeconfig=None):
        r = subprocess.run([self.kubectl_bin, "--kubeconfig", kubeconfig or self.kubeconfig, *args],
                           input=stdin, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    @staticmethod
    def wait_for(what, predicate, timeout, interval=0.2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

    # ---- steps
    def start_apiserver(self):
        p = subprocess.Popen([os.path.join(ROOT, "tools", "kube-testenv", "start"), "--watch-parent"],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(self.work, "apiserver.log"), "w"),
                             text=True, preexec_fn=lambda: _die_with_parent())
        self.procs.append(p)
        line = _read_ready(p, 240)
        self.kubeconfig = line
        self.api_port = int(self.kubectl("config", "view", "--minify", "-o",
                                         "jsonpath={.clusters[0].cluster.server}").rsplit(":", 1)[1])
        self.say(f"kube-apiserver v1.34 on https://127.0.0.1:{self.api_port}, KUBECONFIG={self.kubeconfig}")

    def start_lab(self):
        self.lab = Lab(pods=["demo"], prefix="aadqs").start()
        self.lab.forward_into_node(self.api_port)
        self.pod = self.lab.pods["demo"]
        self.say(f"node namespace {self.lab.node}: 169.254.169.254 on lo, kube-apiserver forwarded in")
        self.say(f"pod namespace {self.pod.netns}: eth0 {self.pod.ip}, default route via the node")

    def start_emulator(self):
        vmss_instance = (f"/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/"
                         f"virtualMachineScaleSets/{VMSS}/virtualMachines/0")
        argv = [sys.executable, "-u", os.path.join(ROOT, "tools", "azure-emulator", "emulator.py"),
                "--admin-listen", "127.0.0.1:0,name=admin", "--arm-listen", "127.0.0.1:0,name=arm",
                "--aad-listen", "127.0.0.1:0,name=aad",
                "--imds-listen", f"169.254.169.254:80,netns={self.lab.node},vm={vmss_instance},name=node-imds",
                "--tenant-id", TENANT, "--subscription-id", SUB]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(os.path.join(self.work, "emulator.log"), "w"),
                             text=True, preexec_fn=lambda: _die_with_parent())
        self.procs.append(p)
        urls = json.loads(_read_ready(p, 30))
        listeners = {l["name"]: l["url"] for l in urls["listeners"]}
        self.admin_url, self.arm_url, self.aad_url = listeners["admin"], listeners["arm"], listeners["aad"]
        self.admin = AdminClient(self.admin_url)
        self.admin.update_settings({"arm": {"lro": {"retryAfter": 0}}})
        self.admin.add_vmss(resourceGroup=NODE_RG, name=VMSS, subscriptionId=SUB, capacity=2)
        ident = self.admin.add_identity(subscriptionId=SUB, **DEMO_ID)
        self.identity_id = ident["resourceId"]
        self.mic_client_id, self.mic_secret = str(uuid.uuid4()), secrets.token_urlsafe(24)
        self.admin.add_service_principal(self.mic_client_id, tenant_id=TENANT, secret=self.mic_secret)
        self.say(f"ARM {self.arm_url}, Azure AD {self.aad_url}, admin {self.admin_url}")
        self.say(f"IMDS 169.254.169.254:80 inside the node, answering as {VMSS} instance 0")
        self.say(f"VM scale set {NODE_RG}/{VMSS} (2 instances), user-assigned identity {DEMO_ID['name']} "
                 f"(client id {DEMO_ID['clientId']}), MIC's service principal {self.mic_client_id}")

    def apply_manifests(self):
        out = self.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "aad-pod-identity.yaml"))
        self.say(out)
        self.kubectl("wait", "--for", "condition=established", "--timeout=60s",
                     *[f"crd/{p}.aadpodidentity.k8s.io" for p in
                       ("azureidentities", "azureidentitybindings", "azureassignedidentities",
                        "azurepodidentityexceptions")])
        self.say(self.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "mic-exception.yaml")))
        self.say("(no kubelet here: the DaemonSet and Deployment objects exist, the binaries run below)")

    def create_nodes(self):
        for i, node in enumerate(NODES):
            provider = (f"azure:///subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/"
                        f"virtualMachineScaleSets/{VMSS}/virtualMachines/{i}")
            self.kubectl("apply", "-f", "-", stdin=json.dumps({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"}},
                "spec": {"providerID": provider}}))
        self.say(self.kubectl("get", "nodes", "-o", "custom-columns=NAME:.metadata.name,PROVIDER:.spec.providerID"))

    def sa_kubeconfig(self, sa):
        token = self.kubectl("-n", NS, "create", "token", sa, "--duration=2h").strip()
        cfg = json.loads(self.kubectl("config", "view", "--minify", "--raw", "-o", "json"))
        cluster = cfg["clusters"][0]["cluster"]
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": sa,
               "clusters": [{"name": "quickstart", "cluster": cluster}],
               "users": [{"name": sa, "user": {"token": token}}],
               "contexts": [{"name": sa, "context": {"cluster": "quickstart", "user": sa, "namespace": NS}}]}
        path = os.path.join(self.work, f"{sa}.kubeconfig")
        with open(path, "w") as fh:
            json.dump(doc, fh)
        os.chmod(path, 0o600)
        who = self.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=path)
        return path, who

    def start_mic(self):
        kubeconfig, who = self.sa_kubeconfig(MIC_SA)
        cloud = {"cloud": "AzurePublicCloud", "tenantId": TENANT, "subscriptionId": SUB, "resourceGroup": NODE_RG,
                 "vmType": "vmss", "aadClientId": self.mic_client_id, "aadClientSecret": self.mic_secret}
        azure_json = os.path.join(self.work, "azure.json")
        with open(azure_json, "w") as fh:
            json.dump(cloud, fh)
        os.chmod(azure_json, 0o600)
        self.mic_probe, self.mic_metrics = _free_port(), _free_port()
        self.mic = self.spawn("mic", [self.opts.binary, "--role=mic", f"--kubeconfig={kubeconfig}",
                                      f"--cloudconfig={azure_json}", f"--http-probe-port={self.mic_probe}",
                                      f"--prometheus-port={self.mic_metrics}", "--leader-election-instance=mic-0"],
                              env={"MIC_POD_NAMESPACE": NS, "AAD_POD_IDENTITY_ARM_ENDPOINT": self.arm_url + "/",
                                   "AAD_POD_IDENTITY_AAD_ENDPOINT": self.aad_url + "/"})
        self.say(f"MIC as {who} (TokenRequest token), azure.json with the service principal")
        self.wait_for("MIC /readyz", lambda: self._alive(self.mic) and _http_status(
            f"http://127.0.0.1:{self.mic_probe}/readyz") == 200, 60)
        lease = self.kubectl("-n", NS, "get", "lease", "aad-pod-identity-mic", "-o",
                             "jsonpath={.spec.holderIdentity}", check=False)
        self.say(f"ready; Lease {NS}/aad-pod-identity-mic held by {lease or '?'}; log {self.mic.log_path}")

    def start_nmi(self):
        kubeconfig, who = self.sa_kubeconfig(NMI_SA)
        kubelet = os.path.join(self.work, "kubelet")  # what NMI inspects for kubenet (/etc/default/kubelet)
        with open(kubelet, "w") as fh:
            fh.write("KUBELET_FLAGS=--network-plugin=cni\n")
        self.nmi = self.spawn("nmi", [self.opts.binary, "--role=nmi", f"--node={NODES[0]}",
                                      f"--kubeconfig={kubeconfig}", f"--kubelet-config={kubelet}",
                                      "--http-probe-port=8085", "--prometheus-port=9090",
                                      "--find-identity-retry-interval=1"],
                              netns=self.lab.node)
        self.say(f"NMI in {self.lab.node} as {who}, --node={NODES[0]}")
        self.wait_for("NMI /readyz", lambda: self._alive(self.nmi) and self._node_http_ok(8085), 60)
        # /healthz turns "Active" once the redirect is in place (readiness is only the caches).
        self.wait_for("NMI /healthz Active", lambda: self._alive(self.nmi) and self._node_active(8085), 60)
        rules = self.lab.run(self.lab.node, ["iptables", "-t", "nat", "-S", "aad-metadata"], timeout=30).stdout
        self.say("iptables -t nat -S aad-metadata (in the node):")
        self.say("\n".join("  " + l for l in rules.splitlines()) or "  (no chain)")
        self.say(f"log {self.nmi.log_path}")

    def apply_demo(self):
        for f in ("azureidentity-msi.yaml", "azureidentitybinding.yaml"):
            self.say(self.kubectl("apply", "-f", os.path.join(ROOT, "manifests", "demo", f)))
        self.say(self.kubectl("get", "azureidentities,azureidentitybindings", "-n", NS))

    def start_pod(self):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "demo", "namespace": NS, "labels": {"app": "demo", "aadpodidbinding": "demo"}},
               "spec": {"nodeName": NODES[0], "automountServiceAccountToken": False,
                        "containers": [{"name": "demo", "image": "registry.k8s.io/pause:3.10"}]}}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        self.kubectl("-n", NS, "patch", "pod", "demo", "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"phase": "Running", "podIP": self.pod.ip, "podIPs": [{"ip": self.pod.ip}]}}))
        self.say(f"Pod {NS}/demo (aadpodidbinding=demo) on {NODES[0]}, Running, IP {self.pod.ip} "
                 f"= the pod namespace {self.pod.netns}")

    def wait_assigned(self):
        def assigned():
            items = json.loads(self.kubectl("get", "azureassignedidentities", "-A", "-o", "json"))["items"]
            return [i for i in items if (i.get("status") or {}).get("status") == "Assigned"]
        self.wait_for("an Assigned AzureAssignedIdentity", assigned, 90)
        self.say(self.kubectl("get", "azureassignedidentities", "-A"))
        ids = self.admin.assigned_identities(f"vmss/{VMSS}")
        self.say(f"identities on the scale set (Azure emulator): {json.dumps(ids)}")
        self.say("kubectl get events -A:")
        self.say(self.kubectl("get", "events", "-A"))

    def get_token(self):
        script = r"""
import json, sys, urllib.request
from azure.identity import ManagedIdentityCredential
client_id = sys.argv[1]
tok = ManagedIdentityCredential(client_id=client_id).get_token("https://management.azure.com/.default")
print(json.dumps({"sdk": "azure-identity", "token_length": len(tok.token), "expires_on": tok.expires_on}))
req = urllib.request.Request("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
                             "&resource=https://management.azure.com/&client_id=" + client_id,
                             headers={"Metadata": "true"})
with urllib.request.urlopen(req, timeout=60) as resp:
    body = json.loads(resp.read())
body["access_token"] = body["access_token"][:12] + "..." + body["access_token"][-6:]
print(json.dumps({"status": resp.status, "response": body}))
"""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "IMDS_"))}
        env["NO_PROXY"] = env["no_proxy"] = "*"
        r = self.lab.run(self.pod.netns, [sys.executable, "-c", script, DEMO_ID["clientId"]], env=env, timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"the SDK in the pod failed: {r.stderr.strip()[-2000:]}")
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        sdk, raw = lines[0], lines[1]
        self.say(f"ManagedIdentityCredential(client_id={DEMO_ID['clientId']}).get_token(...) from {self.pod.ip}: "
                 f"a {sdk['token_length']}-character token, expires_on {sdk['expires_on']}")
        self.say(f"GET http://169.254.169.254/metadata/identity/oauth2/token from the pod -> HTTP {raw['status']}:")
        self.say(json.dumps(raw["response"], indent=2))
        self.token_ok = True

    # ---- helpers
    def _alive(self, p):
        if p.poll() is not None:
            raise RuntimeError(f"exited with status {p.returncode}:\n{self.log_tail(p)}")
        return True

    def _node_http_ok(self, port):
        r = self.lab.run(self.lab.node, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                         f"http://127.0.0.1:{port}/readyz"], timeout=10)
        return r.stdout.strip() == "200"

    def _node_active(self, port):
        r = self.lab.run(self.lab.node, ["curl", "-s", f"http://127.0.0.1:{port}/healthz"], timeout=10)
        return r.stdout.strip() == "Active"

    def poke_instructions(self):
        print(f"""
The cluster is left running (--keep). In another shell, as root:
  export KUBECONFIG={self.kubeconfig}
  kubectl get azureidentities,azureidentitybindings,azureassignedidentities -A
  ip netns exec {self.lab.node} iptables -t nat -S aad-metadata
  ip netns exec {self.pod.netns} curl -s -H Metadata:true \\
    'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/'
  curl -s {self.admin_url}/admin/resource?id=vmss/{VMSS}      # the scale set in the Azure emulator
  curl -s http://127.0.0.1:{self.mic_probe}/healthz; curl -s http://127.0.0.1:{self.mic_metrics}/metrics | grep ^aadpodidentity_   # MIC
  ip netns exec {self.lab.node} curl -s http://127.0.0.1:8085/healthz                         # NMI (in the node)
  ip netns exec {self.lab.node} curl -s http://127.0.0.1:9090/metrics | grep ^aadpodidentity_
  logs: {self.work}/mic.log {self.work}/nmi.log
Press Ctrl-C (or send SIGTERM to {os.getpid()}) to tear everything down.""", flush=True)
        try:
            while True:
                time.sleep(3600)
        except Interrupted:
            pass

    def teardown(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        t0 = time.monotonic()
        print("==> tearing down", flush=True)
        if self.lab:
            self.lab.close()  # NMI (it removes its chain), then the namespaces
        for p in reversed(self.procs):  # MIC (releases its Lease), the emulator, then the apiserver
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not self.opts.keep_logs:
            subprocess.run(["rm", "-rf", self.work])
        print(f"    done in {time.monotonic() - t0:.1f}s", flush=True)

    def run(self):
        t0 = time.monotonic()
        try:
            self.step("starting the real kube-apiserver (tools/kube-testenv)", self.start_apiserver)
            self.step("creating the network lab: a node and a pod network namespace", self.start_lab)
            self.step("starting the Azure emulator (IMDS, Azure AD, ARM)", self.start_emulator)
            self.step("kubectl apply -f manifests/aad-pod-identity.yaml, manifests/mic-exception.yaml",
                      self.apply_manifests)
            self.step("registering two nodes of the scale set", self.create_nodes)
            self.step("starting MIC with its ServiceAccount's token", self.start_mic)
            self.step("starting NMI in the node namespace (iptables redirect)", self.start_nmi)
            self.step("kubectl apply -f manifests/demo/azureidentity-msi.yaml, manifests/demo/azureidentitybinding.yaml",
                      self.apply_demo)
            self.step("starting the demo pod (network namespace + Pod object)", self.start_pod)
            self.step("waiting for MIC to assign the identity (AzureAssignedIdentity Assigned)", self.wait_assigned)
            self.step("getting a token from inside the pod through 169.254.169.254 (Azure SDK)", self.get_token)
            if self.opts.keep:
                self.poke_instructions()
        except Interrupted:
            print("quickstart: interrupted", flush=True)
        except Failed as exc:
            print(f"quickstart: FAILED at: {exc}", flush=True)
            for name in ("mic", "nmi"):
                p = getattr(self, name, None)
                if p is not None:
                    print(f"--- last lines of {name}.log ---\n{self.log_tail(p)}", flush=True)
        finally:
            self.teardown()
        print(f"quickstart: {'token obtained' if self.token_ok else 'NO token'} "
              f"({time.monotonic() - t0:.1f}s in all)", flush=True)
        return 0 if self.token_ok else 1


def _die_with_parent():
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _read_ready(p, timeout):
    found = {}

    def reader():
        for line in p.stdout:
            if line.startswith("READY "):
                found["line"] = line[6:].strip()
                return
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if "line" not in found:
        raise RuntimeError(f"no READY line within {timeout}s (exit status {p.poll()})")
    return found["line"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--keep", action="store_true", help="leave it running until Ctrl-C")
    ap.add_argument("--keep-logs", action="store_true", help="do not remove the logs at the end")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("quickstart: needs root (network namespaces and iptables)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    return Quickstart(opts).run()


if __name__ == "__main__":
    sys.exit(main())
