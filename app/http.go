package app

import (
	"context"
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
	Addr string
	srv  *http.Server
}

// ServeHTTP listens on addr and serves h in the background.
func ServeHTTP(addr string, h http.Handler, logger *slog.Logger) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &HTTPServer{Addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "addr", s.Addr, "error", err)
		}
	}()
	return s, nil
}

// URL is the server's base URL.
func (s *HTTPServer) URL() string { return "http://" + s.Addr }

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
