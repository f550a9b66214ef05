package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/store"
)

// DeliverInput names the CRM integration whose pending leads to deliver.
type DeliverInput struct {
	IntegrationID string `json:"integration_id"`
	Provider      string `json:"provider"`
}

// DeliverResult is the outcome of one batch: counts only, so no lead data
// enters workflow history.
type DeliverResult struct {
	Delivered int `json:"delivered"`
	Rejected  int `json:"rejected"`
	// GaveUp counts the leads this run set aside (see Deliver).
	GaveUp int `json:"gave_up,omitempty"`
	// More is true when the batch was full: more leads may be pending.
	More    bool            `json:"more"`
	Failure *DeliverFailure `json:"failure,omitempty"`
}

// Deliver pushes the pending leads of a CRM integration to its CRM, oldest
// first, in batches of the connector's limit, and records each lead's
// outcome. Delivery is idempotent on the CRM side (the lead ID is the
// record key), so a retried batch never creates a second record. Failures
// of the CRM are returned as a result for the workflow to judge; only our
// own (database) errors are activity errors, whose messages say so in our
// words (the detail is logged): the workflow shows them to customers.
//
// No lead stalls the others:
//
//   - A batch the CRM refuses as a whole for what it carries
//     (crm.ClassBatchRejected: a 400 or 413 for the batch) is split in
//     halves, and the halves pushed, until the records at fault are found:
//     a refused batch of one lead is that lead's rejection, with the CRM's
//     class, HTTP status and error code as its reason. The rest is
//     delivered, each lead once.
//   - A lead that keeps failing on its own is set aside (gave_up) once it
//     has failed on its own Activities.MaxDeliveryAttempts times. On its
//     own means: pushed alone, it failed, and the CRM answered the very
//     next call, of other leads. A lead that has been in a failed call
//     (attempts > 0) is pushed alone, between the batches of the others;
//     when it fails, the next call is one other lead (the probe); if the
//     CRM answers it, the failure was the lead's own, and if the probe
//     fails too, the CRM is what fails and the run ends. So a CRM outage,
//     where every call fails, sets nothing aside: it costs a call or two
//     per attempt and counts attempts only, while a lead the CRM fails on
//     (and only on) is found while the others flow. A batch that fails as
//     a whole ends the run, as an outage would; its leads, which now have
//     attempts, go alone from the next run on.
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
		page:        min(maxPage, batch*max(1, maxPage/batch)),
		budget:      cmp.Or(a.paging.budget, deliverBudget),
		maxAttempts: a.maxDeliveryAttempts()}
	res, err := p.run(ctx)
	a.saveQuota(ctx, in.IntegrationID, connector, p.creds)
	return res, err
}

// DefaultMaxDeliveryAttempts is how many failures of its own set a lead
// aside when Activities.MaxDeliveryAttempts is not set.
const DefaultMaxDeliveryAttempts = 10

// maxDeliveryAttempts is the configured limit, or the default.
func (a *Activities) maxDeliveryAttempts() int {
	if a.MaxDeliveryAttempts > 0 {
		return a.MaxDeliveryAttempts
	}
	return DefaultMaxDeliveryAttempts
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
	// maxAttempts is how many failures of its own set a lead aside.
	maxAttempts int
	// awaiting is the lead that failed alone, waiting for the verdict of
	// the probe pushed after it, with its failure; nil when none.
	awaiting        *store.Delivery
	awaitingFailure *DeliverFailure
	// gaveUp counts the leads the run set aside.
	gaveUp int
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

	recorded.GaveUp = p.gaveUp
	switch {
	case ctx.Err() != nil:
		// Cancelled or timed out: whatever was recorded stays, but an
		// empty result must not pass for "nothing pending".
		return recorded, ctx.Err()
	case pushErr != nil:
		return recorded, p.ours(pushErr)
	case recordErr != nil:
		return recorded, p.ours(recordErr)
	case readErr != nil:
		return recorded, p.ours(readErr)
	}
	if failure == nil && !more && p.awaiting != nil {
		// A lead failed alone and nothing was left to probe with: the
		// CRM may be down, so the failure stands, and counts as nobody's.
		failure = p.awaitingFailure
	}
	recorded.Failure = failure
	recorded.More = more && failure == nil
	return recorded, nil
}

