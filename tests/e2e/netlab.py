"""A node and its pods on one machine, with network namespaces (needs root; Python stdlib only).

    from netlab import Lab
    with Lab(pods=["a", "b"]) as lab:          # namespaces <prefix>-<pid>-<rand>-{node,a,b}
        lab.pods["a"].ip                         # 10.244.0.11
        lab.run(lab.pods["a"].netns, ["curl", "-s", "http://169.254.169.254/..."])
        lab.forward_into_node(6443)              # host 127.0.0.1:6443 reachable as 127.0.0.1:6443 in the node
        lab.install_redirect(2580)               # the aad-metadata DNAT chain, as NMI writes it
    # on exit: processes started by the lab, then every process left in its namespaces, are ended and
    # the namespaces deleted (their veths and iptables rules go with them)

Topology (routed, like Calico): each pod namespace has `eth0` = 10.244.0.(11+i)/32 with a default route
via 10.244.0.1; the node end of the pair (`vp<i>`) carries 10.244.0.1/32 and a /32 route to the pod.
The node has 169.254.169.254/32 on its loopback (so an IMDS listener can bind there),
route_localnet=1 on the pod-facing veths (needed for a PREROUTING DNAT to 127.0.0.1; kube-proxy sets
it on real nodes) and, like kube-proxy, a nat chain KUBE-SERVICES (one no-op conntrack rule) jumped to from
PREROUTING and OUTPUT, so connections are tracked from the start as on a real node. Nothing is created or changed in the host's own namespace: the host's services
(kube-apiserver, emulator admin API) are made reachable inside the node namespace by a TCP
forwarder whose listening socket lives in the node namespace (forward_into_node).

Command line (for shell users, e.g. tools/quickstart):
    netlab.py up [--pods a,b] [--forward PORT]... [--no-route-localnet]
        prints one line `READY {"node": NS, "pods": {name: {"netns": NS, "ip": IP}}}` and keeps
        the lab (and its forwarders) until SIGTERM/SIGINT, then removes it
    netlab.py sweep     removes namespaces left by labs whose process is gone
"""

import argparse
import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
DEFAULT_PREFIX = "aadlab"
METADATA_IP = "169.254.169.254"
CHAIN = "aad-metadata"

_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


