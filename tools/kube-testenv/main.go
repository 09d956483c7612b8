// Command kube-testenv runs a real kube-apiserver (k8s.io/kubernetes) together
// with an embedded etcd (go.etcd.io/etcd/server/v3/embed) in one process, on
// 127.0.0.1, for integration tests. It is built from Go modules only (see
// go.mod); nothing is downloaded at run time.
//
// Usage:
//
//	kube-testenv [--dir DIR] [--keep] [--kubeconfig PATH] [--api-port N]
//	             [--etcd-compaction-interval D] [--watch-parent] [-- EXTRA-APISERVER-FLAGS...]
//
// Once /readyz is OK and the "default" namespace exists, it writes an admin
// kubeconfig and prints "READY <absolute kubeconfig path>" on stdout.
// SIGTERM/SIGINT stop the apiserver, then etcd, and remove the temporary data
// directory (a directory given with --dir is kept; restarting on it reuses the
// etcd data, the credentials and, when free, the previous ports).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "time/tzdata" // as upstream kube-apiserver: for CronJob time zones

	"go.etcd.io/etcd/server/v3/embed"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// Set with -ldflags -X by tools/kube-testenv/build.
var kubeVersion = "unknown"

type options struct {
	dir                    string
	keep                   bool
	kubeconfig             string
	apiPort                int
	etcdPort               int
	etcdCompactionInterval string
	readyTimeout           time.Duration
	watchParent            bool
	verbosity              int
	extra                  []string
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kube-testenv: "+format+"\n", args...)
}

func main() {
	os.Exit(run())
}

func parseFlags() (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("kube-testenv", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", "", "data directory (etcd data, certificates, kubeconfig). Kept on exit; reused if it already holds data. Default: a new temporary directory, removed on exit unless --keep")
	fs.BoolVar(&o.keep, "keep", false, "do not remove the temporary data directory on exit")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (default DIR/kubeconfig)")
	fs.IntVar(&o.apiPort, "api-port", 0, "kube-apiserver secure port on 127.0.0.1 (0: the previous one for a reused --dir if free, else a free one)")
	fs.IntVar(&o.etcdPort, "etcd-port", 0, "etcd client port on 127.0.0.1 (0: pick)")
	fs.StringVar(&o.etcdCompactionInterval, "etcd-compaction-interval", "", "kube-apiserver --etcd-compaction-interval (upstream default 5m; e.g. 2s makes old resourceVersions expire quickly, to test 410 Gone)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 150*time.Second, "give up if not ready after this long")
	fs.BoolVar(&o.watchParent, "watch-parent", false, "shut down when the parent process goes away (use from test fixtures)")
	fs.IntVar(&o.verbosity, "v", 0, "kube-apiserver log verbosity (logs go to stderr)")
	version := fs.Bool("version", false, "print the Kubernetes version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if *version {
		fmt.Println(kubeVersion)
		os.Exit(0)
	}
	o.extra = fs.Args()
	return o, nil
}

func run() int {
	o, err := parseFlags()
	if err != nil {
		return 2
	}
	ppid := os.Getppid()

	removeDir := false
	if o.dir == "" {
		d, err := os.MkdirTemp("", "kube-testenv-")
		if err != nil {
			logf("%v", err)
			return 1
		}
		o.dir = d
		removeDir = !o.keep
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		logf("%v", err)
		return 1
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		logf("%v", err)
		return 1
	}
	if o.kubeconfig == "" {
		o.kubeconfig = filepath.Join(o.dir, "kubeconfig")
	}
	if o.kubeconfig, err = filepath.Abs(o.kubeconfig); err != nil {
		logf("%v", err)
		return 1
	}
	removeKubeconfig := removeDir && !strings.HasPrefix(o.kubeconfig, o.dir+string(os.PathSeparator))
	cleanup := func() {
		if removeKubeconfig {
			os.Remove(o.kubeconfig)
		}
		if removeDir {
			if err := os.RemoveAll(o.dir); err != nil {
				logf("removing %s: %v", o.dir, err)
			}
		}
	}

	creds, err := ensureCredentials(o.dir)
	if err != nil {
		logf("credentials: %v", err)
		cleanup()
		return 1
	}

	prev := readPorts(o.dir)
	etcdSrv, etcdURL, err := startEtcd(o, prev)
	if err != nil {
		logf("etcd: %v", err)
		cleanup()
		return 1
	}

	apiPort := o.apiPort
	var hold net.Listener
	if apiPort == 0 {
		if p := prev["api"]; p != 0 {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				hold, apiPort = l, p
			}
		}
		if hold == nil {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				logf("%v", err)
				etcdSrv.Close()
				cleanup()
				return 1
			}
			hold, apiPort = l, l.Addr().(*net.TCPAddr).Port
		}
	}
	writePorts(o.dir, map[string]int{"api": apiPort, "etcd": portOf(etcdURL), "etcd-peer": portOf(etcdSrv.Config().ListenPeerUrls[0].Host)})
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(o.dir, "apiserver-certs"),
		"--tls-cert-file=" + creds.servingCert,
		"--tls-private-key-file=" + creds.servingKey,
		"--client-ca-file=" + creds.caCert,
		"--token-auth-file=" + creds.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + creds.saKey,
		"--service-account-signing-key-file=" + creds.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=true",
		"--profiling=false",
		"--v=" + strconv.Itoa(o.verbosity),
	}
	if o.etcdCompactionInterval != "" {
		args = append(args, "--etcd-compaction-interval="+o.etcdCompactionInterval)
	}
	args = append(args, o.extra...)

	// The apiserver installs its own SIGTERM/SIGINT handler (one per process).
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)

	readyCtx, cancelReady := context.WithCancel(context.Background())
	defer cancelReady()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := waitReady(readyCtx, o, server, creds); err != nil {
			if readyCtx.Err() == nil {
				logf("not ready: %v; shutting down", err)
				genericapiserver.RequestShutdown()
			}
			return
		}
		if err := writeKubeconfig(o.kubeconfig, server, creds); err != nil {
			logf("kubeconfig: %v; shutting down", err)
			genericapiserver.RequestShutdown()
			return
		}
		w := bufio.NewWriter(os.Stdout)
		fmt.Fprintf(w, "READY %s\n", o.kubeconfig)
		w.Flush()
		os.Stdout.Sync()
	}()
	if o.watchParent {
		go func() {
			for {
				time.Sleep(500 * time.Millisecond)
				if os.Getppid() != ppid {
					logf("parent process %d went away; shutting down", ppid)
					genericapiserver.RequestShutdown()
					return
				}
			}
		}()
	}
	go func() {
		if err, ok := <-etcdSrv.Err(); ok && err != nil {
			logf("etcd failed: %v; shutting down", err)
			genericapiserver.RequestShutdown()
		}
	}()

	if hold != nil {
		hold.Close()
	}
	code := cli.Run(cmd)
	cancelReady()
	wg.Wait()
	etcdSrv.Close()
	cleanup()
	logf("stopped (exit %d)", code)
	return code
}

