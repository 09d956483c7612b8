#!/usr/bin/env python3
"""Azure emulator for tests: IMDS, Entra ID (AAD) token endpoints, ARM Compute (VM / VMSS identity), admin API.

Written independently of the product code so it can catch the product's mistakes. Wire contracts follow
/work/shared/reference/azure-contracts.md (sections 1-3, checklist in section 6); behaviour that no source
confirms is marked UNVERIFIED and kept configurable through the admin settings.

Run `emulator.py --help` for the CLI. Once every listener is bound the process prints one line
`READY {json}` on stdout (flushed) with the actual URLs. SIGTERM / SIGINT exit cleanly with status 0.
"""

import argparse
import base64
import copy
import ctypes
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

VERSION = "1.0"

# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    text = text.strip().rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def guid() -> str:
    return str(uuid.uuid4())


def utc_iso(ts=None) -> str:
    ts = time.time() if ts is None else ts
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def deep_merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


class Reply(Exception):
    """A complete HTTP answer (used both for errors and early exits)."""

    def __init__(self, status, body=b"", headers=None, content_type="application/json; charset=utf-8"):
        super().__init__(status)
        self.status = status
        if isinstance(body, (dict, list)):
            body = compact(body)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type


class DropConnection(Exception):
    pass


class RequestAbandoned(Exception):
    """The request was still in flight (e.g. in a latency fault) when /admin/reset started a new state:
    it belongs to the old state, so it takes no fault, changes nothing, is not counted and gets no answer."""


# The state generation the current handler thread's request started in (see State.reset).
REQUEST = threading.local()


UAMI_ID_RE = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/userassignedidentities/[^/]+$",
    re.IGNORECASE,
)
ARM_AUDIENCES_DEFAULT = [
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
]
SECRET_FIELDS = {"client_secret", "client_assertion", "password", "refresh_token", "code", "assertion",
                 "access_token", "secret", "secrets", "certificate", "certificates", "privatekey"}
IMDS_API_VERSIONS = ["2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01",
                     "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01",
                     "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
                     "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
                     "2021-05-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01"]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")

# --------------------------------------------------------------------------------------------------
# token signing (the emulator's "Entra" key)
# --------------------------------------------------------------------------------------------------


