"""Suite e2e, part 2: the real `aad-pod-identity --role=nmi` in the node namespace.

NMI runs under `ip netns exec <node>` against the real apiserver (reached through the lab's
forwarder) and the Azure emulator (IMDS at 169.254.169.254:80 and AAD over TLS inside the node). It
installs the aad-metadata DNAT chain itself. MIC is not part of this suite: the tests create the
AzureAssignedIdentity objects MIC would create (state Assigned) and assign the identities to the VM
in the emulator.

Pods (one network namespace each):
  a   aadpodidbinding=sel-a -> UAMI id-a          b   aadpodidbinding=sel-b -> UAMI id-b
  u   no label (unbound)                          x   app=exempt, an AzurePodIdentityException
  s   aadpodidbinding=sel-sp -> SP secret and SP certificate identities
  c   aadpodidbinding=sel-c -> UAMI id-c, its AzureAssignedIdentity still Created
  r   aadpodidbinding=sel-b -> id-b; later replaced by an unbound pod with the same IP
"""

import os
import subprocess
import sys
import time
import unittest
from urllib.parse import quote

import e2e_env
import kubeapi
import sdk_clients
from admin_client import decode_jwt, make_certificate
from e2e_env import ARM_SCOPE, TENANT, VAULT, http_get

IPT_INTERVAL = 2
PROBE_PORT = 8085
ENV = None
NMI = None
W = {}  # the world: identities and objects created once for the module


def nmi_binary():
    build = os.environ.get("AAD_BUILD_ROOT") or os.path.join(e2e_env.ROOT, "build")
    return os.environ.get("AAD_NMI_BINARY") or os.path.join(build, "app", "aad-pod-identity")


