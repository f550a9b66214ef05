package api_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/schema"
)

// serverBundle is a test stack (database, Temporal, worker, sandbox) and an
// HTTP API on it, assembled and started by app as `serve` is (listeners,
// TLS, timeouts), with the test's HTTP configuration; admin is an admin API
// key of its database.
type serverBundle struct {
	stack *teststack.Stack
	svc   *app.Service
	admin string
}

func setupServer(t *testing.T, db testenv.Database, cfg app.HTTPConfig) *serverBundle {
	t.Helper()
	stack := teststack.New(t, db, teststack.Options{})
	svc := startServer(t, stack, cfg)
	_, admin, err := apikey.Issue(t.Context(), stack.Store, apikey.Spec{Admin: true, Name: "ops"}, time.Now())
	require.NoError(t, err)
	return &serverBundle{stack: stack, svc: svc, admin: admin}
}

// startHTTP starts an HTTP API on stack with cfg, as `serve` does.
func startServer(t *testing.T, stack *teststack.Stack, cfg app.HTTPConfig) *app.Service {
	t.Helper()
	conf := app.Config{
		DataDir: stack.DataDir, DatabaseURL: stack.DB.URL, TaskQueue: stack.TaskQueue, SandboxURL: stack.SandboxURL,
		HTTPAddr: "127.0.0.1:0", HTTP: cfg,
	}
	svc, err := app.New(t.Context(), conf, app.WithTemporalClient(stack.Temporal), app.WithDevKeyring(), app.WithHTTP())
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	require.NoError(t, svc.Start(context.Background()))
	return svc
}

// request sends one request to base with the admin key (unless auth is
// false) and returns the status and body.
func (b *serverBundle) request(t *testing.T, client *http.Client, method, url, body string, auth bool) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+b.admin)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

func (b *serverBundle) newCRM(t *testing.T) string {
	t.Helper()
	id := testenv.ID("crm")
	_, err := b.stack.Starter.Create(t.Context(), integration.Spec{ID: id, OrgID: "acme", Kind: integration.KindCRM, Provider: "sandbox"}, "test")
	require.NoError(t, err)
	return id
}

// TestTrickledBodyIsCutOff: a client that sends its headers and then its
// body a byte at a time loses the connection to the server's read timeout,
// and its command is never carried out.
func TestTrickledBodyIsCutOff(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupServer(t, db, app.HTTPConfig{ReadTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond, CommandTimeout: time.Second, WriteTimeout: 10 * time.Second})
		id := b.newCRM(t)
		before, err := b.stack.Store.Events(t.Context(), id)
		require.NoError(t, err)

		conn, err := net.Dial("tcp", b.svc.HTTP.Addr)
		require.NoError(t, err)
		defer conn.Close()
		body := `{"by": "slowloris", "note": "` + strings.Repeat("x", 1000) + `"}`
		_, err = fmt.Fprintf(conn, "POST /v1/integrations/%s/delete HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			id, b.admin, len(body))
		require.NoError(t, err)

		// The server ends the exchange (an answer or a closed connection)
		// while the body is still trickling in.
		ended := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(conn).ReadString('\n')
			ended <- line
		}()
		deadline := time.After(30 * time.Second)
		sent, answer, answered := 0, "", false
	trickle:
		for sent < len(body) {
			select {
			case answer = <-ended:
				answered = true
				break trickle
			case <-deadline:
				t.Fatalf("the server still reads a trickled body after 30 s (%d of %d bytes sent)", sent, len(body))
			case <-time.After(50 * time.Millisecond):
				if _, err := conn.Write([]byte{body[sent]}); err != nil {
					break trickle // the server closed the connection
				}
				sent++
			}
		}
		require.Less(t, sent, len(body), "the whole body got through: no read timeout")
		if !answered {
			select {
			case answer = <-ended:
			case <-deadline:
				t.Fatal("no answer and no close within 30 s of the cut")
			}
		}
		// A closed connection, or a 4xx about the unreadable body.
		require.True(t, answer == "" || strings.HasPrefix(answer, "HTTP/1.1 4"), "the trickled command was answered %q", answer)
		after, err := b.stack.Store.Events(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, before, after, "the trickled command changed nothing")
		st, err := b.stack.Store.Get(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, integration.StatusSetupIncomplete, st.Status)

		// A client that sends its request at once is served.
		code, out := b.request(t, nil, http.MethodGet, b.svc.HTTP.URL()+"/v1/integrations/"+id, "", true)
		require.Equal(t, http.StatusOK, code, out)
	})
}

// TestHeaderLimit: a request whose header is over the limit is refused.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupServer(t, db, app.HTTPConfig{MaxHeaderBytes: 4 << 10})
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.svc.HTTP.URL()+"/v1/integrations", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b.admin)
		req.Header.Set("X-Padding", strings.Repeat("p", 8<<10))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
		code, body := b.request(t, nil, http.MethodGet, b.svc.HTTP.URL()+"/v1/integrations", "", true)
		require.Equal(t, http.StatusOK, code, body)
	})
}

