"""Suite e2e, part 1 (no NMI): the network lab and the real SDK clients through the real DNAT redirect.

The node namespace gets the aad-metadata chain exactly as NMI writes it, but pointing at a stand-in
(the emulator's IMDS on 127.0.0.1:2580 in the node). Each real client then asks 169.254.169.254 for
a token from inside a pod namespace, as an application would; the emulator's request log pins what
each SDK sent and proves the caller's pod IP survives the redirect (NMI identifies pods by it).
"""

import signal
import subprocess
import sys
import time
import unittest
from urllib.parse import parse_qs

import e2e_env
import netlab
import sdk_clients
from admin_client import decode_jwt
from e2e_env import ARM_SCOPE, VAULT

STANDIN_PORT = 2580
ENV = None


def setUpModule():
    global ENV
    reason = e2e_env.skip_reason()
    if reason:
        raise unittest.SkipTest(reason)
    ENV = e2e_env.E2EEnv(pods=["a", "b"], standin_port=STANDIN_PORT, arm_in_pods=True).start()


def tearDownModule():
    if ENV:
        ENV.close()


def raw_get(netns, path, timeout=5):
    r = e2e_env.http_get(netns, path, timeout=timeout)
    return r.status, r.body


class LabTopology(unittest.TestCase):
    def test_pods_have_own_addresses_and_reach_the_node(self):
        a, b = ENV.lab.pods["a"], ENV.lab.pods["b"]
        self.assertNotEqual(a.ip, b.ip)
        for pod in (a, b):
            addrs = netlab.Lab.ip(pod.netns, "-4", "-o", "addr", "show", "dev", "eth0")
            self.assertIn(f"{pod.ip}/32", addrs)
        self.assertIn("169.254.169.254/32", netlab.Lab.ip(ENV.lab.node, "-4", "-o", "addr", "show", "dev", "lo"))

    def test_node_reaches_the_apiserver_and_sees_the_pods_ips(self):
        ns = ENV.kube.namespace("lab")
        for name, pod in ENV.lab.pods.items():
            ENV.kube.create_pod(ns, f"pod-{name}", ENV.node_name, pod.ip, labels={"app": name})
        # kubectl inside the node namespace, with the same kubeconfig (same https://127.0.0.1:PORT)
        r = ENV.lab.run(ENV.lab.node, [ENV.kube.kubectl, "--kubeconfig", ENV.kube.kubeconfig, "-n", ns, "get",
                                       "pods", "--field-selector", f"spec.nodeName={ENV.node_name}", "-o",
                                       "jsonpath={range .items[*]}{.metadata.name}={.status.podIPs[0].ip} {end}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.split()), sorted(f"pod-{n}={p.ip}" for n, p in ENV.lab.pods.items()))

    def test_the_hosts_own_nat_table_is_untouched(self):
        self.assertFalse(any("aad-metadata" in l for l in
                             subprocess.run(["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True,
                                            text=True).stdout.splitlines()))


class Redirect(unittest.TestCase):
    """The DNAT path itself, with curl (no SDK logic)."""

    @classmethod
    def tearDownClass(cls):
        ENV.lab.install_redirect(STANDIN_PORT)

    def listener_of_last_request(self, since):
        entries = ENV.admin.requests(since=since)["entries"]
        self.assertTrue(entries, "the emulator saw no request")
        return entries[-1]["listener"], entries[-1]["client"]

    def test_without_the_chain_pods_reach_imds_and_with_it_the_standin_with_their_own_ip(self):
        ENV.lab.remove_redirect()
        pod = ENV.lab.pods["b"]
        since = ENV.last_seq()
        status, _ = raw_get(pod.netns, "/metadata/instance?api-version=2021-02-01")
        self.assertEqual(status, 200)
        self.assertEqual(self.listener_of_last_request(since), ("node-imds", pod.ip))

        ENV.lab.install_redirect(STANDIN_PORT)
        self.assertIn(f"-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 "
                      f"-j DNAT --to-destination 127.0.0.1:{STANDIN_PORT}", ENV.lab.nat_rules("aad-metadata"))
        for pod in ENV.lab.pods.values():
            since = ENV.last_seq()
            status, _ = raw_get(pod.netns, "/metadata/instance?api-version=2021-02-01")
            self.assertEqual(status, 200)
            self.assertEqual(self.listener_of_last_request(since), ("standin", pod.ip))

        # the node's own processes are not redirected (OUTPUT, not PREROUTING): they reach IMDS itself
        since = ENV.last_seq()
        status, _ = raw_get(ENV.lab.node, "/metadata/instance?api-version=2021-02-01")
        self.assertEqual(status, 200)
        self.assertEqual(self.listener_of_last_request(since)[0], "node-imds")

    def test_dnat_to_loopback_needs_route_localnet(self):
        ENV.lab.install_redirect(STANDIN_PORT)
        pod = ENV.lab.pods["a"]
        netlab.Lab.sysctl(ENV.lab.node, f"net.ipv4.conf.{pod.node_if}.route_localnet", "0")
        try:
            status, _ = raw_get(pod.netns, "/metadata/instance?api-version=2021-02-01", timeout=2)
            self.assertEqual(status, 0, "with route_localnet=0 the redirected connection must not be answered")
        finally:
            netlab.Lab.sysctl(ENV.lab.node, f"net.ipv4.conf.{pod.node_if}.route_localnet", "1")
        status, _ = raw_get(pod.netns, "/metadata/instance?api-version=2021-02-01")
        self.assertEqual(status, 200)


class SdkClients(unittest.TestCase):
    """Each real client gets a token from inside a pod, through the redirect, with no configuration."""

    @classmethod
    def setUpClass(cls):
        ENV.lab.install_redirect(STANDIN_PORT)
        cls.ident = ENV.add_uami("sdk-id")
        cls.other = ENV.add_uami("sdk-other")

    def check_token(self, result, resource, ident):
        self.assertTrue(result["ok"], result.get("error"))
        _, claims = decode_jwt(result["token"])
        self.assertEqual(claims["aud"], resource)
        self.assertEqual(claims["appid"], ident["clientId"])
        self.assertEqual(claims["xms_mirid"].lower(), ident["resourceId"].lower())
        self.assertGreater(result["expires_on"], time.time() + 600)

    def requests_since(self, since):
        return [e for e in ENV.imds_requests(since) if e["status"] == 200]

    def assert_request(self, since, pod, **query):
        entries = self.requests_since(since)
        self.assertTrue(entries, "no successful IMDS token request seen")
        e = entries[-1]
        self.assertEqual((e["listener"], e["client"], e["method"], e["path"]),
                         ("standin", pod.ip, "GET", "/metadata/identity/oauth2/token"))
        q = {k: v[0] for k, v in parse_qs(e["query"]).items()}
        # every client still speaks IMDS api-version 2018-02-01, and sends one selector at most
        self.assertEqual(q.get("api-version"), "2018-02-01", e["query"])
        self.assertLessEqual(len({"client_id", "msi_res_id", "mi_res_id", "object_id"} & set(q)), 1, e["query"])
        for k, v in query.items():
            self.assertEqual(q.get(k), v, f"query {e['query']}")
        return q

    def test_python_azure_identity(self):
        pod = ENV.lab.pods["a"]
        for kind in ("client_id", "resource_id"):
            since = ENV.last_seq()
            arg = {"client_id": self.ident["clientId"]} if kind == "client_id" else \
                {"resource_id": self.ident["resourceId"]}
            self.check_token(sdk_clients.python_token(pod.netns, ARM_SCOPE, **arg),
                             "https://management.azure.com", self.ident)
            expected = {"client_id": self.ident["clientId"]} if kind == "client_id" else \
                {"msi_res_id": self.ident["resourceId"]}
            self.assert_request(since, pod, resource="https://management.azure.com", **expected)

    def test_javascript_azure_identity(self):
        if not sdk_clients.node_path():
            self.skipTest("no node_modules with @azure/identity (AAD_NODE_PATH); tools/test installs it")
        pod = ENV.lab.pods["b"]
        for kind in ("client_id", "resource_id"):
            since = ENV.last_seq()
            arg = {"client_id": self.other["clientId"]} if kind == "client_id" else \
                {"resource_id": self.other["resourceId"]}
            self.check_token(sdk_clients.js_token(pod.netns, VAULT + "/.default", **arg), VAULT, self.other)
            expected = {"client_id": self.other["clientId"]} if kind == "client_id" else \
                {"msi_res_id": self.other["resourceId"]}
            self.assert_request(since, pod, resource=VAULT, **expected)

    def test_azure_cli(self):
        if not sdk_clients.az_cli():
            self.skipTest("Azure CLI not installed (AAD_AZ); tools/test installs it")
        pod = ENV.lab.pods["a"]
        since = ENV.last_seq()
        # `az login` also lists subscriptions through ARM: the emulator's ARM inside the pod stands in
        result = sdk_clients.az_token(pod.netns, VAULT, client_id=self.ident["clientId"],
                                      arm_url=ENV.listener_url("arm-a"), ca_file=ENV.ca_file)
        self.check_token(result, VAULT, self.ident)
        self.assertEqual(result["login"][0]["user"]["assignedIdentityInfo"], f"MSIClient-{self.ident['clientId']}")
        login, access = self.requests_since(since)[-2:]
        self.assertIn("resource=https%3A%2F%2Fmanagement.core.windows.net%2F", login["query"])
        self.assert_request(since, pod, resource=VAULT, client_id=self.ident["clientId"])


class Cleanup(unittest.TestCase):
    def test_close_removes_everything_and_sweep_removes_an_aborted_lab(self):
        lab = netlab.Lab(pods=["x"], prefix="aadlabt").start()
        names = [lab.node, lab.pods["x"].netns]
        self.assertTrue(set(names) <= set(netlab.list_netns()))
        lab.close()
        self.assertFalse(set(names) & set(netlab.list_netns()))

        # a lab whose process was killed leaves its namespaces; the next lab (or `netlab.py sweep`) removes them
        child = subprocess.Popen([sys.executable, netlab.__file__, "up", "--prefix", "aadlabt", "--pods", "y"],
                                 stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        self.assertTrue(line.startswith("READY "), line)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        left = [n for n in netlab.list_netns() if n.startswith(f"aadlabt-{child.pid}-")]
        self.assertEqual(len(left), 2)
        self.assertEqual(sorted(netlab.sweep("aadlabt")), sorted(left))
        self.assertFalse([n for n in netlab.list_netns() if n.startswith(f"aadlabt-{child.pid}-")])


if __name__ == "__main__":
    e2e_env.main()
