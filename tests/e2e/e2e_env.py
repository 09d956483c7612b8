"""What every end-to-end test module needs: the network lab, the Azure emulator serving IMDS at
169.254.169.254:80 inside the node, the real kube-apiserver reachable from the node, and the
node's VM and Node object.

    env = E2EEnv(pods=["a", "b"], standin_port=2580).start()
    env.lab, env.emulator (admin_client.Emulator), env.kube (kubeapi.KubeTestenv)
    env.close()
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("AAD_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "azure-emulator"))

from admin_client import AdminClient, make_certificate  # noqa: E402
from kubeapi import KubeTestenv  # noqa: E402
from netlab import Lab  # noqa: E402

RG = "MC_e2e_cluster_westeurope"
SUB = "4be8920b-2978-43d7-ab14-04d8549c1d05"
TENANT = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"
ARM_SCOPE = "https://management.azure.com/.default"
VAULT = "https://vault.azure.net"


def skip_reason():
    """Why this machine cannot run the end-to-end suite, or None."""
    if os.geteuid() != 0:
        return "the e2e suite needs root (network namespaces and iptables); CI runs it as root"
    for tool in ("ip", "iptables"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            return f"{tool} is not installed (tools/test installs it)"
    return None


class Response:
    def __init__(self, status, body, seconds, content_type):
        self.status, self.body, self.seconds, self.content_type = status, body, seconds, content_type

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Response({self.status}, {self.body[:300]!r}, {self.seconds:.3f}s)"


def http_get(netns, path, headers=("Metadata: true",), timeout=10, host="169.254.169.254"):
    """GET http://<host><path> from inside netns with curl (no SDK logic). status 0 = no answer."""
    argv = ["curl", "-sS", "-m", str(timeout), "-o", "-", "-w", "\n@@%{http_code} %{time_total} %{content_type}"]
    for h in headers:
        argv += ["-H", h]
    r = subprocess.run(["ip", "netns", "exec", netns, *argv, f"http://{host}{path}"], capture_output=True,
                       text=True, timeout=timeout + 10)
    body, _, tail = r.stdout.rpartition("\n@@")
    status, seconds, ctype = (tail.split(" ", 2) + ["", "", ""])[:3]
    return Response(int(status or 0), body, float(seconds or 0), ctype)


def uami_id(name, rg="identities"):
    return (f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/"
            f"userAssignedIdentities/{name}")


class E2EEnv:
    def __init__(self, pods=("a", "b"), standin_port=None, arm_in_pods=False, with_kube=True):
        self.pod_names = list(pods)
        self.standin_port = standin_port
        self.arm_in_pods = arm_in_pods
        self.with_kube = with_kube
        self.lab = None
        self.kube = None
        self.emulator_proc = None
        self.admin = None
        self.urls = None
        self.work = tempfile.mkdtemp(prefix="e2e-")
        self.node_name = None
        self.vm_name = None

    # ---- lifecycle
    def start(self):
        try:
            self.lab = Lab(pods=self.pod_names).start()
            self.node_name = f"node-{self.lab.run_id.rsplit('-', 1)[1]}"
            self.vm_name = self.node_name
            self._start_emulator()
            if self.with_kube:
                self.kube = KubeTestenv.start()
                self.lab.forward_into_node(self.kube.port)
                self.kube.apply_crds()
                self.kube.create_node(self.node_name, f"azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                                                      f"Microsoft.Compute/virtualMachines/{self.vm_name}")
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        if self.lab:
            self.lab.close()  # ends the emulator too (started through the lab)
        if self.kube:
            self.kube.stop()
        subprocess.run(["rm", "-rf", self.work])

    def _start_emulator(self):
        cert, key, _, _ = make_certificate(cn="127.0.0.1")
        self.tls_cert = os.path.join(self.work, "emulator-tls.pem")
        with open(self.tls_cert, "wb") as fh:
            fh.write(cert + key)
        self.ca_file = os.path.join(self.work, "emulator-ca.pem")
        with open(self.ca_file, "wb") as fh:
            fh.write(cert)
        node = self.lab.node
        args = ["--admin-listen", "127.0.0.1:0,name=admin",
                "--imds-listen", f"169.254.169.254:80,netns={node},vm={self.vm_name},name=node-imds",
                "--aad-listen", f"127.0.0.1:0,tls,netns={node},name=node-aad",
                "--tls-cert", self.tls_cert, "--tenant-id", TENANT, "--subscription-id", SUB]
        if self.standin_port:
            args += ["--imds-listen", f"127.0.0.1:{self.standin_port},netns={node},vm={self.vm_name},name=standin"]
        if self.arm_in_pods:
            for name, pod in self.lab.pods.items():
                args += ["--arm-listen", f"127.0.0.1:0,tls,netns={pod.netns},name=arm-{name}"]
        python = os.environ.get("AAD_PYTHON") or sys.executable
        self.emulator_log = os.path.join(self.work, "emulator.log")
        with open(self.emulator_log, "w") as log:
            proc = self.lab.popen(None, [python, "-u", os.path.join(ROOT, "tools", "azure-emulator", "emulator.py"),
                                         *args], stdout=subprocess.PIPE, stderr=log, text=True)
        found = {}
        t = threading.Thread(target=lambda: found.update(
            urls=next((json.loads(l[6:]) for l in proc.stdout if l.startswith("READY ")), None)), daemon=True)
        t.start()
        t.join(30)
        if not found.get("urls"):
            with open(self.emulator_log) as fh:
                raise RuntimeError("emulator did not become ready: " + fh.read()[-3000:])
        self.emulator_proc = proc
        self.urls = found["urls"]
        self.listeners = {l["name"]: l for l in self.urls["listeners"]}
        self.admin = AdminClient(self.listeners["admin"]["url"])
        self.admin.add_vm(resourceGroup=RG, name=self.vm_name, subscriptionId=SUB)

    # ---- helpers
    def listener_url(self, name):
        return self.listeners[name]["url"]

    def add_uami(self, name, assign=True):
        """A user-assigned identity in the emulator, assigned to this node's VM (as MIC would) unless told not."""
        ident = self.admin.add_identity(resourceId=uami_id(name))
        if assign:
            self.admin.update_resource(f"vm/{self.vm_name}", addIdentities=[ident["resourceId"]])
        return ident

    def imds_requests(self, since=0):
        return self.admin.requests(since=since, cls="imds-token")["entries"]

    def last_seq(self):
        return self.admin.requests(since=0)["last"]

    def wait_for(self, predicate, timeout, interval=0.1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        return predicate()


def main():
    """Runs the calling test module: exit 77 (Meson's SKIP) with the reason when the machine cannot."""
    import unittest
    reason = skip_reason()
    if reason:
        print(f"SKIP: {reason}")
        sys.exit(77)
    unittest.main(module="__main__", verbosity=2)