func portOf(hostport string) int {
	if u := strings.TrimPrefix(hostport, "http://"); u != hostport {
		hostport = u
	}
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func readPorts(dir string) map[string]int {
	m := map[string]int{}
	b, err := os.ReadFile(filepath.Join(dir, "ports"))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(v); err == nil {
			m[k] = n
		}
	}
	return m
}

func writePorts(dir string, m map[string]int) {
	var sb strings.Builder
	for _, k := range []string{"api", "etcd", "etcd-peer"} {
		fmt.Fprintf(&sb, "%s=%d\n", k, m[k])
	}
	_ = os.WriteFile(filepath.Join(dir, "ports"), []byte(sb.String()), 0o600)
}

// freePort returns want if it can be bound on 127.0.0.1, else a free port.
func freePort(want int) (int, error) {
	if want != 0 {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", want)); err == nil {
			l.Close()
			return want, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(o *options, prev map[string]int) (*embed.Etcd, string, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		wantClient, wantPeer := o.etcdPort, 0
		if attempt == 0 {
			if wantClient == 0 {
				wantClient = prev["etcd"]
			}
			wantPeer = prev["etcd-peer"]
		}
		cport, err := freePort(wantClient)
		if err != nil {
			return nil, "", err
		}
		pport, err := freePort(wantPeer)
		if err != nil {
			return nil, "", err
		}
		if pport == cport {
			continue
		}
		e, err := startEtcdOnce(o.dir, cport, pport)
		if err == nil {
			return e, fmt.Sprintf("http://127.0.0.1:%d", cport), nil
		}
		lastErr = err
		logf("etcd start attempt %d failed: %v", attempt+1, err)
		if o.etcdPort != 0 {
			break
		}
	}
	return nil, "", lastErr
}

func startEtcdOnce(dir string, cport, pport int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kube-testenv"
	cfg.Dir = filepath.Join(dir, "etcd")
	cu := mustURL(fmt.Sprintf("http://127.0.0.1:%d", cport))
	pu := mustURL(fmt.Sprintf("http://127.0.0.1:%d", pport))
	cfg.ListenClientUrls = []urlT{cu}
	cfg.AdvertiseClientUrls = []urlT{cu}
	cfg.ListenPeerUrls = []urlT{pu}
	cfg.AdvertisePeerUrls = []urlT{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = true
	cfg.EnableGRPCGateway = false
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"stderr"}
	// Keeps etcd small and fast; the apiserver compacts on its own
	// (--etcd-compaction-interval), as in a real cluster.
	cfg.QuotaBackendBytes = 2 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, errors.New("etcd not ready after 60s")
	}
}

func waitReady(ctx context.Context, o *options, server string, c *credentials) error {
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(c.caCert)
	if err != nil {
		return err
	}
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	get := func(path string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", server+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(o.readyTimeout)
	var last string
	for _, path := range []string{"/readyz", "/api/v1/namespaces/default"} {
		for {
			code, body, err := get(path)
			if err == nil && code == 200 {
				break
			}
			if err != nil {
				last = err.Error()
			} else {
				last = fmt.Sprintf("%s: HTTP %d: %s", path, code, strings.TrimSpace(body))
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				if _, vb, err2 := get("/readyz?verbose"); err2 == nil {
					last += "\n" + vb
				}
				return fmt.Errorf("timeout after %s: %s", o.readyTimeout, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