// storeError is a failure of our own database during a run: stage says
// what was being done, in words a customer may read.
type storeError struct {
	stage string
	err   error
}

func (e *storeError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// ours turns an error of our own side into what Deliver returns. The
// workflow shows its message to customers ("delivery could not run: ..."),
// so a database error says what was being done and that it is retried, and
// its detail goes to the worker's log only. Errors that already say what to
// fix in our words (credentials that do not decrypt) pass as they are.
func (p *pipeline) ours(err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return err
	}
	stage := "delivery"
	var se *storeError
	if errors.As(err, &se) {
		stage = se.stage
	}
	p.acts.logger().Error("delivery failed on our side", "integration", p.id, "stage", stage, "error", err.Error())
	return temporal.NewApplicationError(
		fmt.Sprintf("%s: our database failed (the worker's log has the details); it is retried", stage), "DeliveryStore")
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
			recordErr = &storeError{stage: "record outcomes", err: err}
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
			return &storeError{stage: "load pending leads", err: err}
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

// push pushes one page, batch by batch as plan orders it, and hands the
// outcomes of each batch the CRM answered to the recorder. A batch the CRM
// refuses for what it carries is split, its halves pushed next; a lead
// that fails alone is followed by a probe (see Deliver). A failing batch
// otherwise ends the page (and the run): what was delivered before it is
// recorded, the rest waits. So does a failed write of the recorder, and a
// spent budget once the run pushed a batch (so a slow CRM cannot hold one
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
	queue := p.plan(page.deliveries)
	for len(queue) > 0 && !closed(p.recorderFailed) {
		if p.pushed > 0 && p.spent() {
			return nil, true, nil
		}
		chunk := queue[0]
		if p.awaiting != nil && len(chunk) > 1 {
			// The probe: one lead, so that if it fails too, no batch of
			// leads gains attempts for what is likely an outage.
			queue[0], chunk = chunk[1:], chunk[:1]
		} else {
			queue = queue[1:]
		}
		p.pushed++
		results, failure, err := p.acts.pushChunk(ctx, p.id, p.connector, p.creds, chunk)
		if err != nil {
			return nil, false, err
		}
		switch {
		case failure == nil:
			if err := p.answered(ctx); err != nil {
				return nil, false, err
			}
			completed := make([]store.DeliveryResult, len(results))
			for i, r := range results {
				completed[i] = store.DeliveryResult{LeadID: chunk[i].Lead.ID, CRMRecordID: r.CRMID, Status: store.DeliveryDelivered}
				if r.Status == crm.RecordRejected {
					completed[i].Status, completed[i].Reason = store.DeliveryRejected, cleanReason(r.Reason, chunk[i].Lead)
				}
			}
			p.outcomes <- completed
		case failure.Class == failureRefused && len(chunk) > 1:
			// The CRM is up and judging what it is sent: split the batch
			// until the records at fault stand alone.
			if err := p.answered(ctx); err != nil {
				return nil, false, err
			}
			half := len(chunk) / 2
			queue = append([][]store.Delivery{chunk[:half], chunk[half:]}, queue...)
		case failure.Class == failureRefused:
			if err := p.answered(ctx); err != nil {
				return nil, false, err
			}
			p.outcomes <- []store.DeliveryResult{{LeadID: chunk[0].Lead.ID, Status: store.DeliveryRejected,
				Reason: "refused by the CRM when sent on its own: " + failure.summary}}
		case failure.Class == FailureTransient && len(chunk) == 1 && p.awaiting == nil:
			// Alone and failing: the lead's fault or the CRM's? The next
			// call, of another lead, tells.
			p.awaiting, p.awaitingFailure = &chunk[0], failure
		default:
			// A batch failing as a whole, a probe failing after the lead
			// before it, a rate limit, the credentials: the CRM's state,
			// for the workflow to judge.
			return failure, false, nil
		}
	}
	return nil, page.full, nil
}

