package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// intakeLoad is what the load phase did.
type intakeLoad struct {
	start, end  time.Time
	accepted    int64
	duplicates  int64
	errors      int64
	firstErrors []string
}

// benchLeadBody is the JSON a partner posts.
type benchLeadBody struct {
	ExternalID string `json:"external_id"`
	Source     string `json:"source"`
	Name       string `json:"name"`
	Email      string `json:"email"`
	Phone      string `json:"phone"`
	Message    string `json:"message"`
}

// driveIntake posts leads from opts.Concurrency goroutines, round robin over
// the lead integrations, until opts.Duration has passed (or ctx ends).
func driveIntake(ctx context.Context, httpURL string, leads []benchLead, runID string, opts Options, progress func(string, ...any)) intakeLoad {
	transport := &http.Transport{
		// No proxy: the traffic stays on 127.0.0.1.
		Proxy:               nil,
		MaxIdleConns:        opts.Concurrency,
		MaxIdleConnsPerHost: opts.Concurrency,
		IdleConnTimeout:     time.Minute,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: benchRequestTimeout}

	var (
		seq                            atomic.Int64
		accepted, duplicates, failures atomic.Int64
		mu                             sync.Mutex
		shown                          []string
	)
	fail := func(what string) {
		if failures.Add(1) > benchShownErrors {
			return
		}
		mu.Lock()
		shown = append(shown, what)
		mu.Unlock()
		progress("intake error: %s", what)
	}
	load := intakeLoad{start: time.Now()}
	deadline := load.start.Add(opts.Duration)
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				n := seq.Add(1)
				lead := leads[int(n)%len(leads)]
				status, msg, err := postLead(ctx, hc, httpURL, lead, benchLeadBody{
					ExternalID: fmt.Sprintf("bench-%s-%d", runID, n),
					Source:     lead.source,
					Name:       fmt.Sprintf("Lead %d", n),
					Email:      fmt.Sprintf("lead%d@example.com", n),
					Phone:      fmt.Sprintf("+1-555-%07d", n%10_000_000),
					Message:    "Interested in a 3-bedroom home near the park; please call after 5pm.",
				})
				switch {
				case err != nil:
					if ctx.Err() == nil {
						fail(err.Error())
					}
				case status == http.StatusAccepted:
					accepted.Add(1)
				case status == http.StatusOK:
					duplicates.Add(1)
				default:
					fail(fmt.Sprintf("HTTP %d: %s", status, msg))
				}
			}
		})
	}
	wg.Wait()
	load.end = time.Now()
	load.accepted, load.duplicates, load.errors = accepted.Load(), duplicates.Load(), failures.Load()
	load.firstErrors = shown
	return load
}

// postLead posts one lead and returns the status and, for an error, the
// API's message (which never holds lead data).
func postLead(ctx context.Context, hc *http.Client, httpURL string, lead benchLead, body benchLeadBody) (int, string, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL+"/v1/lead-integrations/"+lead.id+"/leads", bytes.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+lead.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", req.URL.Path, withoutRequestURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Read to the end so the connection is reused.
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, "", nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// withoutRequestURL drops the URL a transport error repeats.
func withoutRequestURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