class Signer:
    def __init__(self, key_pem: bytes = None):
        if key_pem:
            self.key = serialization.load_pem_private_key(key_pem, password=None)
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.emulator.invalid")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=365))
                     .sign(self.key, hashes.SHA256()))
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.kid = b64url(hashlib.sha1(der).digest())
        self.x5c = base64.b64encode(der).decode("ascii")

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid}
        signing_input = b64url(compact(header)) + "." + b64url(compact(claims))
        sig = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig)

    def verify(self, token: str):
        """Returns (header, claims) or raises ValueError."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("not a JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except Exception as exc:  # noqa: BLE001
            raise ValueError("malformed JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("malformed JWT")
        if header.get("alg") != "RS256":
            raise ValueError("unsupported alg")
        try:
            self.key.public_key().verify(sig, (parts[0] + "." + parts[1]).encode("ascii"),
                                         padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise ValueError("signature invalid") from exc
        return header, claims

    def jwks(self):
        nums = self.key.public_key().public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": b64url(n),
                          "e": b64url(e), "x5c": [self.x5c]}]}

    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


# --------------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------------

DEFAULT_SETTINGS = {
    "tenantId": "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c",
    "subscriptionId": "4be8920b-2978-43d7-ab14-04d8549c1d05",
    "location": "westeurope",
    "tokenLifetimeSeconds": 86399,
    "imds": {
        "vm": None,                # ARM id / "vm/NAME" / "vmss/NAME" / NAME of the VM this IMDS belongs to
        "serveAnyIdentity": False,  # serve any registered identity, assigned or not
        "xffStatus": 400,          # UNVERIFIED: IMDS docs only say such requests are rejected
        "acceptTrailingSlash": True,  # also serve /metadata/identity/oauth2/token/ (msal-node sends it)
        "tokenLifetimeSeconds": None,
        "rateLimit": {"enabled": False, "identityRps": 20, "identityConcurrency": 5, "otherRps": 5},
        "listeners": {},            # listener name -> vm ref override
    },
    "aad": {
        "clockSkewSeconds": 300,
        "resources": None,          # list of accepted resources; null = any
        "tokenLifetimeSeconds": 3599,
        "extraAssertionAudiences": [],
    },
    "arm": {
        "requireAuth": True,
        "allowedAudiences": list(ARM_AUDIENCES_DEFAULT),
        "maxIdentitiesPerRequest": 150,
        "maxIdentitiesPerResource": None,
        "lro": {"mode": "async", "initialStatus": 200, "retryAfter": 1, "pollsUntilDone": 1,
                "durationSeconds": 0},
        "minApiVersion": "2018-06-01",
    },
    "requestLogSize": 5000,
}

LOCK = threading.RLock()


def new_principal():
    return {"principalId": guid(), "clientId": guid()}


class State:
    def __init__(self):
        self.reset()

    # ---- lifecycle
    def reset(self):
        with LOCK:
            self.generation = getattr(self, "generation", 0) + 1
            self.settings = copy.deepcopy(DEFAULT_SETTINGS)
            self.tenants = {}        # lower tid -> {tenantId, domains}
            self.identities = {}     # lower resource id -> identity
            self.sps = {}            # (lower tid, lower clientId) -> sp
            self.resources = {}      # lower arm id -> VM / VMSS record
            self.operations = {}     # op id -> LRO record
            self.faults = []
            self.fault_seq = 0
            self.counters = {}
            self.log = []
            self.log_seq = 0
            self.rate = {"identity": [], "other": [], "inflight": getattr(self, "rate", {}).get("inflight", 0)}

    def load(self, doc: dict):
        with LOCK:
            if "settings" in doc:
                deep_merge(self.settings, doc["settings"])
            for t in doc.get("tenants", []):
                self.add_tenant(t)
            for i in doc.get("identities", []):
                self.add_identity(i)
            for sp in doc.get("servicePrincipals", []):
                self.add_sp(sp)
            for vm in doc.get("vms", []):
                self.add_resource("vm", vm)
            for vmss in doc.get("vmss", []):
                self.add_resource("vmss", vmss)
            for f in doc.get("faults", []):
                self.add_fault(f)

    # ---- tenants
    def add_tenant(self, t):
        tid = t.get("tenantId") or guid()
        rec = self.tenants.setdefault(tid.lower(), {"tenantId": tid, "domains": []})
        for d in t.get("domains", []):
            if d.lower() not in [x.lower() for x in rec["domains"]]:
                rec["domains"].append(d)
        return rec

    def find_tenant(self, name):
        n = name.lower()
        if n == self.settings["tenantId"].lower():
            return self.settings["tenantId"]
        if n in self.tenants:
            return self.tenants[n]["tenantId"]
        for rec in self.tenants.values():
            if n in [d.lower() for d in rec["domains"]]:
                return rec["tenantId"]
        return None

    # ---- identities
    def add_identity(self, spec):
        rid = spec.get("resourceId")
        if not rid:
            sub = spec.get("subscriptionId") or self.settings["subscriptionId"]
            rg = spec.get("resourceGroup")
            name = spec.get("name")
            if not (rg and name):
                raise ValueError("identity needs resourceId or resourceGroup+name")
            rid = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                   f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
        if not UAMI_ID_RE.match(rid):
            raise ValueError(f"not a user-assigned identity resource id: {rid}")
        rec = {
            "resourceId": rid,
            "name": rid.rsplit("/", 1)[1],
            "clientId": spec.get("clientId") or guid(),
            "principalId": spec.get("principalId") or spec.get("objectId") or guid(),
            "tenantId": spec.get("tenantId") or self.settings["tenantId"],
            "location": spec.get("location") or self.settings["location"],
            "assignDenied": bool(spec.get("assignDenied", False)),
        }
        with LOCK:
            self.identities[rid.lower()] = rec
        return rec

    def find_identity_by(self, field, value):
        v = value.lower()
        for rec in self.identities.values():
            if str(rec[field]).lower() == v:
                return rec
        return None

    # ---- service principals
    def add_sp(self, spec):
        tid = spec.get("tenantId") or self.settings["tenantId"]
        if not spec.get("clientId"):
            raise ValueError("servicePrincipal needs clientId")
        secrets = list(spec.get("secrets", []))
        if spec.get("secret"):
            secrets.append(spec["secret"])
        certs = list(spec.get("certificates", []))
        if spec.get("certificate"):
            certs.append(spec["certificate"])
        loaded = []
        for pem in certs:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii") if isinstance(pem, str) else pem)
            der = cert.public_bytes(serialization.Encoding.DER)
            loaded.append({"cert": cert, "sha1": hashlib.sha1(der).digest(), "sha256": hashlib.sha256(der).digest()})
        rec = {"tenantId": tid, "clientId": spec["clientId"], "objectId": spec.get("objectId") or guid(),
               "displayName": spec.get("displayName") or spec["clientId"], "secrets": secrets, "certs": loaded}
        with LOCK:
            if tid.lower() != self.settings["tenantId"].lower():
                self.add_tenant({"tenantId": tid})
            self.sps[(tid.lower(), spec["clientId"].lower())] = rec
        return rec

    @staticmethod
    def sp_view(sp):
        return {"tenantId": sp["tenantId"], "clientId": sp["clientId"], "objectId": sp["objectId"],
                "displayName": sp["displayName"], "secretCount": len(sp["secrets"]),
                "certificateThumbprints": [c["sha1"].hex().upper() for c in sp["certs"]]}

    # ---- VMs / VMSS
    def add_resource(self, kind, spec):
        sub = spec.get("subscriptionId") or self.settings["subscriptionId"]
        rg = spec.get("resourceGroup")
        name = spec.get("name")
        if not (rg and name):
            raise ValueError("vm/vmss needs resourceGroup and name")
        rtype = "virtualMachines" if kind == "vm" else "virtualMachineScaleSets"
        rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{rtype}/{name}"
        with LOCK:
            if rid.lower() in self.resources and not spec.get("replace", True):
                raise ValueError("exists")
            rec = {
                "kind": kind, "id": rid, "name": name, "subscriptionId": sub, "resourceGroup": rg,
                "location": spec.get("location") or self.settings["location"],
                "tags": dict(spec.get("tags", {})),
                "provisioningState": spec.get("provisioningState", "Succeeded"),
                "vmId": guid(), "system": None, "uai": {},
                "vmSize": spec.get("vmSize", "Standard_DS2_v2"),
                "capacity": int(spec.get("capacity", spec.get("instances", 2))),
                "privateIp": spec.get("privateIp", "10.240.0.4"),
            }
            if spec.get("systemAssigned"):
                rec["system"] = new_principal()
                rec["system"].update({k: spec[k] for k in ("principalId", "clientId") if spec.get(k)})
            for ident in spec.get("userAssignedIdentities", []):
                rec["uai"][ident.lower()] = self._stored_identity_id(ident)
            self.resources[rid.lower()] = rec
        return rec

    def _stored_identity_id(self, rid):
        rec = self.identities.get(rid.lower())
        return rec["resourceId"] if rec else rid

    def find_resource(self, ref):
        """ref: ARM id (VM, VMSS or VMSS instance), 'vm/NAME', 'vmss/NAME' or NAME."""
        if not ref:
            return None, None
        r = ref.strip()
        inst = None
        m = re.match(r"^(.*/virtualmachinescalesets/[^/]+)/virtualmachines/([^/]+)$", r, re.IGNORECASE)
        if m:
            r, inst = m.group(1), m.group(2)
        if r.startswith("/"):
            return self.resources.get(r.lower()), inst
        kind = None
        if "/" in r:
            kind, r = r.split("/", 1)
            kind = kind.lower()
        for rec in self.resources.values():
            if rec["name"].lower() == r.lower() and (kind is None or rec["kind"] == kind):
                return rec, inst
        return None, None

    def identity_type(self, rec):
        s, u = rec["system"] is not None, bool(rec["uai"])
        return "SystemAssigned, UserAssigned" if s and u else "SystemAssigned" if s else "UserAssigned" if u else "None"

    def resource_identities(self, rec):
        """The identities the VM/VMSS can get tokens for (system first)."""
        out = []
        if rec["system"]:
            out.append({"kind": "system", "clientId": rec["system"]["clientId"],
                        "principalId": rec["system"]["principalId"], "resourceId": rec["id"],
                        "tenantId": self.settings["tenantId"]})
        for low, stored in rec["uai"].items():
            ident = self.identities.get(low)
            if ident:
                out.append({"kind": "user", **{k: ident[k] for k in ("clientId", "principalId", "resourceId", "tenantId")}})
        return out

    def resource_view(self, rec):
        uai = []
        for low, stored in rec["uai"].items():
            ident = self.identities.get(low)
            uai.append({"resourceId": stored, "clientId": ident["clientId"] if ident else None,
                        "principalId": ident["principalId"] if ident else None, "exists": ident is not None})
        return {"kind": rec["kind"], "id": rec["id"], "name": rec["name"], "subscriptionId": rec["subscriptionId"],
                "resourceGroup": rec["resourceGroup"], "location": rec["location"],
                "provisioningState": rec["provisioningState"], "identityType": self.identity_type(rec),
                "systemAssigned": copy.deepcopy(rec["system"]), "userAssignedIdentities": uai,
                "clientIds": [u["clientId"] for u in uai if u["clientId"]], "tags": rec["tags"],
                "capacity": rec["capacity"] if rec["kind"] == "vmss" else None}

    # ---- faults
    def add_fault(self, spec):
        f = dict(spec)
        if not f.get("target") and not f.get("pathRegex"):
            raise ValueError("fault needs target and/or pathRegex")
        f.setdefault("kind", "status")
        if f["kind"] not in ("status", "throttle", "latency", "drop", "identity-not-found",
                             "linked-authorization-failed", "failed-identity-operation", "lro-failed"):
            raise ValueError(f"unknown fault kind {f['kind']}")
        if f.get("pathRegex"):
            re.compile(f["pathRegex"])
        with LOCK:
            self.fault_seq += 1
            f["id"] = str(self.fault_seq)
            f.setdefault("count", None)
            f["hits"] = 0
            self.faults.append(f)
        return f

    def take_fault(self, cls, method, path, kinds, pred=None):
        """Consume and return the first matching fault of the given kinds."""
        with LOCK:
            if self.stale_request():
                raise RequestAbandoned()
            for f in self.faults:
                if f["kind"] not in kinds:
                    continue
                t = f.get("target")
                if t and not (t == cls or t == "any" or cls.startswith(t + "-") or t == cls.split("-")[0]):
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if f.get("pathRegex") and not re.search(f["pathRegex"], path):
                    continue
                if pred and not pred(f):
                    continue
                if f["count"] is not None and f["hits"] >= f["count"]:
                    continue
                f["hits"] += 1
                result = copy.deepcopy(f)
                if f["count"] is not None and f["hits"] >= f["count"]:
                    self.faults.remove(f)
                return result
        return None

    # ---- counters / log
    def stale_request(self):
        return getattr(REQUEST, "generation", self.generation) != self.generation

    def record(self, cls, method, status, entry):
        with LOCK:
            if self.stale_request():
                return
            c = self.counters.setdefault(cls, {}).setdefault(method, {"total": 0})
            c["total"] += 1
            c[str(status)] = c.get(str(status), 0) + 1
            self.log_seq += 1
            entry["seq"] = self.log_seq
            self.log.append(entry)
            limit = int(self.settings.get("requestLogSize") or 5000)
            if len(self.log) > limit:
                del self.log[: len(self.log) - limit]


STATE = State()

# --------------------------------------------------------------------------------------------------
# the HTTP handler
# --------------------------------------------------------------------------------------------------


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return urllib.parse.urlencode([(k, "***" if k.lower() in SECRET_FIELDS else v) for k, v in pairs])


def redact_obj(obj):
    if isinstance(obj, dict):
        return {k: ("***" if k.lower() in SECRET_FIELDS else redact_obj(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(x) for x in obj]
    return obj


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AzureEmulator/" + VERSION
    timeout = 120

    # ---- plumbing
    def setup(self):
        ctx = getattr(self.server, "tls_context", None)
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if self.server.opts.verbose:
            sys.stderr.write("azure-emulator: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def base_url(self):
        scheme = "https" if getattr(self.server, "tls_context", None) else "http"
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        return f"{scheme}://{host}"

    def send(self, status, body=b"", headers=None, content_type="application/json; charset=utf-8"):
        if isinstance(body, (dict, list)):
            body = compact(body)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        headers = dict(headers or {})
        self.log_request(status, len(body))
        self.send_response_only(status)
        self.send_header("Server", headers.pop("Server", None) or self.version_string())
        self.send_header("Date", self.date_time_string())
        if content_type and (body or status not in (204, 304)):
            self.send_header("Content-Type", content_type)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    # ---- classification
    def classify(self, path_lower):
        roles = self.server.roles
        if "admin" in roles and path_lower.startswith("/admin"):
            return "admin"
        if "imds" in roles and (path_lower.startswith("/metadata") or roles == {"imds"}):
            # msal-node (JS @azure/identity) appends "/" to an AZURE_POD_IDENTITY_AUTHORITY_HOST endpoint and
            # aad-pod-identity's NMI matched by prefix, so "/token/" is accepted unless imds.acceptTrailingSlash
            # is false (real IMDS behaviour for it is UNVERIFIED)
            slash_ok = STATE.settings["imds"].get("acceptTrailingSlash", True)
            if (path_lower == "/metadata/identity/oauth2/token" or
                    (slash_ok and path_lower == "/metadata/identity/oauth2/token/")) \
                    and self.path[9:31] == "/identity/oauth2/token":
                return "imds-token"
            if path_lower.startswith("/metadata/instance"):
                return "imds-instance"
            return "imds-other"
        if "arm" in roles and (path_lower.startswith("/subscriptions") or path_lower.startswith("/tenants")
                               or path_lower.startswith("/providers")):
            if "/operations/" in path_lower or "/operationresults/" in path_lower:
                return "arm-poll"
            if re.search(r"/providers/microsoft\.compute/(virtualmachines|virtualmachinescalesets)/[^/]+"
                         r"(/virtualmachines/[^/]+)?/?$",
                         path_lower):
                return "arm-patch" if self.command == "PATCH" else "arm-get" if self.command == "GET" else "arm-other"
            return "arm-get" if self.command == "GET" else "arm-other"
        if "aad" in roles:
            if re.match(r"^/[^/]+/oauth2/(v2\.0/)?token/?$", path_lower):
                return "aad-token"
            return "aad-discovery"
        return "unknown"

    def dispatch(self):
        start = time.time()
        self._status = 0
        raw_path, _, query = self.path.partition("?")
        path = urllib.parse.unquote(raw_path)
        cls = self.classify(path.lower())
        self.cls = cls
        self.body = b""
        self.note = {}
        REQUEST.generation = STATE.generation
        counted = cls == "imds-token"
        if counted:
            with LOCK:
                STATE.rate["inflight"] += 1
        try:
            self.body = self.read_body()
            try:
                if cls != "admin":
                    self.apply_generic_faults(cls, path + ("?" + query if query else ""))
                if cls == "admin":
                    self.handle_admin(path, query)
                elif cls.startswith("imds"):
                    self.handle_imds(cls, path, query)
                elif cls.startswith("arm"):
                    self.handle_arm(cls, path, query)
                elif cls.startswith("aad"):
                    self.handle_aad(cls, path, query)
                else:
                    raise Reply(404, {"error": {"code": "NotFound", "message": "No route for " + raw_path}})
            except Reply as r:
                self.send(r.status, r.body, r.headers, r.content_type)
            except (DropConnection, RequestAbandoned):
                self.close_connection = True
                self._status = 0
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            except Exception as exc:  # noqa: BLE001 - a bug in the emulator must still answer
                sys.stderr.write(f"azure-emulator: internal error on {self.command} {raw_path}: {exc!r}\n")
                import traceback
                traceback.print_exc()
                self.send(500, {"error": {"code": "EmulatorInternalError", "message": repr(exc)}})
        finally:
            if counted:
                with LOCK:
                    STATE.rate["inflight"] -= 1
            if cls != "admin" or self.server.opts.log_admin:
                entry = {"ts": utc_iso(start), "listener": self.server.name, "client": self.client_address[0],
                         "class": cls, "method": self.command, "path": raw_path, "query": redact_query(query),
                         "status": self._status, "durationMs": int((time.time() - start) * 1000)}
                if self.note:
                    entry.update(redact_obj(self.note))
                STATE.record(cls, self.command, self._status, entry)

    # ---- faults
    def apply_generic_faults(self, cls, full_path):
        f = STATE.take_fault(cls, self.command, full_path, ("latency",))
        if f:
            time.sleep(float(f.get("latencyMs", 0)) / 1000.0)
            self.note["fault"] = f["id"]
        f = STATE.take_fault(cls, self.command, full_path, ("status", "throttle", "drop"),
                             pred=lambda f: not (cls == "imds-token" and f["kind"] == "identity-not-found"))
        if not f:
            return
        self.note["fault"] = f["id"]
        if f.get("latencyMs"):
            time.sleep(float(f["latencyMs"]) / 1000.0)
        if f["kind"] == "drop":
            raise DropConnection()
        status = int(f.get("status") or (429 if f["kind"] == "throttle" else 500))
        headers = dict(f.get("headers") or {})
        ra = f.get("retryAfter")
        if ra is None and status == 429 and cls.startswith("arm"):
            ra = 1
        if ra is not None:
            headers["Retry-After"] = str(ra)
        if status == 429 and cls.startswith("arm"):
            headers.setdefault("x-ms-ratelimit-remaining-resource", "Microsoft.Compute/HighCostGet3Min;0")
        if "body" in f:
            body = f["body"]
            raise Reply(status, body if isinstance(body, (dict, list)) else str(body), headers,
                        f.get("contentType", "application/json; charset=utf-8"))
        raise Reply(status, fault_body(cls, status), headers)


def fault_body(cls, status):
    if cls.startswith("imds"):
        if status == 429:
            return {"error": "invalid_request", "error_description": "Temporarily throttled, too many requests"}
        if status >= 500:
            return {"error": "unknown", "error_description": "Failed to retrieve token from the Active directory. "
                    "For details see logs in /var/log/azure/Microsoft.ManagedIdentity"}
        if status == 404:
            return {"error": "not_found", "error_description": "IMDS is updating, retry later"}
        if status == 410:
            return {"error": "gone", "error_description": "IMDS is updating, retry later"}
        return {"error": "invalid_request", "error_description": f"Injected failure {status}"}
    if cls.startswith("aad"):
        if status == 429:
            return aad_error_body("temporarily_unavailable", 50196,
                                  "The server terminated an operation because it encountered a client request loop.")
        if status >= 500:
            return aad_error_body("temporarily_unavailable", 90033,
                                  "A transient error has occurred. Please try again.")
        return aad_error_body("invalid_request", 90000, f"Injected failure {status}.")
    if status == 429:
        return {"error": {"code": "OperationNotAllowed",
                          "message": "The server rejected the request because too many requests have been "
                                     "received for this subscription.",
                          "details": [{"code": "TooManyRequests", "target": "HighCostGet3Min",
                                       "message": json.dumps({"operationGroup": "HighCostGet3Min",
                                                              "startTime": utc_iso(), "endTime": utc_iso(time.time() + 180),
                                                              "allowedRequestCount": 160,
                                                              "measuredRequestCount": 161})}]}}
    if status >= 500:
        return {"error": {"code": "InternalServerError",
                          "message": "An internal execution error occurred. Please retry later."}}
    return {"error": {"code": "InjectedFailure", "message": f"Injected failure {status}."}}


# ==================================================================================================
# IMDS
# ==================================================================================================

IMDS_HEADERS = {"Server": "IMDS/150.870.65.1854"}


def imds_reply(status, body):
    return Reply(status, body, IMDS_HEADERS)


def imds_handlers(H):
    def handle_imds(self, cls, path, query):
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        names = [k for k, _ in pairs]
        q = dict(pairs)
        low = path.lower()
        if not low.startswith("/metadata"):
            raise imds_reply(404, {"error": "Not found"})
        if self.command != "GET":
            raise imds_reply(405, {"error": "Method not allowed"} if cls != "imds-token" else
                             {"error": "method_not_allowed", "error_description": "Method not allowed"})
        if cls == "imds-token":
            return self.imds_token(path, q, names)
        rest = path[len("/metadata"):]
        if self.headers.get("X-Forwarded-For") is not None:
            raise imds_reply(int(STATE.settings["imds"]["xffStatus"]),
                             {"error": "Bad request. Request must not contain X-Forwarded-For header"})
        if self.headers.get("Metadata") != "true":
            raise imds_reply(400, {"error": "Bad request: . Required metadata header not specified"})
        if len(set(names)) != len(names):
            raise imds_reply(400, {"error": "Bad request. Query parameters should not be repeated"})
        if rest == "/versions":
            raise imds_reply(200, {"apiVersions": IMDS_API_VERSIONS})
        if "api-version" not in q:
            raise imds_reply(400, {"error": "Bad request. api-version was not specified in the request. For more "
                                            "information refer to aka.ms/azureimds",
                                   "newest-versions": IMDS_API_VERSIONS[-1:-4:-1]})
        if q["api-version"] not in IMDS_API_VERSIONS:
            raise imds_reply(400, {"error": "Bad request. api-version is invalid or was not specified in the "
                                            "request. For more information refer to aka.ms/azureimds",
                                   "newest-versions": IMDS_API_VERSIONS[-1:-4:-1]})
        self.imds_rate("other")
        if rest == "/identity/info":
            raise imds_reply(200, {"tenantId": STATE.settings["tenantId"]})
        if rest == "/instance" or rest.startswith("/instance/"):
            return self.imds_instance(rest[len("/instance"):], q)
        raise imds_reply(404, {"error": "Not found"})

    def imds_rate(self, kind):
        rl = STATE.settings["imds"]["rateLimit"]
        if not rl.get("enabled"):
            return
        with LOCK:
            now = time.time()
            win = [t for t in STATE.rate[kind] if now - t < 1.0]
            limit = rl["identityRps"] if kind == "identity" else rl["otherRps"]
            busy = kind == "identity" and STATE.rate["inflight"] - 1 >= rl["identityConcurrency"]
            if len(win) >= limit or busy:
                STATE.rate[kind] = win
                raise imds_reply(429, {"error": "invalid_request",
                                       "error_description": "Temporarily throttled, too many requests"})
            win.append(now)
            STATE.rate[kind] = win

    def imds_vm(self):
        ref = STATE.settings["imds"]["listeners"].get(self.server.name) or self.server.imds_vm \
            or STATE.settings["imds"]["vm"]
        return STATE.find_resource(ref)

    def imds_token(self, path, q, names):
        if self.headers.get("X-Forwarded-For") is not None:
            raise imds_reply(int(STATE.settings["imds"]["xffStatus"]),
                             {"error": "invalid_request",
                              "error_description": "Request must not contain X-Forwarded-For header"})
        if self.headers.get("Metadata") != "true":
            raise imds_reply(400, {"error": "invalid_request",
                                   "error_description": "Required metadata header not specified"})
        if len(set(names)) != len(names):
            raise imds_reply(400, {"error": "invalid_request", "error_description": "Query parameter repeated"})
        av = q.get("api-version")
        if not av:
            raise imds_reply(400, {"error": "invalid_request",
                                   "error_description": "Required query variable 'api-version' is missing"})
        if not DATE_RE.match(av) or av < "2018-02-01":
            raise imds_reply(400, {"error": "invalid_request",
                                   "error_description": f"Invalid api-version '{av}'"})
        resource = q.get("resource", "")
        if not resource:
            raise imds_reply(400, {"error": "invalid_request",
                                   "error_description": "Required query variable 'resource' is missing"})
        sel = [(k, q[k]) for k in ("client_id", "object_id", "msi_res_id", "mi_res_id") if q.get(k)]
        self.note["imds"] = {"resource": resource, **dict(sel)}
        if len(sel) > 1:  # UNVERIFIED: spec says mutually exclusive, real status/body unknown
            raise imds_reply(400, {"error": "invalid_request",
                                   "error_description": "Only one of client_id, object_id and msi_res_id may be specified"})
        not_found = imds_reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
        fields = {"client_id": "clientId", "object_id": "principalId", "msi_res_id": "resourceId", "mi_res_id": "resourceId"}

        def fault_pred(f):
            ids = [i.lower() for i in f.get("identities") or []]
            return not ids or (sel and sel[0][1].lower() in ids)
        if STATE.take_fault("imds-token", "GET", path, ("identity-not-found",), fault_pred):
            raise not_found
        with LOCK:
            rec, _ = self.imds_vm()
            candidates = STATE.resource_identities(rec) if rec else []
            chosen = None
            if sel:
                field, value = fields[sel[0][0]], sel[0][1].lower()
                for c in candidates:
                    if str(c[field]).lower() == value and (c["kind"] == "user" or field != "resourceId"):
                        chosen = c
                        break
                if chosen is None and STATE.settings["imds"]["serveAnyIdentity"]:
                    ident = STATE.find_identity_by(field, value)
                    if ident:
                        chosen = {"kind": "user", **{k: ident[k] for k in ("clientId", "principalId", "resourceId", "tenantId")}}
                if chosen is None:
                    raise not_found
            else:
                system = [c for c in candidates if c["kind"] == "system"]
                users = [c for c in candidates if c["kind"] == "user"]
                if system:
                    chosen = system[0]
                elif len(users) == 1:
                    chosen = users[0]
                elif len(users) > 1:
                    raise imds_reply(400, {"error": "invalid_request", "error_description":
                                           "Multiple user assigned identities exist, please specify the clientId / "
                                           "resourceId of the identity in the token request"})
                else:
                    raise not_found
        self.imds_rate("identity")
        life = int(STATE.settings["imds"].get("tokenLifetimeSeconds") or STATE.settings["tokenLifetimeSeconds"])
        now = int(time.time())
        claims = token_claims(aud=resource, tid=chosen["tenantId"], oid=chosen["principalId"],
                              appid=chosen["clientId"], now=now, life=life, acr="2",
                              mirid=chosen["resourceId"])
        self.note["identity"] = chosen["clientId"]
        body = {"access_token": self.server.signer.sign(claims), "client_id": chosen["clientId"],
                "expires_in": str(life), "expires_on": str(now + life), "ext_expires_in": str(life),
                "not_before": str(now), "resource": resource, "token_type": "Bearer"}
        if q.get("object_id"):
            body["object_id"] = q["object_id"]
        if q.get("msi_res_id"):
            body["msi_res_id"] = q["msi_res_id"]
        raise imds_reply(200, body)

    def imds_instance(self, sub, q):
        with LOCK:
            rec, inst = self.imds_vm()
            doc = instance_document(rec, inst)
        node = doc
        for seg in [s for s in sub.split("/") if s]:
            if isinstance(node, dict) and seg in node:
                node = node[seg]
            elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
                node = node[int(seg)]
            else:
                raise imds_reply(404, {"error": "Not found"})
        fmt = q.get("format", "json")
        if fmt == "text":
            if isinstance(node, dict):
                text = "\n".join(k + ("/" if isinstance(v, (dict, list)) else "") for k, v in node.items())
            elif isinstance(node, list):
                text = "\n".join(f"{i}/" for i in range(len(node)))
            else:
                text = node
            raise Reply(200, text, IMDS_HEADERS, "text/plain; charset=utf-8")
        if fmt != "json":
            raise imds_reply(400, {"error": "Bad request. Invalid format specified"})
        if not isinstance(node, (dict, list)):
            raise imds_reply(400, {"error": "Bad request. Leaf node must use format=text"})  # UNVERIFIED
        raise imds_reply(200, node)

    H.handle_imds = handle_imds
    H.imds_rate = imds_rate
    H.imds_vm = imds_vm
    H.imds_token = imds_token
    H.imds_instance = imds_instance


def instance_document(rec, inst):
    if rec is None:
        name, rid, rg, sub, loc, vmss, tags, vmid, size, ip = "", "", "", "", "", "", {}, "", "", ""
    else:
        name = rec["name"] if rec["kind"] == "vm" else f"{rec['name']}_{inst or 0}"
        rid = rec["id"] if rec["kind"] == "vm" else f"{rec['id']}/virtualMachines/{inst or 0}"
        rg, sub, loc, tags, vmid = rec["resourceGroup"], rec["subscriptionId"], rec["location"], rec["tags"], rec["vmId"]
        vmss = rec["name"] if rec["kind"] == "vmss" else ""
        size, ip = rec["vmSize"], rec["privateIp"]
    return {
        "compute": {
            "azEnvironment": "AzurePublicCloud", "location": loc, "name": name, "osType": "Linux",
            "resourceGroupName": rg, "resourceId": rid, "subscriptionId": sub, "vmId": vmid,
            "vmScaleSetName": vmss, "vmSize": size, "zone": "", "provider": "Microsoft.Compute",
            "tags": ";".join(f"{k}:{v}" for k, v in tags.items()),
            "tagsList": [{"name": k, "value": str(v)} for k, v in tags.items()],
            "virtualMachineScaleSet": {"id": rec["id"] if rec and rec["kind"] == "vmss" else ""},
        },
        "network": {"interface": [{
            "ipv4": {"ipAddress": [{"privateIpAddress": ip, "publicIpAddress": ""}],
                     "subnet": [{"address": "10.240.0.0", "prefix": "16"}]},
            "ipv6": {"ipAddress": []}, "macAddress": "000D3A000001"}]},
    }


def token_claims(aud, tid, oid, appid, now, life, acr, mirid=None, ver="1.0", iss_base="https://sts.windows.net"):
    claims = {
        "aud": aud, "iss": f"{iss_base}/{tid}/" if ver == "1.0" else f"{iss_base}/{tid}/v2.0",
        "iat": now, "nbf": now, "exp": now + life, "aio": b64url(os.urandom(24)),
        "appid": appid, "azp": appid, "appidacr": acr, "azpacr": acr, "idp": f"https://sts.windows.net/{tid}/",
        "idtyp": "app", "oid": oid, "rh": "0.emulator.", "sub": oid, "tid": tid,
        "uti": b64url(os.urandom(16)), "ver": ver,
    }
    if mirid:
        claims["xms_mirid"] = mirid
    return claims


imds_handlers(Handler)

# ==================================================================================================
# Entra ID (AAD)
# ==================================================================================================


def aad_error_body(oauth_error, code, text):
    trace, corr, ts = guid(), guid(), datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return {"error": oauth_error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}",
            "error_codes": [code], "timestamp": ts, "trace_id": trace, "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


def aad_error(status, oauth_error, code, text):
    return Reply(status, aad_error_body(oauth_error, code, text),
                 {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def aad_handlers(H):
    def handle_aad(self, cls, path, query):
        segs = [s for s in path.split("/") if s]
        if cls == "aad-token":
            return self.aad_token(segs[0], "v2.0" in path.lower())
        low = [s.lower() for s in segs]
        if self.command not in ("GET", "HEAD"):
            raise aad_error(405, "invalid_request", 900561, f"The endpoint only accepts GET requests. Received a {self.command} request.")
        base = self.base_url()
        if low[:3] == ["common", "discovery", "instance"]:
            host = urllib.parse.urlsplit(base).netloc
            q = dict(urllib.parse.parse_qsl(query))
            tenant = "common"
            m = re.match(r"^https?://[^/]+/([^/]+)/", q.get("authorization_endpoint", ""))
            if m:
                tenant = m.group(1)
            raise Reply(200, {"tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
                              "api-version": "1.1",
                              "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]})
        if len(segs) >= 2 and low[1:] in (["v2.0", ".well-known", "openid-configuration"],
                                          [".well-known", "openid-configuration"]):
            v2 = low[1] == "v2.0"
            tenant = segs[0]
            tid = self.aad_tenant(tenant, allow_common=True)
            t_out = tid if tid else "{tenantid}"
            tok = f"{base}/{tenant}/oauth2/v2.0/token" if v2 else f"{base}/{tenant}/oauth2/token"
            raise Reply(200, {
                "token_endpoint": tok,
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys" if v2 else f"{base}/common/discovery/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{t_out}/v2.0" if v2 else f"https://sts.windows.net/{t_out}/",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{base}/{tenant}/openid/userinfo",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize" if v2 else f"{base}/{tenant}/oauth2/authorize",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "http_logout_supported": True, "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
            }, {"Cache-Control": "max-age=86400, private"})
        if len(segs) >= 2 and low[1:] in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
            raise Reply(200, self.server.signer.jwks())
        raise aad_error(404, "invalid_request", 900000, f"No route for {path}.")

    def aad_tenant(self, tenant, allow_common=False):
        if tenant.lower() in ("common", "organizations", "consumers"):
            if allow_common:
                return None
            raise aad_error(400, "invalid_request", 50059,
                            "No tenant-identifying information found in either the request or implied by any "
                            "provided credentials.")
        with LOCK:
            tid = STATE.find_tenant(tenant)
        if tid is None:
            raise aad_error(400, "invalid_request", 90002,
                            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                            "are signing into the correct cloud. Check with your subscription administrator, this "
                            "may happen if there are no active subscriptions for the tenant.")
        return tid

    def aad_token(self, tenant, v2):
        if self.command != "POST":
            raise aad_error(400, "invalid_request", 900561,
                            f"The endpoint only accepts POST, OPTIONS requests. Received a {self.command} request.")
        ctype = self.headers.get("Content-Type", "")
        form = {}
        if ctype.lower().startswith("application/x-www-form-urlencoded") or not ctype:
            form = dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        self.note["aad"] = {"tenant": tenant, "v": "2.0" if v2 else "1.0",
                            **{k: form[k] for k in ("grant_type", "client_id", "resource", "scope") if k in form},
                            "credential": "assertion" if form.get("client_assertion") else
                                          "secret" if form.get("client_secret") else "none"}
        tid = self.aad_tenant(tenant)
        basic_id = basic_secret = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                dec = base64.b64decode(auth[6:].strip()).decode("utf-8")
                basic_id, _, basic_secret = dec.partition(":")
                basic_id, basic_secret = urllib.parse.unquote_plus(basic_id), urllib.parse.unquote_plus(basic_secret)
                self.note["aad"]["credential"] = "basic"
            except Exception:  # noqa: BLE001
                raise aad_error(401, "invalid_client", 50000, "Malformed Authorization header.")
        gt = form.get("grant_type")
        if not gt:
            raise aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
        if gt != "client_credentials":
            raise aad_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{gt}'.")
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        with LOCK:
            sp = STATE.sps.get((tid.lower(), client_id.lower()))
        if sp is None:
            raise aad_error(400, "unauthorized_client", 700016,
                            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
                            "This can happen if the application has not been installed by the administrator of the "
                            "tenant or consented to by any user in the tenant. You may have sent your authentication "
                            "request to the wrong tenant.")
        if v2:
            if "resource" in form:
                raise aad_error(400, "invalid_request", 901002, "The 'resource' request parameter is not supported.")
            scope = form.get("scope")
            if not scope:
                raise aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
            scopes = scope.split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                raise aad_error(400, "invalid_scope", 1002012,
                                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                                "a scope value with /.default suffixed to the resource identifier (application ID URI).")
            resource = scopes[0][: -len("/.default")]
        else:
            resource = form.get("resource")
            if not resource:
                raise aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'resource'.")
        assertion = form.get("client_assertion")
        secret = form.get("client_secret") or basic_secret
        if assertion:
            at = form.get("client_assertion_type")
            if at != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                raise aad_error(400, "invalid_request", 50027 if at else 900144,
                                "Invalid client_assertion_type." if at else
                                "The request body must contain the following parameter: 'client_assertion_type'.")
            self.verify_assertion(sp, tenant, assertion, v2)
            acr = "2"
        elif secret:
            if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in sp["secrets"]):
                raise aad_error(401, "invalid_client", 7000215,
                                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                                "client secret value, not the client secret ID, for a secret added to app "
                                f"'{sp['clientId']}'.")
            acr = "1"
        else:
            raise aad_error(401, "invalid_client", 7000218,
                            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        allowed = STATE.settings["aad"].get("resources")
        if allowed is not None and resource.rstrip("/").lower() not in [r.rstrip("/").lower() for r in allowed]:
            raise aad_error(400, "invalid_resource", 500011,
                            f"The resource principal named {resource} was not found in the tenant named {tenant}. "
                            "This can happen if the application has not been installed by the administrator of the "
                            "tenant or consented to by any user in the tenant. You might have sent your "
                            "authentication request to the wrong tenant.")
        life = int(STATE.settings["aad"]["tokenLifetimeSeconds"])
        now = int(time.time())
        claims = token_claims(aud=resource, tid=sp["tenantId"], oid=sp["objectId"], appid=sp["clientId"],
                              now=now, life=life, acr=acr, ver="2.0" if v2 else "1.0",
                              iss_base="https://sts.windows.net" if not v2 else "https://login.microsoftonline.com")
        tok = self.server.signer.sign(claims)
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        if v2:
            raise Reply(200, {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life,
                              "access_token": tok}, headers)
        raise Reply(200, {"token_type": "Bearer", "expires_in": str(life), "ext_expires_in": str(life),
                          "expires_on": str(now + life), "not_before": str(now), "resource": resource,
                          "access_token": tok}, headers)

    def verify_assertion(self, sp, tenant, assertion, v2):
        bad = lambda code, text, status=401, err="invalid_client": aad_error(status, err, code, text)  # noqa: E731
        parts = assertion.split(".")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
            if len(parts) != 3 or not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError
        except Exception:  # noqa: BLE001
            raise bad(50027, "JWT token is invalid or malformed.", 400, "invalid_request")
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise bad(5002738, f"Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported "
                               "signing algorithms are: 'RS256,PS256'", 400, "invalid_request")
        cert = None
        thumb = None
        try:
            if header.get("x5t#S256"):
                thumb = b64url_decode(header["x5t#S256"])
                cert = next((c for c in sp["certs"] if c["sha256"] == thumb), None)
            if cert is None and header.get("x5t"):
                thumb = b64url_decode(header["x5t"])
                cert = next((c for c in sp["certs"] if c["sha1"] == thumb), None)
        except Exception:  # noqa: BLE001
            cert = None
        if cert is None:
            shown = base64.b64encode(thumb).decode() if thumb else ""
            raise bad(700027, "Client assertion contains an invalid signature. [Reason - The key was not found., "
                              f"Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph "
                              "Explorer or directly use MS Graph to see configured keys for app Id "
                              f"'{sp['clientId']}'. Review the documentation at "
                              "https://docs.microsoft.com/en-us/graph/api/application-addkey .]")
        pub = cert["cert"].public_key()
        signing_input = (parts[0] + "." + parts[1]).encode("ascii")
        try:
            if not isinstance(pub, rsa.RSAPublicKey):
                raise InvalidSignature()
            if alg == "RS256":
                pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            else:
                pub.verify(sig, signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                           salt_length=padding.PSS.AUTO), hashes.SHA256())
        except InvalidSignature:
            raise bad(700027, "Client assertion failed signature validation. [Reason - The provided signature "
                              "value did not match the expected signature value., Thumbprint of key used by client: "
                              f"'{cert['sha1'].hex().upper()}']")
        cid = sp["clientId"].lower()
        if str(claims.get("iss", "")).lower() != cid or str(claims.get("sub", "")).lower() != cid:
            raise bad(700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review "
                              "the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/"
                              "active-directory-certificate-credentials .")
        # aud: the token endpoint URL (query ignored); v1 and v2 token URLs of this tenant are both accepted
        base = self.base_url()
        expected = {f"{base}/{tenant}/oauth2/token".lower(), f"{base}/{tenant}/oauth2/v2.0/token".lower()}
        for t in (sp["tenantId"],):
            expected |= {f"{base}/{t}/oauth2/token".lower(), f"{base}/{t}/oauth2/v2.0/token".lower()}
        expected |= {a.lower() for a in STATE.settings["aad"].get("extraAssertionAudiences") or []}
        auds = claims.get("aud")
        auds = auds if isinstance(auds, list) else [auds]
        if not any(isinstance(a, str) and a.split("?")[0].rstrip("/").lower() in
                   {e.rstrip("/") for e in expected} for a in auds):
            # UNVERIFIED code: Entra's exact error for a wrong assertion audience was not found in any source
            raise bad(50013, f"Assertion audience claim does not match the required value. The audience in the "
                             f"assertion was '{claims.get('aud')}' and the expected audience is "
                             f"'{base}/{tenant}/oauth2/token'.")
        skew = int(STATE.settings["aad"]["clockSkewSeconds"])
        now = time.time()
        try:
            exp = float(claims["exp"])
            nbf = float(claims.get("nbf", claims.get("iat", 0)))
        except (KeyError, TypeError, ValueError):
            raise bad(50027, "Invalid JWT token. The token has no valid 'exp' claim.", 400, "invalid_request")
        if exp + skew < now or nbf - skew > now:
            fmt = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")  # noqa: E731
            raise bad(700024, f"Client assertion is not within its valid time range. Current time: "
                              f"{utc_iso(now)}, assertion valid from {fmt(nbf)}, expiry time of assertion "
                              f"{fmt(exp)}. Review the documentation at "
                              "https://docs.microsoft.com/en-us/azure/active-directory/develop/"
                              "active-directory-certificate-credentials .", 400, "invalid_client")
        if not claims.get("jti"):
            raise bad(50027, "Invalid JWT token. The token has no 'jti' claim.", 400, "invalid_request")

    H.handle_aad = handle_aad
    H.aad_tenant = aad_tenant
    H.aad_token = aad_token
    H.verify_assertion = verify_assertion


aad_handlers(Handler)

# ==================================================================================================
# ARM
# ==================================================================================================


def arm_error(status, code, message, headers=None, **extra):
    err = {"code": code, "message": message}
    err.update(extra)
    h = {"x-ms-request-id": guid(), "x-ms-correlation-request-id": guid(), "x-ms-failure-cause": "gateway"}
    h.update(headers or {})
    return Reply(status, {"error": err}, h)


ARM_PATH_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute/"
    r"(?P<type>virtualmachines|virtualmachinescalesets)/(?P<name>[^/]+)(?:/virtualmachines/(?P<inst>[^/]+))?$",
    re.IGNORECASE)
OP_PATH_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.compute/locations/(?P<loc>[^/]+)/"
                        r"(?P<kind>operations|operationresults)/(?P<op>[^/]+)$", re.IGNORECASE)
UAMI_PATH_RE = re.compile(r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/"
                          r"userassignedidentities/[^/]+$", re.IGNORECASE)
LIST_PATH_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute/"
                          r"(?P<type>virtualmachines|virtualmachinescalesets)$", re.IGNORECASE)


def arm_handlers(H):
    def handle_arm(self, cls, path, query):
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        self.arm_caller = self.arm_auth()
        av = q.get("api-version")
        if not av:
            raise arm_error(400, "MissingApiVersionParameter",
                            "The api-version query parameter (?api-version=) is required for all requests.")
        base_headers = {"x-ms-request-id": guid(), "x-ms-correlation-request-id": guid(),
                        "Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "-1"}
        if self.command == "GET":
            base_headers["x-ms-ratelimit-remaining-subscription-reads"] = "11999"
        else:
            base_headers["x-ms-ratelimit-remaining-subscription-writes"] = "1199"
        self.arm_headers = base_headers
        p = path.rstrip("/") if path != "/" else path
        m = OP_PATH_RE.match(p)
        if m:
            return self.arm_poll(m, q)
        m = ARM_PATH_RE.match(p)
        if m:
            if av < STATE.settings["arm"]["minApiVersion"] or not DATE_RE.match(av):
                t = m.group("type")
                raise arm_error(400, "NoRegisteredProviderFound",
                                f"No registered resource provider found for location '{STATE.settings['location']}' "
                                f"and API version '{av}' for type '{t}'. The supported api-versions are "
                                "'2018-06-01, 2019-12-01, 2020-12-01, 2021-11-01, 2022-08-01, 2023-03-01, 2024-07-01'.")
            if m.group("inst"):
                if self.command != "GET" or m.group("type").lower() != "virtualmachinescalesets":
                    raise arm_error(405, "MethodNotAllowed", "The requested method is not allowed.")
                return self.arm_instance(m, q)
            if self.command == "GET":
                return self.arm_get(m, q)
            if self.command == "PATCH":
                return self.arm_patch(m, q, path)
            raise arm_error(405, "OperationNotSupported",
                            f"The requested operation '{self.command}' is not supported by the emulator.")
        if self.command == "GET":
            m = LIST_PATH_RE.match(p)
            if m:
                with LOCK:
                    self.arm_check_scope(m.group("sub"), m.group("rg"))
                    kind = "vm" if m.group("type").lower() == "virtualmachines" else "vmss"
                    value = [arm_resource_body(r) for r in STATE.resources.values() if r["kind"] == kind and
                             r["subscriptionId"].lower() == m.group("sub").lower() and
                             r["resourceGroup"].lower() == m.group("rg").lower()]
                raise Reply(200, {"value": value}, self.arm_headers)
            if UAMI_PATH_RE.match(p):
                with LOCK:
                    ident = STATE.identities.get(p.lower())
                    if not ident:
                        raise arm_error(404, "ResourceNotFound",
                                        f"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/"
                                        f"{p.rsplit('/', 1)[1]}' under resource group '{p.split('/')[4]}' was not "
                                        "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
                    raise Reply(200, {"id": ident["resourceId"], "name": ident["name"], "location": ident["location"],
                                      "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "tags": {},
                                      "properties": {"tenantId": ident["tenantId"], "principalId": ident["principalId"],
                                                     "clientId": ident["clientId"]}}, self.arm_headers)
            if p.lower() == "/subscriptions":
                with LOCK:
                    subs = sorted({r["subscriptionId"] for r in STATE.resources.values()} |
                                  {STATE.settings["subscriptionId"]})
                    tid = STATE.settings["tenantId"]
                raise Reply(200, {"value": [{"id": f"/subscriptions/{s}", "subscriptionId": s, "tenantId": tid,
                                             "displayName": f"Emulated subscription {s[:8]}", "state": "Enabled",
                                             "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                                                      "quotaId": "Internal_2014-09-01",
                                                                      "spendingLimit": "Off"},
                                             "authorizationSource": "RoleBased"} for s in subs]}, self.arm_headers)
            if p.lower() == "/tenants":
                with LOCK:
                    tids = [STATE.settings["tenantId"]] + [t["tenantId"] for t in STATE.tenants.values()]
                raise Reply(200, {"value": [{"id": f"/tenants/{t}", "tenantId": t} for t in dict.fromkeys(tids)]},
                            self.arm_headers)
        raise arm_error(404, "InvalidResourceType" if self.command == "GET" else "NotFound",
                        f"The resource type could not be found for path '{path}'.")

    def arm_auth(self):
        if not STATE.settings["arm"]["requireAuth"]:
            return {"appid": "00000000-0000-0000-0000-000000000000", "oid": "00000000-0000-0000-0000-000000000000"}
        auth = self.headers.get("Authorization")
        www = {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
                                   'error_description="The authentication failed because of missing \'Authorization\' header."'}
        if not auth:
            raise arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", www)
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() != "bearer" or not tok.strip():
            raise arm_error(401, "AuthenticationFailed",
                            "Authentication failed. The 'Authorization' header is provided in an invalid format.", www)
        try:
            _, claims = self.server.signer.verify(tok.strip())
        except ValueError:
            raise arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.",
                            {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                                 'error="invalid_token", error_description="The access token is invalid."'})
        aud = claims.get("aud")
        allowed = STATE.settings["arm"]["allowedAudiences"]
        if aud not in allowed:
            raise arm_error(401, "InvalidAuthenticationTokenAudience",
                            f"The access token has been obtained for wrong audience or resource '{aud}'. It should "
                            f"exactly match with one of the allowed audiences '{', '.join(allowed)}'.",
                            {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                                 'error="invalid_token", error_description="The access token has been '
                                                 'obtained for wrong audience or resource."'})
        now = time.time()
        if float(claims.get("exp", 0)) < now:
            exp_s = datetime.datetime.fromtimestamp(float(claims.get("exp", 0)), datetime.timezone.utc)
            raise arm_error(401, "ExpiredAuthenticationToken",
                            f"The access token expiry UTC time '{exp_s.strftime('%m/%d/%Y %I:%M:%S %p')}' is earlier "
                            f"than current UTC time "
                            f"'{datetime.datetime.now(datetime.timezone.utc).strftime('%m/%d/%Y %I:%M:%S %p')}'.",
                            {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                                 'error="invalid_token", error_description="The access token expiry '
                                                 'UTC time is earlier than current UTC time."'})
        if float(claims.get("nbf", 0)) > now + 300:
            raise arm_error(401, "InvalidAuthenticationToken", "The access token is not yet valid.")
        self.note["caller"] = {"appid": claims.get("appid"), "oid": claims.get("oid")}
        return claims

    def arm_check_scope(self, sub, rg):
        known_subs = {r["subscriptionId"].lower() for r in STATE.resources.values()} | \
            {STATE.settings["subscriptionId"].lower()}
        if sub.lower() not in known_subs:
            raise arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if not any(r["subscriptionId"].lower() == sub.lower() and r["resourceGroup"].lower() == rg.lower()
                   for r in STATE.resources.values()):
            raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")

    def arm_lookup(self, m):
        self.arm_check_scope(m.group("sub"), m.group("rg"))
        rid = (f"/subscriptions/{m.group('sub')}/resourceGroups/{m.group('rg')}/providers/Microsoft.Compute/"
               f"{m.group('type')}/{m.group('name')}")
        rec = STATE.resources.get(rid.lower())
        if rec is None:
            t = "virtualMachines" if m.group("type").lower() == "virtualmachines" else "virtualMachineScaleSets"
            raise arm_error(404, "ResourceNotFound",
                            f"The Resource 'Microsoft.Compute/{t}/{m.group('name')}' under resource group "
                            f"'{m.group('rg')}' was not found. For more details please go to "
                            "https://aka.ms/ARMResourceNotFoundFix")
        return rec

    def arm_get(self, m, q):
        with LOCK:
            rec = self.arm_lookup(m)
            self.arm_progress_ops()
            body = arm_resource_body(rec)
        h = dict(self.arm_headers)
        h["x-ms-ratelimit-remaining-resource"] = ("Microsoft.Compute/LowCostGet3Min;3996,Microsoft.Compute/LowCostGet30Min;31983"
                                                  if rec["kind"] == "vm" else
                                                  "Microsoft.Compute/GetVMScaleSet3Min;197,Microsoft.Compute/GetVMScaleSet30Min;1297")
        raise Reply(200, body, h)

    def arm_instance(self, m, q):
        with LOCK:
            rec = self.arm_lookup(m)
            inst = m.group("inst")
            if not inst.isdigit() or int(inst) >= rec["capacity"]:
                raise arm_error(404, "NotFound", f"The entity was not found in this Azure location.")
            body = arm_resource_body(rec)
            body.update({"instanceId": inst, "name": f"{rec['name']}_{inst}", "id": f"{rec['id']}/virtualMachines/{inst}",
                         "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"})
            body.pop("sku", None)
            body["properties"] = {"latestModelApplied": True, "vmId": guid(),
                                  "provisioningState": rec["provisioningState"],
                                  "osProfile": {"computerName": f"{rec['name']}{int(inst):06d}"}}
        raise Reply(200, body, self.arm_headers)

    def arm_patch(self, m, q, path):
        try:
            body = json.loads(self.body or b"null")
        except ValueError as exc:
            raise arm_error(400, "InvalidRequestContent",
                            f"The request content was invalid and could not be deserialized: '{exc}'.")
        if not isinstance(body, dict):
            raise arm_error(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
        caller = self.arm_caller
        with LOCK:
            rec = self.arm_lookup(m)
            self.arm_progress_ops()
            rtype = "virtualMachines" if rec["kind"] == "vm" else "virtualMachineScaleSets"
            if rec["provisioningState"] == "Deleting":
                raise arm_error(409, "OperationNotAllowed",
                                f"Operation 'Update' is not allowed on {'VM' if rec['kind'] == 'vm' else 'VM scale set'} "
                                f"'{rec['name']}' since it is marked for deletion. You can only retry the Delete "
                                "operation (or wait for an ongoing one to complete).")
            snapshot = (copy.deepcopy(rec["system"]), dict(rec["uai"]), dict(rec["tags"]))
            ident = body.get("identity")
            adds, removes = [], []
            if ident is not None:
                if not isinstance(ident, dict):
                    raise arm_error(400, "InvalidRequestContent", "The 'identity' property must be an object.")
                t = ident.get("type")
                tparsed = None
                if t is not None:
                    norm = str(t).replace(" ", "").lower()
                    options = {"none": (False, False), "systemassigned": (True, False), "userassigned": (False, True),
                               "systemassigned,userassigned": (True, True), "userassigned,systemassigned": (True, True)}
                    if norm not in options:
                        raise arm_error(400, "InvalidParameter", f"The value '{t}' of parameter 'identity.type' is "
                                        "invalid. Allowed values are 'None', 'SystemAssigned', 'UserAssigned', "
                                        "'SystemAssigned, UserAssigned'.", target="identity.type")
                    tparsed = options[norm]
                umap = ident.get("userAssignedIdentities")
                if umap is not None and not isinstance(umap, dict):
                    raise arm_error(400, "InvalidRequestContent", "'userAssignedIdentities' must be an object.")
                umap = umap or {}
                limit = STATE.settings["arm"]["maxIdentitiesPerRequest"]
                if limit is not None and len(umap) > int(limit):
                    raise self.failed_identity_op(rec, "BadRequest",
                                                  f"User Assigned Identities Number '{len(umap)}' Assign exceed limit "
                                                  f"'{limit}' in one request.")
                badids = [k for k in umap if not UAMI_ID_RE.match(k)]
                if badids:
                    raise arm_error(400, "LinkedInvalidPropertyId",
                                    f"Property id '{badids[0]}' at path 'identity.userAssignedIdentities' is invalid. "
                                    "Expect fully qualified resource Id that start with '/subscriptions/{subscriptionId}' "
                                    "or '/providers/{resourceProviderNamespace}/'.")
                badvals = []
                for k, v in umap.items():
                    if v is None:
                        removes.append(k)
                    elif v == {}:
                        adds.append(k)
                    else:
                        cur = STATE.identities.get(k.lower())
                        if (isinstance(v, dict) and k.lower() in rec["uai"] and cur is not None
                                and set(v) <= {"principalId", "clientId"}
                                and all(str(v[f]).lower() == cur[f].lower() for f in v)):
                            continue  # "the resource existing property": no change
                        badvals.append(k)
                if badvals:
                    raise arm_error(400, "InvalidIdentityValues",
                                    f"Invalid value for the identities '{','.join(badvals)}'. The 'userAssignedIdentities' "
                                    "property keys should only be empty json objects, null or the resource exisiting "
                                    "property.")
                if tparsed is not None and not tparsed[1] and adds:
                    raise arm_error(400, "InvalidParameter",
                                    f"The 'userAssignedIdentities' property cannot be set when the identity type is "
                                    f"'{t}'.", target="identity.userAssignedIdentities")
                touched = adds + removes
                # linked authorization (assign/action on the identities)
                denied = [k for k in touched if (STATE.identities.get(k.lower()) or {}).get("assignDenied")]
                f = STATE.take_fault("arm-patch", "PATCH", path, ("linked-authorization-failed",),
                                     lambda f: not f.get("identities") or
                                     any(k.lower() in [i.lower() for i in f["identities"]] for k in touched))
                if f:
                    self.note["fault"] = f["id"]
                    listed = [i.lower() for i in f.get("identities") or []]
                    denied += [k for k in touched if (not listed or k.lower() in listed) and k not in denied]
                if denied:
                    raise arm_error(403, "LinkedAuthorizationFailed",
                                    f"The client '{caller.get('appid')}' with object id '{caller.get('oid')}' has "
                                    f"permission to perform action 'Microsoft.Compute/{rtype}/write' on scope "
                                    f"'{rec['id']}'; however, it does not have permission to perform action "
                                    "'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked "
                                    f"scope(s) '{','.join(denied)}' or the linked scope(s) are invalid.")
                f = STATE.take_fault("arm-patch", "PATCH", path, ("failed-identity-operation",),
                                     lambda f: not f.get("identities") or
                                     any(k.lower() in [i.lower() for i in f["identities"]] for k in touched))
                missing = [k for k in adds if k.lower() not in STATE.identities]
                if f:
                    self.note["fault"] = f["id"]
                    listed = [i.lower() for i in f.get("identities") or []]
                    missing += [k for k in touched if (not listed or k.lower() in listed) and k not in missing]
                if missing:
                    raise self.failed_identity_op(rec, "BadRequest", f"Resource '{','.join(missing)}' was not found.")
                new_uai = dict(rec["uai"])
                for k in adds:
                    new_uai.setdefault(k.lower(), STATE._stored_identity_id(k))
                for k in removes:
                    new_uai.pop(k.lower(), None)
                if tparsed is None:
                    want_sys = rec["system"] is not None
                else:
                    want_sys = tparsed[0]
                    if not tparsed[1]:
                        new_uai = {}
                    elif not new_uai:
                        raise arm_error(400, "MissingIdentityIds",
                                        "The identity ids must not be null or empty for 'UserAssigned' identity type.")
                cap = STATE.settings["arm"]["maxIdentitiesPerResource"]
                if cap is not None and len(new_uai) > int(cap):
                    raise self.failed_identity_op(rec, "BadRequest",
                                                  f"User Assigned Identities Number '{len(new_uai)}' exceed limit '{cap}'.")
                rec["uai"] = new_uai
                if want_sys and rec["system"] is None:
                    rec["system"] = new_principal()
                elif not want_sys:
                    rec["system"] = None
            if isinstance(body.get("tags"), dict):
                rec["tags"] = dict(body["tags"])
            self.note["patch"] = {"resource": rec["id"], "add": adds, "remove": removes,
                                  "type": self.note.get("type") or STATE.identity_type(rec)}
            lro_fail = STATE.take_fault("arm-patch", "PATCH", path, ("lro-failed",))
            return self.arm_start_lro(rec, snapshot, lro_fail, q)

    def failed_identity_op(self, rec, status_code, inner_message):
        inner = compact({"error": {"code": status_code, "message": inner_message}}).decode()
        return arm_error(400, "FailedIdentityOperation",
                         f"Identity operation for resource '{rec['id']}' failed with error 'Failed to perform resource "
                         f"identity operation. Status: '{status_code}'. Response: '{inner}'.'.")

    def arm_start_lro(self, rec, snapshot, lro_fail, q):
        lro = STATE.settings["arm"]["lro"]
        mode = lro.get("mode", "async")
        headers = dict(self.arm_headers)
        headers["x-ms-ratelimit-remaining-resource"] = ("Microsoft.Compute/PutVM3Min;239,Microsoft.Compute/PutVM30Min;1199"
                                                        if rec["kind"] == "vm" else
                                                        "Microsoft.Compute/VMScaleSetActionsAndUpdates3Min;59")
        if mode == "sync" and not lro_fail:
            rec["provisioningState"] = "Succeeded"
            raise Reply(200, arm_resource_body(rec), headers)
        op = guid()
        ra = int(lro.get("retryAfter", 1))
        STATE.operations[op] = {
            "id": op, "resource": rec["id"].lower(), "status": "InProgress", "startTime": time.time(),
            "endTime": None, "pollsLeft": int(lro.get("pollsUntilDone", 1)),
            "deadline": (time.time() + float(lro["durationSeconds"])) if lro.get("durationSeconds") else None,
            "snapshot": snapshot,
            "fail": lro_fail, "mode": mode, "subscriptionId": rec["subscriptionId"], "location": rec["location"],
            "retryAfter": ra}
        rec["provisioningState"] = "Updating"
        av = q.get("api-version")
        base = self.base_url()
        op_url = f"{base}/subscriptions/{rec['subscriptionId']}/providers/Microsoft.Compute/locations/{rec['location']}"
        headers["Retry-After"] = str(ra)
        headers["Location"] = f"{op_url}/operationResults/{op}?api-version={av}&monitor=true"
        if mode == "location":
            raise Reply(202, b"", headers)
        headers["Azure-AsyncOperation"] = f"{op_url}/operations/{op}?api-version={av}"
        status = int(lro.get("initialStatus", 200))
        if status == 202:
            raise Reply(202, b"", headers)
        raise Reply(status, arm_resource_body(rec), headers)

    def arm_progress_ops(self, only=None):
        now = time.time()
        for op in list(STATE.operations.values()):
            if op["status"] != "InProgress" or (only and op["id"] != only):
                continue
            time_left = op["deadline"] is not None and now < op["deadline"]
            if only:  # a poll: answer InProgress while polls or time remain
                if op["pollsLeft"] > 0 or time_left:
                    op["pollsLeft"] -= 1
                    continue
            elif op["deadline"] is None or time_left or op["pollsLeft"] > 0:
                continue  # a GET of the resource only completes time-based operations
            rec = STATE.resources.get(op["resource"])
            op["endTime"] = now
            if op["fail"]:
                op["status"] = "Failed"
                if rec:
                    rec["system"], rec["uai"], rec["tags"] = op["snapshot"]
                    rec["provisioningState"] = "Failed"
            elif rec:
                op["status"] = "Succeeded"
                if rec["provisioningState"] == "Updating":
                    rec["provisioningState"] = "Succeeded"
            else:
                op["status"] = "Succeeded"

    def arm_poll(self, m, q):
        if self.command != "GET":
            raise arm_error(405, "MethodNotAllowed", "The requested method is not allowed.")
        with LOCK:
            op = STATE.operations.get(m.group("op"))
            if op is None:
                raise arm_error(404, "NotFound", f"The operation '{m.group('op')}' was not found.")
            self.arm_progress_ops(only=op["id"])
            headers = dict(self.arm_headers)
            body = {"startTime": utc_iso(op["startTime"]), "status": op["status"], "name": op["id"]}
            if op["endTime"]:
                body["endTime"] = utc_iso(op["endTime"])
            if op["status"] == "Failed":
                f = op["fail"]
                body["error"] = {"code": f.get("code", "InternalExecutionError"),
                                 "message": f.get("message", "An internal execution error occurred.")}
            if m.group("kind").lower() == "operationresults":
                if op["status"] == "InProgress":
                    headers["Retry-After"] = str(op["retryAfter"])
                    headers["Location"] = self.base_url() + self.path
                    raise Reply(202, b"", headers)
                if op["status"] == "Failed":
                    raise Reply(400, {"error": body["error"]}, headers)
                rec = STATE.resources.get(op["resource"])
                raise Reply(200, arm_resource_body(rec) if rec else b"", headers)
            if op["status"] == "InProgress":
                headers["Retry-After"] = str(op["retryAfter"])
            raise Reply(200, body, headers)

    H.handle_arm = handle_arm
    H.arm_auth = arm_auth
    H.arm_check_scope = arm_check_scope
    H.arm_lookup = arm_lookup
    H.arm_get = arm_get
    H.arm_instance = arm_instance
    H.arm_patch = arm_patch
    H.failed_identity_op = failed_identity_op
    H.arm_start_lro = arm_start_lro
    H.arm_progress_ops = arm_progress_ops
    H.arm_poll = arm_poll


def arm_identity_block(rec):
    t = STATE.identity_type(rec)
    if t == "None":
        return None
    out = {"type": t}
    if rec["system"]:
        out["principalId"] = rec["system"]["principalId"]
        out["tenantId"] = STATE.settings["tenantId"]
    if rec["uai"]:
        out["userAssignedIdentities"] = {}
        for low, stored in rec["uai"].items():
            ident = STATE.identities.get(low)
            out["userAssignedIdentities"][stored] = {"principalId": ident["principalId"] if ident else None,
                                                     "clientId": ident["clientId"] if ident else None}
    return out


def arm_resource_body(rec):
    body = {"name": rec["name"], "id": rec["id"],
            "type": "Microsoft.Compute/virtualMachines" if rec["kind"] == "vm" else "Microsoft.Compute/virtualMachineScaleSets",
            "location": rec["location"]}
    if rec["tags"]:
        body["tags"] = rec["tags"]
    ident = arm_identity_block(rec)
    if ident:
        body["identity"] = ident
    if rec["kind"] == "vm":
        body["properties"] = {"vmId": rec["vmId"], "hardwareProfile": {"vmSize": rec["vmSize"]},
                              "storageProfile": {"osDisk": {"osType": "Linux", "name": rec["name"] + "_OsDisk"}},
                              "osProfile": {"computerName": rec["name"], "adminUsername": "azureuser"},
                              "provisioningState": rec["provisioningState"]}
    else:
        body["sku"] = {"name": rec["vmSize"], "tier": "Standard", "capacity": rec["capacity"]}
        body["properties"] = {"singlePlacementGroup": True, "upgradePolicy": {"mode": "Manual"},
                              "virtualMachineProfile": {"osProfile": {"computerNamePrefix": rec["name"],
                                                                      "adminUsername": "azureuser"}},
                              "provisioningState": rec["provisioningState"], "overprovision": False,
                              "uniqueId": rec["vmId"]}
    return body


arm_handlers(Handler)

# ==================================================================================================
# admin API
# ==================================================================================================


def admin_handlers(H):
    def handle_admin(self, path, query):
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        segs = [s for s in path.split("/") if s][1:]
        method = self.command
        try:
            data = json.loads(self.body) if self.body.strip() else {}
        except ValueError:
            raise Reply(400, {"error": "body is not JSON"})
        try:
            result = self.admin_route(method, segs, q, data)
        except (ValueError, KeyError, TypeError) as exc:
            raise Reply(400, {"error": str(exc)})
        if isinstance(result, Reply):
            raise result
        raise Reply(200, result if result is not None else {"ok": True})

    def admin_route(self, method, segs, q, data):
        key = segs[0] if segs else ""
        rest = segs[1:]
        signer = self.server.signer
        with LOCK:
            if key in ("", "health"):
                return {"ok": True, "version": VERSION}
            if key == "urls":
                return self.server.urls
            if key == "state":
                if method == "GET":
                    return state_dump()
                if method in ("POST", "PUT"):
                    if data.get("replace", method == "PUT"):
                        STATE.reset()
                    STATE.load(data)
                    return state_dump()
            if key == "reset" and method == "POST":
                STATE.reset()
                if self.server.initial_state:
                    STATE.load(self.server.initial_state)
                return {"ok": True}
            if key == "settings":
                if method == "GET":
                    return STATE.settings
                if method in ("PUT", "PATCH", "POST"):
                    deep_merge(STATE.settings, data)
                    return STATE.settings
            if key == "imds" and method in ("PUT", "POST", "PATCH"):
                target = STATE.settings["imds"]
                if data.get("listener"):
                    if "vm" in data:
                        STATE.settings["imds"]["listeners"][data["listener"]] = data["vm"]
                else:
                    if "vm" in data:
                        target["vm"] = data["vm"]
                for k in ("serveAnyIdentity", "xffStatus", "rateLimit", "tokenLifetimeSeconds"):
                    if k in data:
                        target[k] = data[k]
                return STATE.settings["imds"]
            if key == "imds" and method == "GET":
                return STATE.settings["imds"]
            if key == "tenants":
                if method == "POST":
                    return STATE.add_tenant(data)
                if method == "GET":
                    return [{"tenantId": STATE.settings["tenantId"], "domains": [], "default": True}] + \
                        list(STATE.tenants.values())
            if key == "identities":
                if method == "POST":
                    return STATE.add_identity(data)
                if method == "GET":
                    return list(STATE.identities.values())
                if method == "DELETE":
                    rid = q.get("resourceId") or data.get("resourceId")
                    if rid and STATE.identities.pop(rid.lower(), None):
                        return {"ok": True}
                    return Reply(404, {"error": "no such identity"})
            if key in ("service-principals", "sps"):
                if method == "POST":
                    return STATE.sp_view(STATE.add_sp(data))
                if method == "GET":
                    return [STATE.sp_view(s) for s in STATE.sps.values()]
                if method == "DELETE":
                    cid = (q.get("clientId") or data.get("clientId") or "").lower()
                    gone = [k for k in STATE.sps if k[1] == cid]
                    for k in gone:
                        del STATE.sps[k]
                    return {"ok": True, "deleted": len(gone)} if gone else Reply(404, {"error": "no such sp"})
            if key in ("vms", "vmss"):
                kind = "vm" if key == "vms" else "vmss"
                if method == "POST":
                    return STATE.resource_view(STATE.add_resource(kind, data))
                if method == "GET":
                    return [STATE.resource_view(r) for r in STATE.resources.values() if r["kind"] == kind]
            if key == "resource":
                ref = q.get("id") or data.get("id")
                rec, _ = STATE.find_resource(ref)
                if rec is None:
                    return Reply(404, {"error": f"no VM/VMSS matches '{ref}'"})
                if method == "GET":
                    return STATE.resource_view(rec)
                if method == "DELETE":
                    del STATE.resources[rec["id"].lower()]
                    return {"ok": True}
                if method in ("PATCH", "PUT", "POST"):
                    if "provisioningState" in data:
                        rec["provisioningState"] = data["provisioningState"]
                    if "systemAssigned" in data:
                        if data["systemAssigned"] and rec["system"] is None:
                            rec["system"] = new_principal()
                        elif not data["systemAssigned"]:
                            rec["system"] = None
                    if "userAssignedIdentities" in data:
                        rec["uai"] = {i.lower(): STATE._stored_identity_id(i) for i in data["userAssignedIdentities"]}
                    for i in data.get("addIdentities", []):
                        rec["uai"][i.lower()] = STATE._stored_identity_id(i)
                    for i in data.get("removeIdentities", []):
                        rec["uai"].pop(i.lower(), None)
                    if "tags" in data:
                        rec["tags"] = dict(data["tags"])
                    if "capacity" in data:
                        rec["capacity"] = int(data["capacity"])
                    return STATE.resource_view(rec)
            if key == "faults":
                if method == "POST":
                    return STATE.add_fault(data)
                if method == "GET":
                    return STATE.faults
                if method == "DELETE":
                    if rest:
                        before = len(STATE.faults)
                        STATE.faults[:] = [f for f in STATE.faults if f["id"] != rest[0]]
                        return {"ok": True, "deleted": before - len(STATE.faults)}
                    n = len(STATE.faults)
                    STATE.faults.clear()
                    return {"ok": True, "deleted": n}
            if key == "counters":
                if method == "GET":
                    return copy.deepcopy(STATE.counters)
                if method == "DELETE" or (method == "POST" and rest == ["reset"]):
                    STATE.counters.clear()
                    return {"ok": True}
            if key == "requests":
                if method == "GET":
                    since = int(q.get("since", 0))
                    out = [e for e in STATE.log if e["seq"] > since and
                           (not q.get("class") or e["class"] == q["class"] or e["class"].startswith(q["class"] + "-"))]
                    return {"entries": out, "last": STATE.log_seq}
                if method == "DELETE":
                    STATE.log.clear()
                    return {"ok": True}
            if key == "operations" and method == "GET":
                return [{k: v for k, v in op.items() if k not in ("snapshot", "fail")} for op in STATE.operations.values()]
            if key == "signing-key" and method == "GET":
                return {"certificate": signer.cert_pem(), "jwks": signer.jwks()}
            if key == "tokens" and method == "POST":
                now = int(time.time())
                life = int(data.get("expiresIn", 3600))
                claims = token_claims(aud=data.get("aud", "https://management.azure.com/"),
                                      tid=data.get("tid", STATE.settings["tenantId"]),
                                      oid=data.get("oid", guid()), appid=data.get("appid", guid()),
                                      now=now, life=life, acr="1")
                if "nbf" in data:
                    claims["nbf"] = int(data["nbf"])
                claims.update(data.get("claims", {}))
                return {"access_token": signer.sign(claims), "claims": claims}
        return Reply(404, {"error": f"no admin route {method} /admin/{'/'.join(segs)}"})

    H.handle_admin = handle_admin
    H.admin_route = admin_route


def state_dump():
    return {"settings": STATE.settings, "tenants": list(STATE.tenants.values()),
            "identities": list(STATE.identities.values()),
            "servicePrincipals": [STATE.sp_view(s) for s in STATE.sps.values()],
            "vms": [STATE.resource_view(r) for r in STATE.resources.values() if r["kind"] == "vm"],
            "vmss": [STATE.resource_view(r) for r in STATE.resources.values() if r["kind"] == "vmss"],
            "faults": STATE.faults}


admin_handlers(Handler)

# ==================================================================================================
# listeners and main
# ==================================================================================================


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, family, roles, name, opts, signer, tls_context, imds_vm, initial_state):
        self.address_family = family
        self.roles = roles
        self.name = name
        self.opts = opts
        self.signer = signer
        self.tls_context = tls_context
        self.imds_vm = imds_vm
        self.initial_state = initial_state
        self.urls = {}
        super().__init__(addr, Handler)


CLONE_NEWNET = 0x40000000


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def parse_listen(spec, role, opts):
    """HOST:PORT[,tls][,tls-cert=F][,tls-key=F][,netns=NAME][,vm=REF][,name=N]"""
    parts = spec.split(",")
    addr = parts[0]
    o = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        o[k.strip()] = v.strip() if v else True
    if addr.startswith("["):
        host, _, port = addr[1:].partition("]:")
    else:
        host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"bad listen address '{addr}' (want HOST:PORT)")
    cert = o.get("tls-cert") or (getattr(opts, f"{role}_tls_cert", None) if o.get("tls") else None) \
        or (opts.tls_cert if o.get("tls") else None)
    key = o.get("tls-key") or (getattr(opts, f"{role}_tls_key", None) if o.get("tls") else None) \
        or (opts.tls_key if o.get("tls") else None)
    if o.get("tls") and not cert:
        raise SystemExit(f"listener {spec}: tls requested but no certificate (--tls-cert / tls-cert=)")
    return {"host": host, "port": int(port), "cert": cert, "key": key or cert, "netns": o.get("netns"),
            "vm": o.get("vm"), "name": o.get("name")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    help_l = ("HOST:PORT[,tls][,tls-cert=FILE,tls-key=FILE][,netns=NAME][,vm=REF][,name=NAME]; repeatable; "
              "port 0 = any free port")
    ap.add_argument("--listen", action="append", default=[], help="serve every role by path. " + help_l)
    for role in ("imds", "aad", "arm", "admin"):
        ap.add_argument(f"--{role}-listen", action="append", default=[], help=f"{role} only. " + help_l)
        ap.add_argument(f"--{role}-tls-cert", help=f"default TLS certificate for {role} listeners marked ',tls'")
        ap.add_argument(f"--{role}-tls-key")
    ap.add_argument("--tls-cert", help="default TLS certificate (PEM) for listeners marked ',tls'")
    ap.add_argument("--tls-key", help="key for --tls-cert (defaults to the same file)")
    ap.add_argument("--imds-vm", help="VM/VMSS this IMDS belongs to: ARM id, vm/NAME, vmss/NAME or NAME")
    ap.add_argument("--state", help="JSON file loaded at start (same shape as POST /admin/state)")
    ap.add_argument("--tenant-id", help="default tenant id")
    ap.add_argument("--subscription-id", help="default subscription id")
    ap.add_argument("--signing-key", help="PEM RSA private key for issued tokens (default: generated)")
    ap.add_argument("--no-arm-auth", action="store_true", help="do not require a bearer token on ARM")
    ap.add_argument("--log-admin", action="store_true", help="also record admin calls in the request log")
    ap.add_argument("--verbose", "-v", action="store_true", help="log each request on stderr")
    opts = ap.parse_args(argv)

    listeners = [(spec, {"imds", "aad", "arm", "admin"}, "all") for spec in opts.listen]
    for role in ("imds", "aad", "arm", "admin"):
        listeners += [(spec, {role}, role) for spec in getattr(opts, f"{role}_listen")]
    if not listeners:
        ap.error("give at least one --listen / --<role>-listen")

    initial = None
    if opts.state:
        with open(opts.state, encoding="utf-8") as fh:
            initial = json.load(fh)
    if opts.tenant_id:
        DEFAULT_SETTINGS["tenantId"] = opts.tenant_id
    if opts.subscription_id:
        DEFAULT_SETTINGS["subscriptionId"] = opts.subscription_id
    if opts.imds_vm:
        DEFAULT_SETTINGS["imds"]["vm"] = opts.imds_vm
    if opts.no_arm_auth:
        DEFAULT_SETTINGS["arm"]["requireAuth"] = False
    STATE.reset()
    if initial:
        STATE.load(initial)

    key_pem = None
    if opts.signing_key:
        with open(opts.signing_key, "rb") as fh:
            key_pem = fh.read()
    signer = Signer(key_pem)

    servers = []
    urls = {"listeners": []}
    ranks = {}
    for spec, roles, role_name in listeners:
        lp = parse_listen(spec, role_name if role_name != "all" else "x", opts)
        ctx = None
        if lp["cert"]:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(lp["cert"], lp["key"])
        family = socket.AF_INET6 if ":" in lp["host"] else socket.AF_INET
        name = lp["name"] or f"{role_name}{len(servers)}"
        orig = None
        try:
            if lp["netns"]:
                orig = os.open("/proc/self/ns/net", os.O_RDONLY)
                nsfd = os.open(lp["netns"] if lp["netns"].startswith("/") else f"/var/run/netns/{lp['netns']}",
                               os.O_RDONLY)
                try:
                    _setns(nsfd)
                finally:
                    os.close(nsfd)
            srv = Server((lp["host"], lp["port"]), family, roles, name, opts, signer, ctx, lp["vm"], initial)
        finally:
            if orig is not None:
                _setns(orig)
                os.close(orig)
        host, port = srv.server_address[:2]
        scheme = "https" if ctx else "http"
        url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
        entry = {"name": name, "url": url, "roles": sorted(roles)}
        if lp["netns"]:
            entry["netns"] = lp["netns"]
        urls["listeners"].append(entry)
        rank = (0 if scheme == "http" else 2) + (0 if role_name != "all" else 1)
        for r in sorted(roles):
            # short key per role: dedicated plain > shared plain > dedicated TLS > shared TLS
            if r not in ranks or rank < ranks[r]:
                urls[r], ranks[r] = url, rank
            if scheme == "https" and f"{r}_tls" not in urls:
                urls[f"{r}_tls"] = url
        servers.append(srv)
    for srv in servers:
        srv.urls = urls

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = []
    for srv in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        threads.append(t)
    sys.stdout.write("READY " + json.dumps(urls) + "\n")
    sys.stdout.flush()
    while not stop.is_set():
        stop.wait(0.5)
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