// TestIntakeListener: with an intake address, partners reach intake there
// and no operator route; the main listener has the operator routes and no
// intake; both serve the OAuth callback.
func TestIntakeListener(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		intakeAddr, err := app.FreeLoopbackAddr()
		require.NoError(t, err)
		b := setupServer(t, db, app.HTTPConfig{IntakeAddr: intakeAddr})
		require.NotNil(t, b.svc.IntakeHTTP)
		intakeURL := b.svc.IntakeHTTP.URL()
		lead := testenv.ID("lead")
		_, token, err := b.stack.Starter.CreateLead(t.Context(), integration.Spec{ID: lead, OrgID: "acme", Provider: "zillow", ExpectedSource: "Z"}, "test")
		require.NoError(t, err)
		leadPath := "/v1/lead-integrations/" + lead + "/leads"
		leadBody := `{"external_id": "x-1", "source": "Z"}`

		send := func(base string) (int, string) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+leadPath, strings.NewReader(leadBody))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(raw)
		}
		code, body := send(b.svc.HTTP.URL())
		require.Equal(t, http.StatusNotFound, code, "the main listener has no intake: %s", body)
		n, err := b.stack.Store.CountLeads(t.Context(), lead)
		require.NoError(t, err)
		require.Zero(t, n)
		code, body = send(intakeURL)
		require.Equal(t, http.StatusAccepted, code, body)

		code, body = b.request(t, nil, http.MethodGet, intakeURL+"/v1/integrations/"+lead, "", true)
		require.Equal(t, http.StatusNotFound, code, "no operator route on the intake listener, even with a key: %s", body)
		code, body = b.request(t, nil, http.MethodPost, intakeURL+"/v1/integrations/"+lead+"/delete", `{"by": "x"}`, true)
		require.Equal(t, http.StatusNotFound, code, body)
		code, _ = b.request(t, nil, http.MethodGet, intakeURL+"/healthz", "", false)
		require.Equal(t, http.StatusOK, code)
		code, body = b.request(t, nil, http.MethodGet, b.svc.HTTP.URL()+"/v1/integrations/"+lead, "", true)
		require.Equal(t, http.StatusOK, code, body)
		// The OAuth callback, where customers' browsers come back, is
		// served on both listeners.
		for _, base := range []string{intakeURL, b.svc.HTTP.URL()} {
			code, page := getPage(t, base+api.OAuthCallbackPath+"?state=crm-x.unknown&code=c")
			require.Equal(t, http.StatusBadRequest, code, page)
			require.Contains(t, page, "invalid, already used or expired")
		}
	})
}

// TestTLS: with a certificate and its key, the API speaks HTTPS only.
func TestTLS(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		certFile, keyFile, pool := selfSignedCert(t)
		intakeAddr, err := app.FreeLoopbackAddr()
		require.NoError(t, err)
		b := setupServer(t, db, app.HTTPConfig{TLSCert: certFile, TLSKey: keyFile, IntakeAddr: intakeAddr})
		require.True(t, strings.HasPrefix(b.svc.HTTP.URL(), "https://"), b.svc.HTTP.URL())
		require.True(t, strings.HasPrefix(b.svc.IntakeHTTP.URL(), "https://"), "the intake listener too")
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 30 * time.Second}

		code, body := b.request(t, client, http.MethodGet, b.svc.HTTP.URL()+"/v1/integrations", "", true)
		require.Equal(t, http.StatusOK, code, body)
		code, _ = b.request(t, client, http.MethodGet, b.svc.IntakeHTTP.URL()+"/healthz", "", false)
		require.Equal(t, http.StatusOK, code)

		// Plain HTTP gets no API: Go's TLS server answers it 400.
		plain := "http://" + b.svc.HTTP.Addr + "/v1/integrations"
		code, body = b.request(t, nil, http.MethodGet, plain, "", true)
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body, "HTTPS")
		// An unknown certificate authority fails the handshake.
		_, err = http.Get(b.svc.HTTP.URL() + "/healthz")
		require.Error(t, err)
	})
}

// TestHTTPConfigRefusals: half a TLS configuration, an unreadable
// certificate, or a write timeout the command timeout outlasts refuse to
// start.
func TestHTTPConfigRefusals(t *testing.T) {
	t.Parallel()
	stack := teststack.New(t, testenv.Database{Name: schema.SQLite, URL: testenv.SQLiteURL(t)}, teststack.Options{})
	certFile, keyFile, _ := selfSignedCert(t)
	for _, tc := range []struct {
		cfg  app.HTTPConfig
		want string
	}{
		{app.HTTPConfig{TLSCert: certFile}, "--tls-cert and --tls-key together"},
		{app.HTTPConfig{TLSKey: keyFile}, "--tls-cert and --tls-key together"},
		{app.HTTPConfig{TLSCert: keyFile, TLSKey: certFile}, "load TLS certificate"},
		{app.HTTPConfig{TLSCert: filepath.Join(t.TempDir(), "none.pem"), TLSKey: keyFile}, "load TLS certificate"},
		{app.HTTPConfig{CommandTimeout: time.Minute, WriteTimeout: time.Minute}, "INTEGRATIONS_HTTP_WRITE_TIMEOUT"},
	} {
		conf := app.Config{DataDir: stack.DataDir, DatabaseURL: stack.DB.URL, TaskQueue: stack.TaskQueue, HTTPAddr: "127.0.0.1:0", HTTP: tc.cfg}
		svc, err := app.New(t.Context(), conf, app.WithTemporalClient(stack.Temporal), app.WithDevKeyring(), app.WithHTTP())
		if err == nil {
			err = svc.Start(context.Background())
			svc.Close()
		}
		require.ErrorContains(t, err, tc.want, "%+v", tc.cfg)
	}
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files, and returns them with a pool that trusts it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "integrations test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
