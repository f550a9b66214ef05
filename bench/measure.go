package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/proc"
)

// benchDrain is what the wait for delivery saw.
type benchDrain struct {
	completed, pending int64
	lastCompletion     time.Time
	drained            bool
	waited             time.Duration
}

// waitDrained polls the CRM integrations' delivery counts until nothing is
// pending and every accepted lead reached every CRM, or benchDrainTimeout
// after intake stopped.
func waitDrained(ctx context.Context, stack *benchStack, crms []benchCRM, load intakeLoad, perLead int64) (benchDrain, error) {
	want := load.accepted * perLead
	deadline := load.end.Add(benchDrainTimeout)
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("bench interrupted while waiting for deliveries: %w", ctx.Err())
		}
		return err
	}
	for {
		// While anything is pending only the head of the index of pending
		// deliveries is read: counting every delivery (or every pending
		// one) each poll would cost the database more than the drain it
		// watches.
		pending := false
		for _, c := range crms {
			has, err := stack.store.HasPending(ctx, c.id)
			if err != nil {
				return benchDrain{}, interrupted(err)
			}
			pending = pending || has
		}
		timedOut := time.Now().After(deadline)
		if !pending || timedOut {
			d, err := countDeliveries(ctx, stack, crms)
			if err != nil {
				return d, interrupted(err)
			}
			d.waited = time.Since(load.end)
			d.drained = d.pending == 0 && d.completed >= want
			if d.drained || timedOut {
				return d, nil
			}
		}
		if err := stack.checkChildren(); err != nil {
			return benchDrain{}, fmt.Errorf("while waiting for deliveries: %w", err)
		}
		select {
		case <-ctx.Done():
			return benchDrain{}, fmt.Errorf("bench interrupted while waiting for deliveries: %w", ctx.Err())
		case <-time.After(benchPollInterval):
		}
	}
}

// countDeliveries sums the CRM integrations' delivery counts.
func countDeliveries(ctx context.Context, stack *benchStack, crms []benchCRM) (benchDrain, error) {
	var d benchDrain
	for _, c := range crms {
		counts, err := stack.store.DeliveryCounts(ctx, c.id)
		if err != nil {
			return d, err
		}
		d.pending += counts.Pending
		d.completed += counts.Delivered + counts.Rejected
		if counts.LastDeliveredAt != nil && counts.LastDeliveredAt.After(d.lastCompletion) {
			d.lastCompletion = *counts.LastDeliveredAt
		}
	}
	return d, nil
}

// benchRaw is the sandbox's raw capacity measurement.
type benchRaw struct {
	records int64
	elapsed time.Duration
	err     error
	// busy is the CPU time the whole machine spent meanwhile.
	busy time.Duration
}

