package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type urlT = url.URL

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

type credentials struct {
	caCert, caKey           string
	servingCert, servingKey string
	adminCert, adminKey     string
	saKey                   string
	tokenFile               string
	token                   string
}

// ensureCredentials creates (or, for a reused directory, loads) the CA, the
// serving certificate, the admin client certificate (O=system:masters), the
// service-account signing key and the static admin token.
func ensureCredentials(dir string) (*credentials, error) {
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	c := &credentials{
		caCert:      filepath.Join(pki, "ca.crt"),
		caKey:       filepath.Join(pki, "ca.key"),
		servingCert: filepath.Join(pki, "apiserver.crt"),
		servingKey:  filepath.Join(pki, "apiserver.key"),
		adminCert:   filepath.Join(pki, "admin.crt"),
		adminKey:    filepath.Join(pki, "admin.key"),
		saKey:       filepath.Join(pki, "sa.key"),
		tokenFile:   filepath.Join(pki, "tokens.csv"),
	}
	complete := true
	for _, f := range []string{c.caCert, c.caKey, c.servingCert, c.servingKey, c.adminCert, c.adminKey, c.saKey, c.tokenFile} {
		if _, err := os.Stat(f); err != nil {
			complete = false
		}
	}
	if complete {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, err
		}
		tok, _, _ := strings.Cut(string(b), ",")
		c.token = strings.TrimSpace(tok)
		if c.token != "" {
			return c, nil
		}
	}

	notBefore := time.Now().Add(-time.Hour)
	notAfter := time.Now().Add(10 * 365 * 24 * time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kube-testenv-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)

	issue := func(tmpl *x509.Certificate, certPath, keyPath string) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return err
		}
		return writePEM(keyPath, "EC PRIVATE KEY", kder)
	}
	if err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")},
	}, c.servingCert, c.servingKey); err != nil {
		return nil, err
	}
	if err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-testenv-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, c.adminCert, c.adminKey); err != nil {
		return nil, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(c.caKey, "EC PRIVATE KEY", caKeyDER); err != nil {
		return nil, err
	}
	if err := writePEM(c.caCert, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if err := writePEM(c.saKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)); err != nil {
		return nil, err
	}

	tb := make([]byte, 24)
	if _, err := rand.Read(tb); err != nil {
		return nil, err
	}
	c.token = hex.EncodeToString(tb)
	// token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,kube-testenv-admin,kube-testenv-admin,\"system:masters\"\n", c.token)
	if err := os.WriteFile(c.tokenFile, []byte(line), 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writePEM(path, typ string, der []byte) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeKubeconfig writes an admin kubeconfig. The current context uses the
// static bearer token; the context "kube-testenv-cert" uses the client
// certificate (O=system:masters).
func writeKubeconfig(path, server string, c *credentials) error {
	b64 := func(p string) (string, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(b), nil
	}
	ca, err := b64(c.caCert)
	if err != nil {
		return err
	}
	crt, err := b64(c.adminCert)
	if err != nil {
		return err
	}
	key, err := b64(c.adminKey)
	if err != nil {
		return err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube-testenv
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: kube-testenv-admin
  user:
    token: %s
- name: kube-testenv-admin-cert
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kube-testenv
  context:
    cluster: kube-testenv
    user: kube-testenv-admin
    namespace: default
- name: kube-testenv-cert
  context:
    cluster: kube-testenv
    user: kube-testenv-admin-cert
    namespace: default
current-context: kube-testenv
preferences: {}
`, server, ca, c.token, crt, key)
	return writeFileAtomic(path, []byte(kc), 0o600)
}
