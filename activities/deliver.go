package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// Deliver pushes the oldest pending leads of a CRM integration to its CRM in
// one batch and records each lead's outcome. Delivery is idempotent on the
// CRM side (the lead ID is the record key), so a retried batch never creates
// a second record. Failures of the CRM are returned as a result for the
// workflow to judge; only our own (database) errors are activity errors.
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
	// Batches follow each other within one activity for up to
	// deliverBudget, so the round trip through Temporal is paid once per
	// budget, not once per batch, while a backlog drains.
	var raw []byte
	var total DeliverResult
	started := time.Now()
	for {
		fetch := min(store.MaxPendingLimit, connector.BatchLimit()*deliverChunks)
		pending, err := a.Store.PendingDeliveries(ctx, in.IntegrationID, fetch)
		if err != nil {
			return total, fmt.Errorf("deliver %s: load pending leads: %w", in.IntegrationID, err)
		}
		if len(pending) == 0 {
			total.More = false
			return total, nil
		}
		if raw == nil {
			var failure *DeliverFailure
			raw, failure, err = a.credentials(ctx, in.IntegrationID)
			if err != nil || failure != nil {
				total.Failure = failure
				return total, err
			}
		}
		res, err := a.deliverRound(ctx, in.IntegrationID, connector, &raw, pending, fetch)
		if err != nil {
			return total, err
		}
		total.Delivered += res.Delivered
		total.Rejected += res.Rejected
		total.More, total.Failure = res.More, res.Failure
		if res.Failure != nil || !res.More || time.Since(started) >= deliverBudget || ctx.Err() != nil {
			return total, nil
		}
	}
}

// deliverBudget is how long one Deliver activity keeps taking batches.
const deliverBudget = 2 * time.Second

// deliverChunks is how many CRM batches one database round covers: the
// pending leads of several batches are read at once and their outcomes
// recorded in one statement, so the database costs are shared.
const deliverChunks = 5

// deliverRound pushes pending leads in batches of the connector's limit
// and records the outcomes of every batch the CRM answered. A failing batch
// ends the round: what was delivered before it is recorded, the rest waits.
func (a *Activities) deliverRound(ctx context.Context, id string, connector crm.Connector, raw *[]byte, pending []store.Delivery, fetched int) (DeliverResult, error) {
	var out DeliverResult
	completed := make([]store.DeliveryResult, 0, len(pending))
	limit := connector.BatchLimit()
	for start := 0; start < len(pending); start += limit {
		chunk := pending[start:min(start+limit, len(pending))]
		results, failure, err := a.pushChunk(ctx, id, connector, raw, chunk)
		if err != nil {
			return DeliverResult{}, err
		}
		if failure != nil {
			out.Failure = failure
			break
		}
		for i, r := range results {
			res := store.DeliveryResult{LeadID: chunk[i].Lead.ID, CRMRecordID: r.CRMID, Status: "delivered"}
			if r.Status == crm.RecordRejected {
				res.Status, res.Reason = "rejected", r.Reason
				out.Rejected++
			} else {
				out.Delivered++
			}
			completed = append(completed, res)
		}
	}
	if len(completed) > 0 {
		if err := a.Store.CompleteDeliveries(ctx, id, completed, time.Now().UTC()); err != nil {
			// Retried by Temporal: the CRM upserts by key, so pushing the
			// same leads again creates nothing new.
			return DeliverResult{}, fmt.Errorf("deliver %s: record outcomes: %w", id, err)
		}
	}
	out.More = out.Failure == nil && len(pending) == fetched
	return out, nil
}

// pushChunk pushes one batch. A CRM-side failure comes back as a
// DeliverFailure (transient ones also counted on the leads); an error is
// ours. raw is replaced when the credentials were refreshed.
func (a *Activities) pushChunk(ctx context.Context, id string, connector crm.Connector, raw *[]byte, chunk []store.Delivery) ([]crm.RecordResult, *DeliverFailure, error) {
	records := make([]crm.Record, len(chunk))
	ids := make([]int64, len(chunk))
	for i, d := range chunk {
		l := d.Lead
		ids[i] = l.ID
		records[i] = crm.Record{
			Key: strconv.FormatInt(l.ID, 10), Source: l.Source, Name: l.Name, Email: l.Email,
			Phone: l.Phone, Message: l.Message, Attributes: l.Attributes,
		}
	}
	results, err := connector.Push(ctx, *raw, records)
	if crm.ClassOf(err) == crm.ClassAuth {
		// An expired access token of a refreshable grant (OAuth) is
		// refreshed, re-stored, and the batch retried once.
		if fresh, ok := a.refresh(ctx, id, connector, *raw); ok {
			*raw = fresh
			results, err = connector.Push(ctx, fresh, records)
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

// refresh renews credentials through a Refresher connector, stores the new
// version sealed, and reports whether there is one to retry with.
func (a *Activities) refresh(ctx context.Context, id string, connector crm.Connector, raw []byte) ([]byte, bool) {
	refresher, ok := connector.(crm.Refresher)
	if !ok {
		return nil, false
	}
	fresh, err := refresher.Refresh(ctx, raw)
	if err != nil {
		a.logger().Warn("credential refresh failed", "integration", id, "class", crm.ClassOf(err), "error", err.Error())
		return nil, false
	}
	sealed, err := a.Keyring.Seal(fresh, []byte(id))
	if err == nil {
		_, err = a.Store.SaveCredential(ctx, id, sealed, time.Now().UTC())
	}
	if err != nil {
		a.logger().Error("refreshed credentials not stored", "integration", id, "error", err.Error())
		return nil, false
	}
	return fresh, true
}

// credentials opens the integration's latest credentials; a missing or
// unreadable one is an auth failure for the workflow to validate.
func (a *Activities) credentials(ctx context.Context, id string) ([]byte, *DeliverFailure, error) {
	cred, err := a.Store.LatestCredential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &DeliverFailure{Class: FailureAuth, Message: "no credentials are stored"}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("deliver %s: load credentials: %w", id, err)
	}
	raw, err := a.Keyring.Open(cred.Ciphertext, []byte(id))
	if err != nil {
		return nil, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("deliver %s: cannot decrypt credentials version %d; check the encryption key", id, cred.Version), "CredentialDecrypt", nil)
	}
	return raw, nil, nil
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
