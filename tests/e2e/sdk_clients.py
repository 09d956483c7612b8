"""The real Azure SDK clients, run inside a pod's network namespace, asking for a managed-identity token
at the default IMDS address (169.254.169.254:80) exactly as an application in a pod would.

Each function returns {"ok": True, "token": JWT, "expires_on": int} or {"ok": False, "error": text}.
Interpreters and packages come from tools/test (tools/lib/deps.sh):
  AAD_PYTHON     a Python with azure-identity (ensure_python_env)
  AAD_NODE_PATH  node_modules with @azure/identity (ensure_node_sdks)
  AAD_AZ         the Azure CLI's `az` (ensure_azure_cli)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

# Variables that would send an SDK somewhere other than 169.254.169.254 (or make it pick another source).
_STRIP = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
          "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
          "AZURE_FEDERATED_TOKEN_FILE", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
          "NO_PROXY", "REQUESTS_CA_BUNDLE", "AZURE_CONFIG_DIR")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in _STRIP}
    env.update(extra)
    return env


def python_sdk():
    return os.environ.get("AAD_PYTHON") or os.environ.get("EMULATOR_SDK_PYTHON") or sys.executable


def node_path():
    return os.environ.get("AAD_NODE_PATH") or os.environ.get("EMULATOR_SDK_NODE_PATH")


def az_cli():
    return os.environ.get("AAD_AZ") or shutil.which("az")


def _in_netns(netns, argv, env, timeout):
    r = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, env=env,
                       timeout=timeout)
    return r


def _parse(r, who):
    line = next((l for l in reversed(r.stdout.splitlines()) if l.startswith("{")), None)
    if line is None:
        return {"ok": False, "error": f"{who} printed no result (exit {r.returncode}): {r.stderr[-2000:]}"}
    return json.loads(line)


PY_SCRIPT = r"""
import json, sys
from azure.identity import ManagedIdentityCredential
args = json.loads(sys.argv[1])
kw = {}
if args.get("client_id"): kw["client_id"] = args["client_id"]
if args.get("resource_id"): kw["identity_config"] = {"resource_id": args["resource_id"]}
try:
    t = ManagedIdentityCredential(**kw).get_token(args["scope"])
    print(json.dumps({"ok": True, "token": t.token, "expires_on": t.expires_on}))
except Exception as e:
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
"""


def python_token(netns, scope, client_id=None, resource_id=None, timeout=90):
    """azure-identity ManagedIdentityCredential(client_id=...).get_token(scope)."""
    args = json.dumps({"scope": scope, "client_id": client_id, "resource_id": resource_id})
    return _parse(_in_netns(netns, [python_sdk(), "-c", PY_SCRIPT, args], clean_env(), timeout), "python")


JS_SCRIPT = r"""
const { ManagedIdentityCredential } = require("@azure/identity");
const args = JSON.parse(process.argv[1]);
const opts = {};
if (args.client_id) opts.clientId = args.client_id;
if (args.resource_id) opts.resourceId = args.resource_id;
new ManagedIdentityCredential(opts).getToken(args.scope).then(
  (t) => console.log(JSON.stringify({ ok: true, token: t.token, expires_on: Math.floor(t.expiresOnTimestamp / 1000) })),
  (e) => console.log(JSON.stringify({ ok: false, error: `${e.name}: ${e.message}` })));
"""


def js_token(netns, scope, client_id=None, resource_id=None, timeout=90):
    """@azure/identity ManagedIdentityCredential({clientId}).getToken(scope)."""
    args = json.dumps({"scope": scope, "client_id": client_id, "resource_id": resource_id})
    env = clean_env(NODE_PATH=node_path() or "")
    return _parse(_in_netns(netns, ["node", "-e", JS_SCRIPT, args], env, timeout), "node")


def az_token(netns, resource, client_id=None, arm_url=None, ca_file=None, timeout=180):
    """`az login --identity [--client-id X] --allow-no-subscriptions`, then
    `az account get-access-token --resource R`, in a fresh AZURE_CONFIG_DIR.

    `az login` lists subscriptions through ARM right after getting its token (also with
    --allow-no-subscriptions), so with `arm_url` (the emulator's ARM, reachable from the pod; its CA in
    `ca_file`) a cloud whose resource manager is that URL is registered and selected first."""
    az = az_cli()
    if not az:
        return {"ok": False, "error": "Azure CLI not installed (tools/lib/deps.sh ensure_azure_cli)"}
    with tempfile.TemporaryDirectory(prefix="e2e-az-") as cfg:
        env = clean_env(AZURE_CONFIG_DIR=cfg, AZURE_CORE_COLLECT_TELEMETRY="false", AZURE_CORE_NO_COLOR="true",
                        AZURE_CORE_ONLY_SHOW_ERRORS="true")
        if ca_file:
            env["REQUESTS_CA_BUNDLE"] = ca_file
        steps = []
        if arm_url:
            steps += [("cloud register", ["cloud", "register", "--name", "E2E", "--skip-endpoint-discovery",
                                          "--endpoint-resource-manager", arm_url.rstrip("/") + "/",
                                          "--endpoint-active-directory", "https://login.microsoftonline.com",
                                          "--endpoint-active-directory-resource-id",
                                          "https://management.core.windows.net/"]),
                      ("cloud set", ["cloud", "set", "--name", "E2E"])]
        login = ["login", "--identity", "--allow-no-subscriptions", "--output", "json"]
        if client_id:
            login += ["--client-id", client_id]
        steps += [("login", login),
                  ("get-access-token", ["account", "get-access-token", "--resource", resource, "--output", "json"])]
        out = {}
        for stage, args in steps:
            r = _in_netns(netns, [az, *args], env, timeout)
            if r.returncode != 0:
                return {"ok": False, "stage": stage, "error": f"az {' '.join(args[:2])}: {r.stderr.strip()[-2000:]}"}
            out[stage] = r.stdout
        doc = json.loads(out["get-access-token"])
        return {"ok": True, "token": doc["accessToken"], "expires_on": int(doc.get("expires_on") or 0),
                "login": json.loads(out["login"])}
