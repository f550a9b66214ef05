package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTPServer is an HTTP server listening on Addr until Stop.
type HTTPServer struct {
	// Addr is the address it listens on (the port chosen when the
	// requested one was 0).
	Addr   string
	scheme string
	srv    *http.Server
}

// ServeHTTP listens on addr and serves h in the background, plain HTTP,
// with the limits of DefaultHTTPConfig (the sandbox CRM, the benchmark's).
func ServeHTTP(addr string, h http.Handler, logger *slog.Logger) (*HTTPServer, error) {
	return Serve(addr, h, logger, DefaultHTTPConfig())
}

// Serve listens on addr and serves h in the background with cfg's
// timeouts and header limit, over TLS when cfg names a certificate and its
// key (loaded now, so a bad file fails here, not at the first client).
func Serve(addr string, h http.Handler, logger *slog.Logger, cfg HTTPConfig) (*HTTPServer, error) {
	cfg = cfg.Or(DefaultHTTPConfig())
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		// ReadTimeout covers the body too: a client trickling 64 KiB a
		// byte at a time loses the connection.
		ReadTimeout:    cfg.ReadTimeout,
		WriteTimeout:   cfg.WriteTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		// The server's own complaints (TLS handshakes of port scanners,
		// say) go to the process log, not to stderr unstructured.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLS() {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, errors.New("give --tls-cert and --tls-key together (INTEGRATIONS_TLS_CERT, INTEGRATIONS_TLS_KEY), or neither")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w (give PEM files of a certificate and its private key)", cfg.TLSCert, cfg.TLSKey, err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &HTTPServer{Addr: ln.Addr().String(), scheme: scheme, srv: srv}
	go func() {
		var err error
		if scheme == "https" {
			// The certificate is in TLSConfig already.
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "addr", s.Addr, "error", err)
		}
	}()
	return s, nil
}

// URL is the server's base URL.
func (s *HTTPServer) URL() string { return s.scheme + "://" + s.Addr }

// Stop shuts the server down, giving requests in flight 5 seconds.
func (s *HTTPServer) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// FreeLoopbackAddr returns a 127.0.0.1 address whose port is free right
// now, for a child process to listen on.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
