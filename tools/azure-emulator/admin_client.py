"""Client for the Azure emulator's admin API, plus helpers to start the emulator and to make test credentials.

Stdlib only, except make_certificate()/make_client_assertion() which need `cryptography`.

    from admin_client import start_emulator
    emu = start_emulator(["--listen", "127.0.0.1:0"])
    emu.admin.add_identity(resourceGroup="rg", name="id1")
    ...
    emu.stop()
"""

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")


class AdminError(Exception):
    def __init__(self, status, body):
        super().__init__(f"admin API answered {status}: {body}")
        self.status = status
        self.body = body


class AdminClient:
    def __init__(self, url, timeout=10):
        self.url = url.rstrip("/")
        self.timeout = timeout

    # ---- transport
    def call(self, method, path, body=None, query=None):
        url = self.url + "/admin/" + path.lstrip("/")
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise AdminError(exc.code, parsed) from None
        return json.loads(raw) if raw else None

    # ---- state
    def health(self):
        return self.call("GET", "health")

    def urls(self):
        return self.call("GET", "urls")

    def state(self):
        return self.call("GET", "state")

    def load_state(self, doc, replace=False):
        return self.call("POST", "state", dict(doc, replace=replace))

    def reset(self):
        return self.call("POST", "reset")

    def settings(self):
        return self.call("GET", "settings")

    def update_settings(self, patch):
        """Deep-merges patch into the settings, e.g. {"arm": {"lro": {"retryAfter": 0}}}."""
        return self.call("PATCH", "settings", patch)

    def set_imds(self, vm=None, serve_any_identity=None, listener=None, **extra):
        body = dict(extra)
        if vm is not None:
            body["vm"] = vm
        if serve_any_identity is not None:
            body["serveAnyIdentity"] = serve_any_identity
        if listener:
            body["listener"] = listener
        return self.call("PUT", "imds", body)

    # ---- directory
    def add_tenant(self, tenant_id, domains=()):
        return self.call("POST", "tenants", {"tenantId": tenant_id, "domains": list(domains)})

    def add_identity(self, **spec):
        """resourceId=... or resourceGroup=..., name=... [subscriptionId, clientId, principalId, tenantId,
        assignDenied]. Returns the identity with generated ids."""
        return self.call("POST", "identities", spec)

    def identities(self):
        return self.call("GET", "identities")

    def delete_identity(self, resource_id):
        return self.call("DELETE", "identities", query={"resourceId": resource_id})

    def add_service_principal(self, client_id, tenant_id=None, secret=None, certificate_pem=None, **extra):
        spec = dict(extra, clientId=client_id)
        if tenant_id:
            spec["tenantId"] = tenant_id
        if secret:
            spec["secret"] = secret
        if certificate_pem:
            spec["certificate"] = certificate_pem.decode() if isinstance(certificate_pem, bytes) else certificate_pem
        return self.call("POST", "service-principals", spec)

    # ---- compute
    def add_vm(self, **spec):
        """resourceGroup, name [subscriptionId, location, systemAssigned, userAssignedIdentities=[ids],
        provisioningState, tags, privateIp]"""
        return self.call("POST", "vms", spec)

    def add_vmss(self, **spec):
        """as add_vm, plus capacity"""
        return self.call("POST", "vmss", spec)

    def resource(self, ref):
        """ref: ARM id, 'vm/NAME', 'vmss/NAME' or NAME. Returns kind, id, identityType, systemAssigned,
        userAssignedIdentities [{resourceId, clientId, principalId, exists}], clientIds, provisioningState."""
        return self.call("GET", "resource", query={"id": ref})

    def assigned_identities(self, ref):
        return [u["resourceId"] for u in self.resource(ref)["userAssignedIdentities"]]

    def update_resource(self, ref, **changes):
        """provisioningState, systemAssigned, userAssignedIdentities (replace), addIdentities, removeIdentities,
        tags, capacity"""
        return self.call("PATCH", "resource", changes, query={"id": ref})

    def delete_resource(self, ref):
        return self.call("DELETE", "resource", query={"id": ref})

    # ---- faults
    def add_fault(self, target=None, kind="status", **spec):
        """target: imds | imds-token | imds-instance | aad | aad-token | arm | arm-get | arm-patch | arm-poll | any;
        kind: status | throttle | latency | drop | identity-not-found | linked-authorization-failed |
        failed-identity-operation | lro-failed; options: status, retryAfter, latencyMs, count, identities,
        pathRegex, method, body, headers, code, message. Returns the fault (with its id)."""
        body = dict(spec, kind=kind)
        if target:
            body["target"] = target
        return self.call("POST", "faults", body)

    def faults(self):
        return self.call("GET", "faults")

    def clear_faults(self, fault_id=None):
        return self.call("DELETE", "faults" + (f"/{fault_id}" if fault_id else ""))

    # ---- observation
    def counters(self):
        return self.call("GET", "counters")

    def count(self, cls, method=None, status=None):
        c = self.counters().get(cls, {})
        methods = [method] if method else list(c)
        key = str(status) if status is not None else "total"
        return sum(c.get(m, {}).get(key, 0) for m in methods)

    def reset_counters(self):
        return self.call("DELETE", "counters")

    def requests(self, since=0, cls=None):
        q = {"since": since}
        if cls:
            q["class"] = cls
        return self.call("GET", "requests", query=q)

    def clear_requests(self):
        return self.call("DELETE", "requests")

    def operations(self):
        return self.call("GET", "operations")

    def mint_token(self, **spec):
        """aud, appid, oid, tid, expiresIn (may be negative), claims={...}: a token signed by the emulator key."""
        return self.call("POST", "tokens", spec)["access_token"]

    def signing_key(self):
        return self.call("GET", "signing-key")


