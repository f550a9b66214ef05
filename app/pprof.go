package app

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// PprofAddrEnv makes an integrations process serve net/http/pprof on a
// loopback address, e.g. 127.0.0.1:6060: the benchmark's --profile-dir sets
// it on its child processes to profile them, and an operator can set it to
// look inside a slow process on this machine. main reads it, so that no
// process serves profiles unless asked to.
const PprofAddrEnv = "INTEGRATIONS_PPROF_ADDR"

// ServePprof serves the pprof handlers on addr in the background. It
// refuses any address that is not loopback: profiles expose memory
// contents.
func ServePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s=%q refused: give a loopback address such as 127.0.0.1:6060 (profiles expose memory contents)", PprofAddrEnv, addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// No /debug/pprof/cmdline: argv can hold a --database-url password,
	// and anything sharing the loopback interface could read it.
	mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: cannot listen on %s: %w", PprofAddrEnv, addr, err)
	}
	// No write timeout: a CPU profile or trace streams for as long as it
	// was asked to run.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
