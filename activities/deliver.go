package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/store"
)

// DeliverInput names the CRM integration whose pending leads to deliver.
type DeliverInput struct {
	IntegrationID string `json:"integration_id"`
	Provider      string `json:"provider"`
}

// FailureClass is how a delivery attempt failed on the CRM's side.
type FailureClass string

// The failure classes the workflow tells apart.
const (
	FailureTransient   FailureClass = "transient"
	FailureRateLimited FailureClass = "rate_limited"
	FailureAuth        FailureClass = "auth"
	FailurePermission  FailureClass = "permission"
)

// DeliverFailure is a CRM-side failure of a whole batch. Its message holds
// the status code and class, never lead data or credentials.
type DeliverFailure struct {
	Class      FailureClass  `json:"class"`
	Message    string        `json:"message"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// DeliverResult is the outcome of one batch: counts only, so no lead data
// enters workflow history.
type DeliverResult struct {
	Delivered int `json:"delivered"`
	Rejected  int `json:"rejected"`
	// More is true when the batch was full: more leads may be pending.
	More    bool            `json:"more"`
	Failure *DeliverFailure `json:"failure,omitempty"`
}

// Deliver pushes the pending leads of a CRM integration to its CRM, oldest
// first, in batches of the connector's limit, and records each lead's
// outcome. Delivery is idempotent on the CRM side (the lead ID is the
// record key), so a retried batch never creates a second record. Failures
// of the CRM are returned as a result for the workflow to judge; only our
// own (database) errors are activity errors.
//
// Batches follow each other within one activity for up to deliverBudget,
// so the round trip through Temporal is paid once per budget, not once per
// batch, while a backlog drains. The database work overlaps the CRM calls:
// while one page of pending leads is pushed, the next is read and the
// outcomes of the previous one are recorded (see pipeline).
func (a *Activities) Deliver(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	// Heartbeats let the server notice a crashed worker within the
	// heartbeat timeout instead of the whole start-to-close timeout, so a
	// crash stalls this integration's deliveries for seconds, not minutes.
	stop := heartbeat(ctx, time.Second)
	defer stop()
	connector, err := a.Connectors.Get(in.Provider)
	if err != nil {
		return DeliverResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "UnknownProvider", nil)
	}
	batch := max(1, connector.BatchLimit())
	maxPage := cmp.Or(a.paging.maxPage, store.MaxPendingLimit)
	p := &pipeline{acts: a, id: in.IntegrationID, connector: connector, batch: batch,
		page:   min(maxPage, batch*max(1, maxPage/batch)),
		budget: cmp.Or(a.paging.budget, deliverBudget)}
	res, err := p.run(ctx)
	a.saveQuota(ctx, in.IntegrationID, connector, p.creds)
	return res, err
}

// deliverBudget is how long one Deliver activity keeps reading pages.
const deliverBudget = 2 * time.Second

// pipeline is one Deliver run: a reader goroutine pages through the pending
// leads (by lead ID, so it can read ahead of what is delivered), the
// calling goroutine pushes each page to the CRM batch by batch, and a
// recorder goroutine writes the outcomes of the pushed batches. One page
// waits between reader and pusher, at most a page of batches between
// pusher and recorder, so the three overlap without running ahead. The
// recorder writes every batch that is waiting in one statement: against a
// fast CRM many batches share a write, against a slow one each batch is
// recorded as soon as the CRM answered it.
type pipeline struct {
	acts      *Activities
	id        string
	connector crm.Connector
	// batch is the connector's batch limit. page is how many pending
	// leads one read covers: as many whole batches as fit in the page
	// limit, so the database costs are shared by many batches.
	batch, page int
	budget      time.Duration
	// creds are the integration's current credentials, read with the
	// first page and replaced when the connector refreshes them.
	creds *openCredentials
	// outcomes carries each pushed batch's results to the recorder, which
	// closes recorderFailed when it could not write them.
	outcomes       chan []store.DeliveryResult
	recorderFailed chan struct{}
	// started is when the run began; pushed counts its batches.
	started time.Time
	pushed  int
}

// pendingPage is one read of pending leads; full means more may follow.
type pendingPage struct {
	deliveries []store.Delivery
	full       bool
}

// maxCoalesced bounds how many outcomes one write of the recorder holds.
const maxCoalesced = 2 * store.MaxPendingLimit

func (p *pipeline) run(ctx context.Context) (DeliverResult, error) {
	p.started = p.now()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	pages := make(chan pendingPage, 1)
	var readErr error
	var workers sync.WaitGroup
	workers.Go(func() {
		defer close(pages)
		readErr = p.read(readCtx, pages)
	})

	// The recorder writes with the activity's own context: outcomes of
	// batches the CRM took must be recorded even when reading stopped.
	p.outcomes = make(chan []store.DeliveryResult, max(1, p.page/p.batch))
	p.recorderFailed = make(chan struct{})
	var recorded DeliverResult
	var recordErr error
	workers.Go(func() {
		recorded, recordErr = p.record(ctx)
	})

	var failure *DeliverFailure
	var pushErr error
	more := false
	for page := range pages {
		failure, more, pushErr = p.push(ctx, page)
		if pushErr != nil || failure != nil || closed(p.recorderFailed) || p.spent() {
			break
		}
	}
	// Whatever ended the loop, the reader stops; drain the page it may
	// have read ahead so it can close the channel.
	stopReading()
	for range pages {
	}
	close(p.outcomes)
	workers.Wait()

	switch {
	case ctx.Err() != nil:
		// Cancelled or timed out: whatever was recorded stays, but an
		// empty result must not pass for "nothing pending".
		return recorded, ctx.Err()
	case pushErr != nil:
		return recorded, pushErr
	case recordErr != nil:
		return recorded, recordErr
	case readErr != nil:
		return recorded, readErr
	}
	recorded.Failure = failure
	recorded.More = more && failure == nil
	return recorded, nil
}

// record writes the outcomes of pushed batches until the pusher closes
// the channel, each time all that are waiting at once, and counts them.
// After a failed write it closes recorderFailed and only drains the
// channel, so the pusher never blocks.
func (p *pipeline) record(ctx context.Context) (DeliverResult, error) {
	var recorded DeliverResult
	var recordErr error
	for results := range p.outcomes {
		if recordErr != nil {
			continue
		}
	coalesce:
		for len(results) < maxCoalesced {
			select {
			case more, ok := <-p.outcomes:
				if !ok {
					break coalesce
				}
				results = append(results, more...)
			default:
				break coalesce
			}
		}
		if err := p.acts.Store.CompleteDeliveries(ctx, p.id, results, time.Now().UTC()); err != nil {
			// Retried by Temporal: the CRM upserts by key, so pushing the
			// same leads again creates nothing new.
			recordErr = fmt.Errorf("deliver %s: record outcomes: %w", p.id, err)
			close(p.recorderFailed)
			if hook := p.acts.paging.recorderFailed; hook != nil {
				hook()
			}
			continue
		}
		for _, r := range results {
			if r.Status == store.DeliveryRejected {
				recorded.Rejected++
			} else {
				recorded.Delivered++
			}
		}
	}
	return recorded, recordErr
}

// read sends pages of pending leads, oldest first, until a page is not
// full, the budget is spent, or ctx ends.
func (p *pipeline) read(ctx context.Context, pages chan<- pendingPage) error {
	var after int64
	for {
		deliveries, err := p.acts.Store.PendingDeliveriesAfter(ctx, p.id, after, p.page)
		if err != nil && ctx.Err() != nil {
			// Stopped by the pusher (or the activity ended): whatever
			// the driver made of the cancellation is no failure.
			return nil
		}
		if err != nil {
			return fmt.Errorf("deliver %s: load pending leads: %w", p.id, err)
		}
		page := pendingPage{deliveries: deliveries, full: len(deliveries) == p.page}
		select {
		case pages <- page:
		case <-ctx.Done():
			return nil
		}
		if !page.full || p.spent() {
			return nil
		}
		after = deliveries[len(deliveries)-1].Lead.ID
	}
}

// spent reports whether the run's budget is spent.
func (p *pipeline) spent() bool { return p.now().Sub(p.started) >= p.budget }

// now reads the clock the budget is measured on.
func (p *pipeline) now() time.Time {
	if now := p.acts.paging.now; now != nil {
		return now()
	}
	return time.Now()
}

// push pushes one page in batches of the connector's limit and hands the
// outcomes of each batch the CRM answered to the recorder. A failing batch
// ends the page (and the run): what was delivered before it is recorded,
// the rest waits. So does a failed write of the recorder, and a spent
// budget once the run pushed a batch (so a slow CRM cannot hold one
// activity for pages of batches). more reports whether more leads may be
// pending.
func (p *pipeline) push(ctx context.Context, page pendingPage) (failure *DeliverFailure, more bool, err error) {
	if len(page.deliveries) == 0 {
		return nil, false, nil
	}
	if p.creds == nil {
		if p.creds, failure, err = p.acts.credentials(ctx, p.id); err != nil || failure != nil {
			return failure, false, err
		}
		// A run lasts seconds, far less than crm.RefreshAhead: refreshing
		// once at its start keeps every call of it on a live token.
		*p.creds = p.acts.freshen(ctx, p.id, p.connector, *p.creds)
	}
	for start := 0; start < len(page.deliveries) && !closed(p.recorderFailed); start += p.batch {
		if p.pushed > 0 && p.spent() {
			return nil, true, nil
		}
		p.pushed++
		chunk := page.deliveries[start:min(start+p.batch, len(page.deliveries))]
		results, failure, err := p.acts.pushChunk(ctx, p.id, p.connector, p.creds, chunk)
		if err != nil || failure != nil {
			return failure, false, err
		}
		completed := make([]store.DeliveryResult, len(results))
		for i, r := range results {
			completed[i] = store.DeliveryResult{LeadID: chunk[i].Lead.ID, CRMRecordID: r.CRMID, Status: store.DeliveryDelivered}
			if r.Status == crm.RecordRejected {
				completed[i].Status, completed[i].Reason = store.DeliveryRejected, r.Reason
			}
		}
		p.outcomes <- completed
	}
	return nil, page.full, nil
}

// pushChunk pushes one batch. A CRM-side failure comes back as a
// DeliverFailure (transient ones also counted on the leads); an error is
// ours. creds are replaced when the credentials were refreshed.
func (a *Activities) pushChunk(ctx context.Context, id string, connector crm.Connector, creds *openCredentials, chunk []store.Delivery) ([]crm.RecordResult, *DeliverFailure, error) {
	records := make([]crm.Record, len(chunk))
	ids := make([]int64, len(chunk))
	for i, d := range chunk {
		l := d.Lead
		ids[i] = l.ID
		records[i] = crm.Record{
			Key: strconv.FormatInt(l.ID, 10), Source: l.Source,
			Name: l.Name, FirstName: l.FirstName, LastName: l.LastName, Company: l.Company,
			Email: l.Email, Phone: l.Phone, Message: l.Message, Attributes: l.Attributes,
		}
	}
	results, err := connector.Push(ctx, creds.raw, records)
	if crm.ClassOf(err) == crm.ClassAuth {
		// An expired access token of a refreshable grant (OAuth) is
		// refreshed, re-stored, and the batch retried once.
		if fresh, ok := a.refresh(ctx, id, connector, *creds); ok {
			*creds = fresh
			results, err = connector.Push(ctx, fresh.raw, records)
		}
	}
	if err != nil {
		failure := classify(err)
		if failure.Class == FailureTransient {
			if ferr := a.Store.RecordDeliveryFailure(ctx, id, ids, failure.Message); ferr != nil {
				return nil, nil, fmt.Errorf("deliver %s: record failure: %w", id, ferr)
			}
		}
		a.logger().Warn("delivery failed", "integration", id, "leads", len(records), "class", failure.Class, "error", failure.Message)
		return nil, &failure, nil
	}
	if len(results) != len(records) {
		return nil, &DeliverFailure{Class: FailureTransient, Message: fmt.Sprintf("the CRM answered %d results for %d records", len(results), len(records))}, nil
	}
	return results, nil, nil
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// heartbeat records an activity heartbeat every interval until stop is
// called (a no-op outside an activity, as in unit tests).
func heartbeat(ctx context.Context, interval time.Duration) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// openCredentials are credentials as a connector takes them, and the
// version they are stored as.
type openCredentials struct {
	raw     []byte
	version int
}

// refresh renews credentials through a Refresher connector, stores the
// result as the new current version (the same grant, renewed), and reports
// whether there is one to retry with. If the credentials were replaced
// meanwhile (re-authorized), those are what it retries with.
func (a *Activities) refresh(ctx context.Context, id string, connector crm.Connector, creds openCredentials) (openCredentials, bool) {
	refresher, ok := connector.(crm.Refresher)
	if !ok {
		return openCredentials{}, false
	}
	fresh, err := refresher.Refresh(ctx, creds.raw)
	if err != nil {
		a.logger().Warn("credential refresh failed", "integration", id, "class", crm.ClassOf(err), "error", err.Error())
		return openCredentials{}, false
	}
	stored, err := a.Store.AddCurrentCredential(ctx, id, creds.version, a.Keyring.Sealer(fresh, id), time.Now().UTC())
	if errors.Is(err, store.ErrSuperseded) {
		// Another grant became current while this one was refreshed:
		// use that one, and let this refresh go.
		current, failure, err := a.credentials(ctx, id)
		if err != nil || failure != nil {
			return openCredentials{}, false
		}
		return *current, true
	}
	if err != nil {
		a.logger().Error("refreshed credentials not stored", "integration", id, "error", err.Error())
		return openCredentials{}, false
	}
	return openCredentials{raw: fresh, version: stored.Version}, true
}

// credentials opens the integration's current credentials; missing ones
// are an auth failure for the workflow to validate, and ones that do not
// decrypt an error that says what to fix.
func (a *Activities) credentials(ctx context.Context, id string) (*openCredentials, *DeliverFailure, error) {
	cred, err := a.Store.CurrentCredential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &DeliverFailure{Class: FailureAuth, Message: "no credentials are stored"}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("deliver %s: load credentials: %w", id, err)
	}
	raw, err := a.Keyring.Open(cred.Ciphertext, id, cred.Version)
	if err != nil {
		return nil, nil, decryptError("deliver", cred, err)
	}
	return &openCredentials{raw: raw, version: cred.Version}, nil, nil
}

// classify maps a connector error to a failure class and a message safe for
// history (the connector's errors carry no secrets or lead data).
func classify(err error) DeliverFailure {
	var ce *crm.Error
	retryAfter := time.Duration(0)
	if errors.As(err, &ce) {
		retryAfter = ce.RetryAfter
	}
	switch crm.ClassOf(err) {
	case crm.ClassRateLimited:
		return DeliverFailure{Class: FailureRateLimited, Message: err.Error(), RetryAfter: retryAfter}
	case crm.ClassAuth:
		return DeliverFailure{Class: FailureAuth, Message: err.Error()}
	case crm.ClassPermission:
		return DeliverFailure{Class: FailurePermission, Message: err.Error()}
	}
	return DeliverFailure{Class: FailureTransient, Message: err.Error()}
}