class Emulator:
    """A running emulator subprocess."""

    def __init__(self, proc, urls):
        self.proc = proc
        self.urls = urls
        self.admin = AdminClient(urls["admin"])
        self._stderr = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self):
        return "".join(self._stderr)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_emulator(args=None, python=None, env=None, timeout=20, prefix=()):
    """Starts emulator.py with args (default: one shared listener on 127.0.0.1:0) and waits for READY.
    prefix: command prefix, e.g. ["ip", "netns", "exec", "node1"]."""
    args = list(args or ["--listen", "127.0.0.1:0"])
    cmd = list(prefix) + [python or sys.executable, "-u", EMULATOR] + args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + timeout
    result = {}

    def reader():
        for line in proc.stdout:
            if line.startswith("READY "):
                result["urls"] = json.loads(line[6:])
                return
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(max(0.0, deadline - time.time()))
    if "urls" not in result:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"emulator did not become ready: {err}")
    return Emulator(proc, result["urls"])


# --------------------------------------------------------------------------------------------------
# test credential helpers (need `cryptography`)
# --------------------------------------------------------------------------------------------------

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_certificate(cn="emulator-test", key_size=2048, days=30):
    """Returns (cert_pem: bytes, key_pem: bytes, cert_object, key_object), self-signed RSA."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=days)))
    if cn in ("localhost",) or cn.replace(".", "").isdigit():
        import ipaddress
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem, cert, key


def make_client_assertion(cert, key, client_id, audience, alg="RS256", lifetime=600, now=None,
                          thumbprint="auto", padded_x5t=False, claims=None, drop=()):
    """A client-assertion JWT as adal (RS256 + x5t) or MSAL (PS256 + x5t#S256) would make it."""
    import hashlib
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {"alg": alg, "typ": "JWT"}
    if thumbprint in ("auto", "x5t") and (alg == "RS256" or thumbprint == "x5t"):
        x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode()
        header["x5t"] = x5t if padded_x5t else x5t.rstrip("=")
    else:
        header["x5t#S256"] = _b64url(hashlib.sha256(der).digest())
    now = int(time.time()) if now is None else int(now)
    body = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()), "nbf": now,
            "iat": now, "exp": now + lifetime}
    body.update(claims or {})
    for k in drop:
        body.pop(k, None)
    signing_input = (_b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(body).encode())).encode()
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = key.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    return signing_input.decode() + "." + _b64url(sig)


def decode_jwt(token):
    """(header, claims) without verification."""
    def part(p):
        return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    h, c, _ = token.split(".")
    return part(h), part(c)
