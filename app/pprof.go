package app

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
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
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: cannot listen on %s: %w", PprofAddrEnv, addr, err)
	}
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}