class Nmi:
    """The NMI process in the node namespace."""

    def __init__(self, env, extra=()):
        self.env = env
        self.log_path = os.path.join(env.work, f"nmi-{time.time_ns()}.log")
        kubelet_config = os.path.join(env.work, "kubelet")
        with open(kubelet_config, "w") as fh:
            fh.write("KUBELET_FLAGS=--network-plugin=cni\n")
        argv = [nmi_binary(), "--role=nmi", f"--node={env.node_name}", f"--kubeconfig={env.kube.kubeconfig}",
                f"--ipt-update-interval-sec={IPT_INTERVAL}", f"--http-probe-port={PROBE_PORT}",
                "--block-instance-metadata", f"--kubelet-config={kubelet_config}", "-v=4", *extra]
        # SSL_CERT_FILE: NMI trusts the emulator's AAD (an SP identity's adEndpoint) like a system CA
        penv = dict(os.environ, SSL_CERT_FILE=env.ca_file)
        penv.pop("KUBECONFIG", None)
        with open(self.log_path, "w") as log:
            self.proc = env.lab.popen(env.lab.node, argv, stdout=log, stderr=subprocess.STDOUT, env=penv)

    def log(self):
        with open(self.log_path, errors="replace") as fh:
            return fh.read()

    def wait_active(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"NMI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            health = http_get(self.env.lab.node, "/healthz", headers=(), timeout=2, host=f"127.0.0.1:{PROBE_PORT}")
            ready = http_get(self.env.lab.node, "/readyz", headers=(), timeout=2, host=f"127.0.0.1:{PROBE_PORT}")
            if health.body.strip() == "Active" and ready.status == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"NMI not Active and ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, timeout=30):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def pkcs12(cert_obj, key_obj, password):
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12 as p12
    return p12.serialize_key_and_certificates(b"sp", key_obj, cert_obj, None, BestAvailableEncryption(password))


def setUpModule():
    global ENV, NMI
    reason = e2e_env.skip_reason()
    if reason:
        raise unittest.SkipTest(reason)
    if not os.access(nmi_binary(), os.X_OK):
        raise RuntimeError(f"no NMI binary at {nmi_binary()} (build it with ninja -C build)")
    ENV = e2e_env.E2EEnv(pods=["a", "b", "u", "x", "s", "c", "r"], arm_in_pods=True).start()
    try:
        build_world()
        NMI = Nmi(ENV)
        NMI.wait_active()
    except BaseException:
        ENV.close()
        raise


def tearDownModule():
    if ENV:
        ENV.close()


def build_world():
    kube, admin, node = ENV.kube, ENV.admin, ENV.node_name
    ns = W["ns"] = kube.namespace("e2e")
    pods = ENV.lab.pods
    W["id-a"] = ENV.add_uami("id-a")
    W["id-b"] = ENV.add_uami("id-b")
    W["id-c"] = ENV.add_uami("id-c")
    W["id-x"] = ENV.add_uami("id-x")  # on the VM, bound to no pod: only an excepted pod may get it

    # service principals in the emulator's AAD (reached by NMI at the node-aad TLS listener)
    aad_url = ENV.listener_url("node-aad") + "/"
    W["sp-secret"] = admin.add_service_principal("5d0a2c1e-0000-4c3b-9e5f-000000000001", TENANT,
                                                 secret="e2e-secret-value")
    cert_pem, _, cert_obj, key_obj = make_certificate(cn="e2e-sp")
    W["sp-cert"] = admin.add_service_principal("5d0a2c1e-0000-4c3b-9e5f-000000000002", TENANT,
                                               certificate_pem=cert_pem)
    kube.create_secret(ns, "sp-secret", {"clientSecret": "e2e-secret-value"})
    kube.create_secret(ns, "sp-cert", {"certificate": pkcs12(cert_obj, key_obj, b"pfx-pass"), "password": "pfx-pass"})

    def identity(name, spec):
        obj = kube.create_identity(ns, name, spec)
        return obj

    ids = {
        "id-a": identity("id-a", {"type": 0, "resourceID": W["id-a"]["resourceId"], "clientID": W["id-a"]["clientId"]}),
        "id-b": identity("id-b", {"type": 0, "resourceID": W["id-b"]["resourceId"], "clientID": W["id-b"]["clientId"]}),
        "id-c": identity("id-c", {"type": 0, "resourceID": W["id-c"]["resourceId"], "clientID": W["id-c"]["clientId"]}),
        "sp-secret": identity("sp-secret", {"type": 1, "clientID": W["sp-secret"]["clientId"], "tenantID": TENANT,
                                            "adEndpoint": aad_url,
                                            "clientPassword": {"name": "sp-secret", "namespace": ns}}),
        "sp-cert": identity("sp-cert", {"type": 2, "clientID": W["sp-cert"]["clientId"], "tenantID": TENANT,
                                        "adEndpoint": aad_url, "clientPassword": {"name": "sp-cert", "namespace": ns}}),
    }
    bindings = {
        "id-a": kube.create_binding(ns, "bind-a", "id-a", "sel-a"),
        "id-b": kube.create_binding(ns, "bind-b", "id-b", "sel-b"),
        "id-c": kube.create_binding(ns, "bind-c", "id-c", "sel-c"),
        "sp-secret": kube.create_binding(ns, "bind-sp-secret", "sp-secret", "sel-sp"),
        "sp-cert": kube.create_binding(ns, "bind-sp-cert", "sp-cert", "sel-sp"),
    }
    kube.create_exception(ns, "exempt", {"app": "exempt"})
    labels = {"a": {"aadpodidbinding": "sel-a"}, "b": {"aadpodidbinding": "sel-b"}, "u": {},
              "x": {"app": "exempt"}, "s": {"aadpodidbinding": "sel-sp"}, "c": {"aadpodidbinding": "sel-c"},
              "r": {"aadpodidbinding": "sel-b"}}
    for name, pod in pods.items():
        kube.create_pod(ns, f"pod-{name}", node, pod.ip, labels=labels[name])
    for pod, ident in (("a", "id-a"), ("b", "id-b"), ("s", "sp-secret"), ("s", "sp-cert"), ("r", "id-b")):
        W[f"aai-{pod}"] = kube.assign(ids[ident], bindings[ident], ns, f"pod-{pod}", node)
    W["obj-id-a"], W["obj-bind-a"] = ids["id-a"], bindings["id-a"]
    W["aai-c"] = kube.assign(ids["id-c"], bindings["id-c"], ns, "pod-c", node, state="Created")


def token_path(resource="https://management.azure.com/", **selector):
    q = "api-version=2018-02-01&resource=" + quote(resource, safe="")
    for k, v in selector.items():
        q += f"&{k}={quote(v, safe='')}"
    return "/metadata/identity/oauth2/token?" + q


def claims_of(resp):
    body = resp.json()
    return decode_jwt(body["access_token"])[1]


class SdkClients(unittest.TestCase):
    """The real clients, unconfigured, in pod a: NMI answers for id-a."""

    def check(self, result, resource):
        self.assertTrue(result["ok"], result.get("error"))
        _, claims = decode_jwt(result["token"])
        self.assertEqual(claims["aud"], resource)
        self.assertEqual(claims["appid"], W["id-a"]["clientId"])
        self.assertEqual(claims["xms_mirid"].lower(), W["id-a"]["resourceId"].lower())

    def test_python_azure_identity(self):
        pod = ENV.lab.pods["a"].netns
        self.check(sdk_clients.python_token(pod, ARM_SCOPE), "https://management.azure.com")
        self.check(sdk_clients.python_token(pod, VAULT + "/.default", client_id=W["id-a"]["clientId"]), VAULT)

    def test_javascript_azure_identity(self):
        if not sdk_clients.node_path():
            self.skipTest("no node_modules with @azure/identity (AAD_NODE_PATH); tools/test installs it")
        pod = ENV.lab.pods["a"].netns
        self.check(sdk_clients.js_token(pod, VAULT + "/.default", client_id=W["id-a"]["clientId"]), VAULT)
        self.check(sdk_clients.js_token(pod, VAULT + "/.default", resource_id=W["id-a"]["resourceId"]), VAULT)

    def test_azure_cli(self):
        if not sdk_clients.az_cli():
            self.skipTest("Azure CLI not installed (AAD_AZ); tools/test installs it")
        result = sdk_clients.az_token(ENV.lab.pods["a"].netns, VAULT, client_id=W["id-a"]["clientId"],
                                      arm_url=ENV.listener_url("arm-a"), ca_file=ENV.ca_file)
        self.check(result, VAULT)

    def test_nmi_asked_imds_from_the_node_with_the_identitys_client_id(self):
        since = ENV.last_seq()
        resource = f"https://e2e-{os.urandom(4).hex()}.example.com"  # never asked before: not in NMI's cache
        r = http_get(ENV.lab.pods["a"].netns, token_path(resource))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(claims_of(r)["aud"], resource)
        imds = [e for e in ENV.imds_requests(since) if e["listener"] == "node-imds"]
        self.assertTrue(imds, "NMI made no IMDS call (a cached token would be served only for a repeat)")
        self.assertIn(f"client_id={W['id-a']['clientId']}", imds[-1]["query"])
        self.assertNotEqual(imds[-1]["client"], ENV.lab.pods["a"].ip)


class Isolation(unittest.TestCase):
    def test_pod_a_cannot_obtain_pod_bs_identity(self):
        b = W["id-b"]
        for selector in ({"client_id": b["clientId"]}, {"msi_res_id": b["resourceId"]},
                         {"mi_res_id": b["resourceId"]}, {"client_id": b["clientId"].upper()}):
            since = ENV.last_seq()
            r = http_get(ENV.lab.pods["a"].netns, token_path(**selector))
            self.assertEqual(r.status, 404, f"{selector}: {r}")
            self.assertNotIn("access_token", r.body)
            asked = [e for e in ENV.imds_requests(since) if b["clientId"] in e["query"]]
            self.assertEqual(asked, [], f"NMI asked IMDS for pod b's identity on behalf of pod a ({selector})")
        # pod b itself gets it
        r = http_get(ENV.lab.pods["b"].netns, token_path(client_id=b["clientId"]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(claims_of(r)["appid"], b["clientId"])

    def test_unbound_pod_gets_404_at_once(self):
        r = http_get(ENV.lab.pods["u"].netns, token_path(), timeout=30)
        print(f"\n  unbound pod: {r.status} in {r.seconds * 1000:.0f} ms", flush=True)
        self.assertEqual(r.status, 404, r)
        self.assertLess(r.seconds, 5.0, "an unbound pod must not wait for the retry budget")

    def test_excepted_pod_reaches_imds_directly(self):
        x = W["id-x"]
        since = ENV.last_seq()
        r = http_get(ENV.lab.pods["x"].netns, token_path(client_id=x["clientId"]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(claims_of(r)["xms_mirid"].lower(), x["resourceId"].lower())
        asked = [e for e in ENV.imds_requests(since) if x["clientId"] in e["query"]]
        self.assertTrue(asked)
        # a bound pod asking for the same identity is refused
        self.assertEqual(http_get(ENV.lab.pods["a"].netns, token_path(client_id=x["clientId"])).status, 404)


class HostToken(unittest.TestCase):
    def host_token(self, netns, host, pod):
        return http_get(netns, f"/host/token/?resource={quote(VAULT, safe='')}", host=host,
                        headers=(f"podname: {pod}", f"podns: {W['ns']}"))

    def test_node_processes_get_a_pods_token(self):
        r = self.host_token(ENV.lab.node, "127.0.0.1:2579", "pod-a")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["clientid"], W["id-a"]["clientId"])
        self.assertEqual(decode_jwt(body["token"]["access_token"])[1]["appid"], W["id-a"]["clientId"])

    def test_a_pod_cannot_use_it_to_impersonate_another_pod(self):
        r = self.host_token(ENV.lab.pods["a"].netns, "169.254.169.254", "pod-b")
        self.assertEqual(r.status, 500, r)  # the original's "request remote address is not from a host"
        self.assertNotIn("access_token", r.body)


class Lifecycle(unittest.TestCase):
    def test_a_created_assignment_is_answered_once_assigned(self):
        pod = ENV.lab.pods["c"].netns
        argv = ["ip", "netns", "exec", pod, "curl", "-sS", "-m", "60", "-o", "/dev/null", "-w", "%{http_code}",
                "-H", "Metadata: true", "http://169.254.169.254" + token_path(VAULT)]
        waiting = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            self.assertIsNone(waiting.poll(), "NMI answered before the identity was assigned")
            patched = time.time()
            ENV.kube.set_assigned_state(W["aai-c"], "Assigned")
            out, _ = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.communicate()
        print(f"\n  answered {time.time() - patched:.2f} s after the assignment became Assigned", flush=True)
        self.assertEqual(out, "200")

    def test_a_new_pod_with_a_reused_ip_does_not_inherit_the_identity(self):
        netns, ip = ENV.lab.pods["r"].netns, ENV.lab.pods["r"].ip
        ask = lambda: http_get(netns, token_path(client_id=W["id-b"]["clientId"])).status  # noqa: E731
        self.assertEqual(ask(), 200)
        # deleted with a grace period: no kubelet here, so it stays Terminating (phase Running) while a new
        # pod claims its IP; two live pods with one IP is an error, never a guess
        ENV.kube.delete(f"/api/v1/namespaces/{W['ns']}/pods/pod-r")
        ENV.kube.create_pod(W["ns"], "pod-r2", ENV.node_name, ip)
        self.assertEqual(ENV.wait_for(lambda: ask() == 500, timeout=10, interval=0.2), True)
        # the old pod gone for good (as the kubelet would finish it): the IP is pod-r2's, which is unbound
        ENV.kube.delete(f"/api/v1/namespaces/{W['ns']}/pods/pod-r?gracePeriodSeconds=0")
        self.assertEqual(ENV.wait_for(lambda: ask() == 404, timeout=10, interval=0.2), True)
        for _ in range(3):
            self.assertEqual(ask(), 404)


class ManagedMode(unittest.TestCase):
    def test_managed_mode_reads_bindings_in_the_pods_namespace_without_assignments(self):
        global NMI
        NMI.stop()
        # no AzureAssignedIdentity for pod a: managed mode does not need (or read) them
        aai = W["aai-a"]["metadata"]
        path = f"{kubeapi.AAD_GROUP}/namespaces/{aai['namespace']}/azureassignedidentities/{aai['name']}"
        ENV.kube.call("PATCH", path, {"metadata": {"finalizers": None}}, "application/merge-patch+json")
        ENV.kube.delete(path)
        try:
            NMI = Nmi(ENV, ("--operation-mode=managed", "--forceNamespaced"))
            NMI.wait_active()
            a = http_get(ENV.lab.pods["a"].netns, token_path(VAULT))
            self.assertEqual(a.status, 200, a)
            self.assertEqual(claims_of(a)["appid"], W["id-a"]["clientId"])
            self.assertEqual(http_get(ENV.lab.pods["u"].netns, token_path(VAULT)).status, 404)
            self.assertEqual(http_get(ENV.lab.pods["a"].netns, token_path(client_id=W["id-b"]["clientId"])).status,
                             404)
        finally:
            NMI.stop()
            W["aai-a"] = ENV.kube.assign(W["obj-id-a"], W["obj-bind-a"], W["ns"], "pod-a", ENV.node_name)
            NMI = Nmi(ENV)
            NMI.wait_active()


class ServicePrincipals(unittest.TestCase):
    def check_sp(self, key):
        sp = W[key]
        r = http_get(ENV.lab.pods["s"].netns, token_path(VAULT, client_id=sp["clientId"]))
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertTrue(all(isinstance(v, str) for v in body.values()), body)
        claims = decode_jwt(body["access_token"])[1]
        self.assertEqual(claims["appid"], sp["clientId"])
        self.assertEqual(claims["tid"], TENANT)
        self.assertEqual(claims["aud"], VAULT)

    def test_service_principal_with_secret(self):
        self.check_sp("sp-secret")

    def test_service_principal_with_certificate(self):
        self.check_sp("sp-cert")


class Http(unittest.TestCase):
    def test_missing_metadata_header_is_400(self):
        r = http_get(ENV.lab.pods["a"].netns, token_path(), headers=())
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"], "invalid_request")

    def test_blocked_instance_metadata_is_403(self):
        for path in ("/metadata/instance?api-version=2021-02-01", "/metadata/instance/compute?api-version=2021-02-01"):
            self.assertEqual(http_get(ENV.lab.pods["a"].netns, path).status, 403, path)

    def test_other_paths_are_proxied_to_imds(self):
        since = ENV.last_seq()
        via_nmi = http_get(ENV.lab.pods["a"].netns, "/metadata/versions")
        direct = http_get(ENV.lab.node, "/metadata/versions")
        self.assertEqual((via_nmi.status, via_nmi.body), (direct.status, direct.body))
        self.assertEqual(via_nmi.status, 200)
        seen = [e for e in ENV.admin.requests(since=since)["entries"] if e["path"] == "/metadata/versions"]
        self.assertEqual(len(seen), 2, "one proxied request and one direct")
        missing = http_get(ENV.lab.pods["a"].netns, "/doesnotexist")
        self.assertEqual(missing.status, 404)


def raw_status(netns, request_line):
    """Sends one request line as given (curl would normalise the path) through the redirect; the status."""
    script = ("import socket, sys\n"
              "s = socket.create_connection(('169.254.169.254', 80), timeout=10)\n"
              "s.sendall(sys.argv[1].encode() + b'\\r\\nHost: 169.254.169.254\\r\\nMetadata: true\\r\\n"
              "Connection: close\\r\\n\\r\\n')\n"
              "out = b''\n"
              "while chunk := s.recv(65536):\n"
              "    out += chunk\n"
              "print(out.split(b' ', 2)[1].decode())\n")
    r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", script, request_line],
                       capture_output=True, text=True, timeout=30)
    return int(r.stdout.strip() or 0)


class Paths(unittest.TestCase):
    def test_non_canonical_paths_are_400_and_never_reach_imds(self):
        since = ENV.last_seq()
        for path in ("//metadata/instance", "/metadata/./instance", "/metadata//instance",
                     "/metadata/identity/../instance", "/metadata/%2e/instance", "/metadata\\instance",
                     "/metadata/instance/../identity/oauth2/token"):
            line = f"GET {path}?api-version=2021-02-01&resource=x HTTP/1.1"
            self.assertEqual(raw_status(ENV.lab.pods["a"].netns, line), 400, line)
        seen = [e["path"] for e in ENV.admin.requests(since=since)["entries"] if e["path"].startswith("/metadata")]
        self.assertEqual(seen, [])

    def test_absolute_form_request_target_is_served(self):
        line = f"GET http://169.254.169.254{token_path()} HTTP/1.1"
        self.assertEqual(raw_status(ENV.lab.pods["a"].netns, line), 200)


class Redirect(unittest.TestCase):
    def expected_chain(self):
        return ["-N aad-metadata",
                "-A aad-metadata ! -s 127.0.0.1/32 -d 169.254.169.254/32 -p tcp -m tcp --dport 80 "
                "-j DNAT --to-destination 127.0.0.1:2579",
                "-A aad-metadata -j RETURN"]

    def test_chain_as_the_original_and_repaired_after_a_flush(self):
        self.assertEqual(ENV.lab.nat_rules("aad-metadata"), self.expected_chain())
        self.assertIn("-A PREROUTING -j aad-metadata", ENV.lab.nat_rules("PREROUTING"))
        ENV.lab.iptables("-t", "nat", "-F", "aad-metadata")
        flushed = time.time()
        self.assertEqual(ENV.lab.nat_rules("aad-metadata"), ["-N aad-metadata"])
        repaired = ENV.wait_for(lambda: ENV.lab.nat_rules("aad-metadata") == self.expected_chain(),
                                timeout=IPT_INTERVAL * 3 + 5)
        print(f"\n  chain repaired {time.time() - flushed:.1f} s after the flush (interval {IPT_INTERVAL} s)",
              flush=True)
        self.assertTrue(repaired, ENV.lab.nat_rules("aad-metadata"))
        self.assertEqual(http_get(ENV.lab.pods["a"].netns, token_path()).status, 200)

    KEEPALIVE_CLIENT = r"""
import http.client, sys
c = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
def get():
    try:
        c.request("GET", "/metadata/instance?api-version=2021-02-01", headers={"Metadata": "true"})
        r = c.getresponse(); r.read(); return str(r.status)
    except Exception as e:
        return type(e).__name__
print(get(), flush=True)
sys.stdin.readline()
print(get(), flush=True)
"""

    def second_request_on_a_connection_opened_before_nmi(self, extra):
        """A pod's keep-alive connection to IMDS opened while no redirect exists; NMI starts (with `extra`
        flags); what does the next request on that same connection get?"""
        global NMI
        NMI.stop()
        client = subprocess.Popen(["ip", "netns", "exec", ENV.lab.pods["a"].netns, sdk_clients.python_sdk(), "-c",
                                   self.KEEPALIVE_CLIENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(client.stdout.readline().strip(), "200")  # IMDS itself, no redirect yet
            NMI = Nmi(ENV, extra)
            NMI.wait_active()
            client.stdin.write("\n")
            client.stdin.flush()
            return client.stdout.readline().strip()
        finally:
            client.kill()
            client.wait()
            client.stdin.close()
            client.stdout.close()

    def test_conntrack_deletion_cuts_connections_that_bypass_nmi(self):
        # without the flag the old connection keeps reaching IMDS past NMI (why the flag exists) ...
        self.assertEqual(self.second_request_on_a_connection_opened_before_nmi(()), "200")
        # ... with it, its conntrack entry is gone and it no longer does
        second = self.second_request_on_a_connection_opened_before_nmi(("--enable-conntrack-deletion",))
        print(f"\n  with --enable-conntrack-deletion the old connection's next request: {second}", flush=True)
        self.assertNotEqual(second, "200")
        self.assertEqual(http_get(ENV.lab.pods["a"].netns, "/metadata/instance?api-version=2021-02-01").status, 403)

    def test_route_localnet_off_is_reported_at_start(self):
        global NMI
        ifs = [p.node_if for p in ENV.lab.pods.values()]
        NMI.stop()
        try:
            for i in ifs:
                ENV.lab.sysctl(ENV.lab.node, f"net.ipv4.conf.{i}.route_localnet", 0)
            NMI = Nmi(ENV)
            NMI.wait_active()
            self.assertIn("route_localnet is off", NMI.log())
            # what the warning is about: the redirected connection is dropped
            self.assertEqual(http_get(ENV.lab.pods["a"].netns, token_path(), timeout=2).status, 0)
        finally:
            for i in ifs:
                ENV.lab.sysctl(ENV.lab.node, f"net.ipv4.conf.{i}.route_localnet", 1)
        self.assertEqual(http_get(ENV.lab.pods["a"].netns, token_path()).status, 200)

    def test_sigterm_removes_chain_and_jump(self):
        global NMI
        try:
            started = time.time()
            code = NMI.stop()
            print(f"\n  NMI exited {time.time() - started:.1f} s after SIGTERM", flush=True)
            self.assertEqual(code, 0, NMI.log()[-3000:])
            self.assertEqual(ENV.lab.nat_rules("aad-metadata"), [])
            self.assertFalse([l for l in ENV.lab.nat_rules("PREROUTING") if "aad-metadata" in l])
            # pods now reach IMDS itself, which knows nothing of pods
            r = http_get(ENV.lab.pods["a"].netns, "/metadata/instance?api-version=2021-02-01")
            self.assertEqual(r.status, 200)
        finally:
            NMI = Nmi(ENV)
            NMI.wait_active()


if __name__ == "__main__":
    e2e_env.main()