// plan orders a page's deliveries into the batches to push: leads that
// have been in a failed call (attempts > 0) alone, fewest attempts first,
// each followed by a batch of the others, which go in lead order in
// batches of the connector's limit. A lead that fails alone is then
// probed by a lead of the batch after it, which has not failed before,
// so two leads that fail do not meet as lead and probe while others are
// pending; and leads whose failures did not count come before the ones
// that keep failing.
func (p *pipeline) plan(deliveries []store.Delivery) [][]store.Delivery {
	var suspects, rest []store.Delivery
	for i, d := range deliveries {
		if d.Attempts == 0 {
			continue
		}
		if suspects == nil {
			// Most pages have none: split only those that do.
			rest = slices.Clone(deliveries[:i])
		}
		suspects = append(suspects, d)
	}
	if suspects == nil {
		return slices.Collect(slices.Chunk(deliveries, p.batch))
	}
	for _, d := range deliveries[len(rest):] {
		if d.Attempts == 0 {
			rest = append(rest, d)
		}
	}
	slices.SortStableFunc(suspects, func(a, b store.Delivery) int { return cmp.Compare(a.Attempts, b.Attempts) })
	batches := slices.Collect(slices.Chunk(rest, p.batch))
	out := make([][]store.Delivery, 0, len(suspects)+len(batches))
	for i := 0; i < len(suspects) || i < len(batches); i++ {
		if i < len(suspects) {
			out = append(out, suspects[i:i+1])
		}
		if i < len(batches) {
			out = append(out, batches[i])
		}
	}
	return out
}

// answered is told that the CRM answered a call (delivered, rejected or
// refused what it was sent): a lead awaiting the verdict failed on its
// own, and gains a failure of its own; at maxAttempts it is set aside.
func (p *pipeline) answered(ctx context.Context) error {
	if p.awaiting == nil {
		return nil
	}
	lead, failure := p.awaiting, p.awaitingFailure
	p.awaiting, p.awaitingFailure = nil, nil
	reason := fmt.Sprintf("gave up after %d failures of its own (each time the CRM took other leads right after it); last error: %s",
		p.maxAttempts, failure.Message)
	gaveUp, err := p.acts.Store.RecordSoloFailures(ctx, p.id, []int64{lead.Lead.ID}, p.maxAttempts, reason, time.Now().UTC())
	if err != nil {
		return &storeError{stage: "record a failure", err: err}
	}
	p.acts.logger().Warn("a lead failed on its own", "integration", p.id, "lead", lead.Lead.ID, "gave_up", len(gaveUp) > 0, "error", failure.Message)
	p.gaveUp += len(gaveUp)
	return nil
}

// pushChunk pushes one batch. A CRM-side failure comes back as a
// DeliverFailure (transient ones and refusals also counted on the leads,
// as attempts); an error is ours. creds are replaced when the credentials
// were refreshed.
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
		fresh, ok, unavailable := a.refresh(ctx, id, connector, *creds)
		switch {
		case ok:
			*creds = fresh
			results, err = connector.Push(ctx, fresh.raw, records)
		case unavailable != nil:
			// Not the grant's fault: fail as the token endpoint did
			// (transient, rate limited), not as an auth failure that
			// would validate and pause.
			err = unavailable
		}
	}
	if err != nil {
		failure := classify(err)
		// A refused batch counts too: its leads go alone next time, so a
		// run cut short while splitting it does not start over.
		if failure.Class == FailureTransient || failure.Class == failureRefused {
			if ferr := a.Store.RecordDeliveryFailure(ctx, id, ids, failure.Message); ferr != nil {
				return nil, nil, &storeError{stage: "record a failure", err: ferr}
			}
		}
		a.logger().Warn("delivery failed", "integration", id, "leads", len(records), "class", failure.Class, "error", failure.Message, "detail", err.Error())
		return nil, &failure, nil
	}
	if len(results) != len(records) {
		return nil, &DeliverFailure{Class: FailureTransient, Message: fmt.Sprintf("crm transient: the CRM answered %d results for %d records", len(results), len(records))}, nil
	}
	return results, nil, nil
}
