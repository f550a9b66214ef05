package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
)

// benchProfiles collects CPU profiles during the load: the children's from
// their pprof endpoints, this process's with runtime/pprof.
type benchProfiles struct {
	dir      string
	selfFile *os.File
	wg       sync.WaitGroup
	mu       sync.Mutex
	written  []string
	errs     []error
}

func startProfiles(ctx context.Context, opts Options, stack *benchStack) (*benchProfiles, error) {
	if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
		return nil, fmt.Errorf("create the profile directory: %w", err)
	}
	p := &benchProfiles{dir: opts.ProfileDir}
	f, err := os.Create(filepath.Join(opts.ProfileDir, "bench.cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("create the profile file: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("profile the load generator: %w", err)
	}
	p.selfFile = f
	seconds := int(math.Ceil(opts.Duration.Seconds()))
	for _, ch := range []*benchChild{stack.worker, stack.serve} {
		p.wg.Go(func() {
			path := filepath.Join(opts.ProfileDir, ch.name+".cpu.pprof")
			err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", ch.pprofAddr, seconds), path)
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				p.errs = append(p.errs, fmt.Errorf("profile of %s: %w", ch.name, err))
				return
			}
			p.written = append(p.written, path)
		})
	}
	return p, nil
}

// stopLoad ends this process's profile, which covers the load only.
func (p *benchProfiles) stopLoad() {
	if p.selfFile == nil {
		return
	}
	pprof.StopCPUProfile()
	_ = p.selfFile.Close()
	p.mu.Lock()
	p.written = append(p.written, p.selfFile.Name())
	p.mu.Unlock()
	p.selfFile = nil
}

// finish waits for the children's profiles and returns the files written.
func (p *benchProfiles) finish() ([]string, error) {
	p.stopLoad()
	p.wg.Wait()
	return p.written, errors.Join(p.errs...)
}

func fetchProfile(ctx context.Context, profileURL, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, profileURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return withoutRequestURL(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