// measureRawCapacity pushes full batches straight to the sandbox with the
// connector, one pusher per CRM account as the workflows do, for window.
func measureRawCapacity(ctx context.Context, connector crm.Connector, crms []benchCRM, runID string, window time.Duration) (benchRaw, error) {
	var (
		records  atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	batchSize := connector.BatchLimit()
	busyBefore, _ := proc.MachineBusy()
	start := time.Now()
	deadline := start.Add(window)
	for p, c := range crms {
		creds := sandboxCredentials(c.apiKey)
		wg.Go(func() {
			batch := make([]crm.Record, batchSize)
			for n := 0; ctx.Err() == nil && time.Now().Before(deadline); n++ {
				for i := range batch {
					k := n*batchSize + i
					batch[i] = crm.Record{
						Key: fmt.Sprintf("raw-%s-%d-%d", runID, p, k), Source: "Bench Raw",
						Name: fmt.Sprintf("Lead %d", k), Email: fmt.Sprintf("raw%d@example.com", k),
						Phone:   fmt.Sprintf("+1-555-%07d", k%10_000_000),
						Message: "Interested in a 3-bedroom home near the park; please call after 5pm.",
					}
				}
				pctx, cancel := context.WithTimeout(ctx, benchRequestTimeout)
				results, err := connector.Push(pctx, creds, batch)
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				records.Add(int64(len(results)))
			}
		})
	}
	wg.Wait()
	busyAfter, _ := proc.MachineBusy()
	raw := benchRaw{records: records.Load(), elapsed: time.Since(start), err: firstErr, busy: busyAfter - busyBefore}
	if err := ctx.Err(); err != nil {
		return raw, fmt.Errorf("bench interrupted while measuring the sandbox: %w", err)
	}
	if firstErr != nil && raw.records == 0 {
		return raw, fmt.Errorf("measure the sandbox's raw capacity: %w", firstErr)
	}
	return raw, nil
}

// benchBacklog is the drain of a backlog built while the CRMs were paused.
type benchBacklog struct {
	deliveries int64
	// drain is from the resume commands to the last completion; start is
	// the part of it before the first completion (the resume validates
	// each CRM first, then a page of leads is pushed and recorded).
	drain, start time.Duration
	// steady counts the deliveries completed after the first completion,
	// over the steady interval from the first to the last one.
	steady       int64
	steadyPeriod time.Duration
	drained      bool
	// busy is the CPU time the whole machine spent from resume until the
	// drain was seen (busyWall later), and cpu each part's CPU seconds
	// meanwhile.
	busy, busyWall time.Duration
	cpu            map[string]float64
}

// measureBacklog pauses every CRM integration, posts leads for window,
// resumes them and times how long the backlog takes to reach the CRMs.
func measureBacklog(ctx context.Context, stack *benchStack, org benchOrg, runID string, opts Options, window time.Duration, progress func(string, ...any)) (benchBacklog, error) {
	for _, c := range org.crms {
		if _, err := stack.starter.Command(ctx, c.id, integration.EventPause, "bench", "backlog"); err != nil {
			return benchBacklog{}, fmt.Errorf("bench backlog: pause %s: %w", c.id, err)
		}
	}
	before := int64(0)
	for _, c := range org.crms {
		counts, err := stack.store.DeliveryCounts(ctx, c.id)
		if err != nil {
			return benchBacklog{}, err
		}
		before += counts.Delivered + counts.Rejected
	}
	bopts := opts
	bopts.Duration = window
	load := driveIntake(ctx, stack.httpURL, org.leads, runID+"b", bopts, progress)
	resumed := time.Now().UTC()
	busyBefore, _ := proc.MachineBusy()
	cpuBefore := sampleCPU(stack)
	for _, c := range org.crms {
		if _, err := stack.starter.Command(ctx, c.id, integration.EventResume, "bench", "backlog"); err != nil {
			return benchBacklog{}, fmt.Errorf("bench backlog: resume %s: %w", c.id, err)
		}
	}
	perLead := int64(len(org.crms))
	d, err := waitDrained(ctx, stack, org.crms, intakeLoad{accepted: before/perLead + load.accepted, end: resumed}, perLead)
	if err != nil {
		return benchBacklog{}, err
	}
	busyAfter, _ := proc.MachineBusy()
	b := benchBacklog{deliveries: d.completed - before, drained: d.drained, busy: busyAfter - busyBefore,
		busyWall: time.Since(resumed), cpu: cpuSince(cpuBefore, sampleCPU(stack))}
	if !d.lastCompletion.IsZero() {
		b.drain = d.lastCompletion.Sub(resumed)
	}
	first, steady, err := completionsSince(ctx, stack, org.crms, resumed)
	if err != nil {
		return benchBacklog{}, err
	}
	if !first.IsZero() {
		b.start, b.steady, b.steadyPeriod = first.Sub(resumed), steady, d.lastCompletion.Sub(first)
	}
	progress("backlog of %d deliveries drained in %s (first delivery %s after resume)", b.deliveries, b.drain.Round(time.Millisecond), b.start.Round(time.Millisecond))
	return b, nil
}

// completionsSince returns the first completion time of the CRMs'
// deliveries at or after since, and how many completed after it.
func completionsSince(ctx context.Context, stack *benchStack, crms []benchCRM, since time.Time) (time.Time, int64, error) {
	ids := make([]string, len(crms))
	for i, c := range crms {
		ids[i] = c.id
	}
	first, n, err := stack.store.CompletionsSince(ctx, ids, since)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("deliveries of the backlog: %w", err)
	}
	return first, n, nil
}

// sampleCPU reads the CPU time used so far by each part of the stack on
// this machine: the benchmark process (load generator and sandbox), the
// worker, the HTTP API, the Temporal dev server, and PostgreSQL (every
// process named postgres, and the backends that have exited: a connection
// pool that closes and reopens connections costs a backend each time).
// Parts it cannot see are left out; on systems without /proc the map is
// empty.
func sampleCPU(stack *benchStack) map[string]time.Duration {
	out := map[string]time.Duration{}
	add := func(part string, pid int) {
		if pid <= 0 {
			return
		}
		if _, _, cpu, _, ok := proc.Stat(strconv.Itoa(pid)); ok {
			out[part] = cpu
		}
	}
	add("bench", os.Getpid())
	if stack.worker != nil {
		add("worker", stack.worker.pid())
		add("serve", stack.serve.pid())
	}
	add("temporal", stack.temporalPID)
	if busy, ok := proc.MachineBusy(); ok {
		out["machine"] = busy
	}
	if stack.database == "postgres" {
		if total, ok := proc.NamedCPU("postgres"); ok {
			out["postgres"] = total
		}
	}
	return out
}

// cpuSince returns the CPU seconds each part used between two samples.
func cpuSince(before, after map[string]time.Duration) map[string]float64 {
	out := map[string]float64{}
	for part, t := range after {
		if b, ok := before[part]; ok && t >= b {
			out[part] = round2((t - b).Seconds())
		}
	}
	return out
}