def _check(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name):
    """Runs the body with the calling thread in network namespace `name` (sockets created inside stay
    there). Serialised: only one thread switches at a time."""
    with _setns_lock:
        orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            yield
        finally:
            _setns(orig)
            os.close(orig)
            os.close(target)


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when the process that started it dies."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def list_netns():
    out = _check(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def delete_netns(name):
    """Ends every process in the namespace, then deletes it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def sweep(prefix=DEFAULT_PREFIX):
    """Removes the namespaces of labs whose owning process has gone (aborted runs). Returns their names."""
    gone = []
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-[0-9a-f]+-")
    for name in list_netns():
        m = pattern.match(name)
        if m and not _pid_alive(int(m.group(1))):
            delete_netns(name)
            gone.append(name)
    return gone


class _Forwarder:
    """Accepts TCP connections on a socket inside a namespace and relays each to an address reachable
    from this process's own namespace."""

    def __init__(self, netns, listen, target):
        with in_netns(netns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(listen)
            self.sock.listen(64)
        self.listen = self.sock.getsockname()
        self.target = target
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join()
        client.close()
        upstream.close()

    def close(self):
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class PodNet:
    def __init__(self, name, netns, ip, node_if):
        self.name, self.netns, self.ip, self.node_if = name, netns, ip, node_if

    def __repr__(self):
        return f"PodNet({self.name}, {self.netns}, {self.ip})"


class Lab:
    """One node namespace and its pod namespaces. Use as a context manager, or call start()/close()."""

    def __init__(self, pods=("a", "b"), prefix=DEFAULT_PREFIX, route_localnet=True, node_gateway="10.244.0.1"):
        self.prefix = prefix
        self.run_id = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.node = f"{self.run_id}-node"
        self.gateway = node_gateway
        self.route_localnet = route_localnet
        self.pod_names = list(pods)
        self.pods = {}
        self.created = []
        self.forwarders = []
        self.procs = []

    # ---- lifecycle
    def start(self):
        if os.geteuid() != 0:
            raise PermissionError("the network lab needs root (network namespaces, veths, iptables)")
        sweep(self.prefix)
        try:
            self._add_netns(self.node)
            self.ip(self.node, "link", "set", "lo", "up")
            self.ip(self.node, "addr", "add", f"{METADATA_IP}/32", "dev", "lo")
            self._like_kube_proxy()
            for name in self.pod_names:
                self.add_pod(name)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream:
                    stream.close()
        self.procs.clear()
        for f in self.forwarders:
            f.close()
        self.forwarders.clear()
        for ns in reversed(self.created):
            delete_netns(ns)
        self.created.clear()

    def _add_netns(self, name):
        _check(["ip", "netns", "add", name])
        self.created.append(name)

    def _like_kube_proxy(self):
        """On a real node kube-proxy's rules (conntrack matches, DNAT, MASQUERADE) keep connection
        tracking active before NMI starts. A namespace tracks nothing until some rule needs it (an empty
        nat chain does not), and NMI's first DNAT rule would then cut established connections that on a
        real node survive (and that --enable-conntrack-deletion exists for)."""
        self.iptables("-t", "nat", "-N", "KUBE-SERVICES")
        self.iptables("-t", "nat", "-A", "KUBE-SERVICES", "-m", "conntrack", "--ctstate", "INVALID", "-j", "RETURN")
        for chain in ("PREROUTING", "OUTPUT"):
            self.iptables("-t", "nat", "-A", chain, "-m", "comment", "--comment", "kubernetes service portals",
                          "-j", "KUBE-SERVICES")

    # ---- topology
    def add_pod(self, name):
        i = len(self.pods)
        netns = f"{self.run_id}-{name}"
        ip = f"10.244.0.{11 + i}"
        node_if = f"vp{i}"
        self._add_netns(netns)
        self.ip(self.node, "link", "add", node_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
        self.ip(self.node, "addr", "add", f"{self.gateway}/32", "dev", node_if)
        self.ip(self.node, "link", "set", node_if, "up")
        self.ip(self.node, "route", "add", f"{ip}/32", "dev", node_if)
        if self.route_localnet:
            self.sysctl(self.node, f"net.ipv4.conf.{node_if}.route_localnet", "1")
        self.ip(netns, "link", "set", "lo", "up")
        self.ip(netns, "addr", "add", f"{ip}/32", "dev", "eth0")
        self.ip(netns, "link", "set", "eth0", "up")
        self.ip(netns, "route", "add", self.gateway, "dev", "eth0")
        self.ip(netns, "route", "add", "default", "via", self.gateway)
        self.pods[name] = PodNet(name, netns, ip, node_if)
        return self.pods[name]

    def forward_into_node(self, port, host="127.0.0.1", netns=None):
        """Makes host:port (this process's namespace) reachable at the same address inside the node
        (or `netns`), so URLs and TLS names (e.g. a kubeconfig's https://127.0.0.1:PORT) stay valid."""
        f = _Forwarder(netns or self.node, (host, port), (host, port))
        self.forwarders.append(f)
        return f

    # ---- commands
    @staticmethod
    def ip(netns, *args):
        return _check(["ip", "-n", netns, *args])

    @staticmethod
    def sysctl(netns, key, value):
        """Writes a per-namespace sysctl (net.*) through /proc/sys (no procps needed)."""
        path = "/proc/sys/" + key.replace(".", "/")
        return _check(["ip", "netns", "exec", netns, "sh", "-c", f'echo "$1" > "$2"', "sysctl", str(value), path])

    @staticmethod
    def run(netns, argv, check=False, timeout=120, **kw):
        """subprocess.run inside netns (text mode, output captured unless given)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", netns, *argv], check=check, timeout=timeout, **kw)

    def popen(self, netns, argv, **kw):
        """A long-running process inside netns (None: this namespace); ended by close(), and by the
        kernel if this process dies first."""
        prefix = ["ip", "netns", "exec", netns] if netns else []
        p = subprocess.Popen(prefix + list(argv), preexec_fn=die_with_parent, **kw)
        self.procs.append(p)
        return p

    def iptables(self, *args, check=True):
        r = self.run(self.node, ["iptables", "-w", "5", *args])
        if check and r.returncode != 0:
            raise RuntimeError(f"iptables {' '.join(args)}: {r.stderr.strip()}")
        return r

    def nat_rules(self, chain=None):
        """`iptables -t nat -S [chain]` in the node as a list of lines ([] when the chain is absent)."""
        r = self.iptables("-t", "nat", "-S", *([chain] if chain else []), check=False)
        return r.stdout.splitlines() if r.returncode == 0 else []

    def install_redirect(self, target_port, target_ip="127.0.0.1", metadata_port=80):
        """The redirect NMI installs (original-behaviour.md 3.15), for stand-in tests without NMI.
        Replaces any existing one."""
        self.remove_redirect()
        self.iptables("-t", "nat", "-N", CHAIN)
        self.iptables("-t", "nat", "-A", CHAIN, "!", "-s", "127.0.0.1/32", "-d", f"{METADATA_IP}/32", "-p", "tcp",
                      "-m", "tcp", "--dport", str(metadata_port), "-j", "DNAT",
                      "--to-destination", f"{target_ip}:{target_port}")
        self.iptables("-t", "nat", "-A", CHAIN, "-j", "RETURN")
        self.iptables("-t", "nat", "-I", "PREROUTING", "1", "-j", CHAIN)

    def remove_redirect(self):
        self.iptables("-t", "nat", "-D", "PREROUTING", "-j", CHAIN, check=False)
        self.iptables("-t", "nat", "-F", CHAIN, check=False)
        self.iptables("-t", "nat", "-X", CHAIN, check=False)

    def describe(self):
        return {"node": self.node, "gateway": self.gateway,
                "pods": {n: {"netns": p.netns, "ip": p.ip} for n, p in self.pods.items()}}


def _main(argv=None):
    ap = argparse.ArgumentParser(description="network lab: a node namespace and pod namespaces")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="create a lab, print READY JSON, keep it until SIGTERM/SIGINT")
    up.add_argument("--pods", default="a,b")
    up.add_argument("--prefix", default=DEFAULT_PREFIX)
    up.add_argument("--forward", type=int, action="append", default=[],
                    help="host 127.0.0.1:PORT made reachable at 127.0.0.1:PORT in the node")
    up.add_argument("--no-route-localnet", action="store_true")
    sw = sub.add_parser("sweep", help="remove namespaces of labs whose process is gone")
    sw.add_argument("--prefix", default=DEFAULT_PREFIX)
    opts = ap.parse_args(argv)
    if opts.cmd == "sweep":
        for name in sweep(opts.prefix):
            print(f"removed {name}")
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Lab(pods=[p for p in opts.pods.split(",") if p], prefix=opts.prefix,
             route_localnet=not opts.no_route_localnet) as lab:
        for port in opts.forward:
            lab.forward_into_node(port)
        print("READY " + json.dumps(lab.describe()), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
