package activities

import (
	"context"
	"time"

	"github.com/acme/integrations/store"
)

// CleanReason is cleanReason, for its table test.
var CleanReason = cleanReason

// SetPaging makes Deliver read pages of at most maxPage leads and stop
// reading after budget, so tests can page through small backlogs.
func (a *Activities) SetPaging(maxPage int, budget time.Duration) {
	a.paging.maxPage, a.paging.budget = maxPage, budget
}

// SetBudgetClock makes Deliver measure its budget on now instead of the
// wall clock.
func (a *Activities) SetBudgetClock(now func() time.Time) {
	a.paging.now = now
}

// OnRecorderFailure makes Deliver call fn once its recorder has failed to
// write outcomes and signalled the pusher to stop.
func (a *Activities) OnRecorderFailure(fn func()) {
	a.paging.recorderFailed = fn
}

// SetRefreshStore makes a refresh store its credentials through add
// instead of the store's AddCurrentCredential, waiting delay (doubling)
// between attempts.
func (a *Activities) SetRefreshStore(add func(ctx context.Context, integrationID string, renews int, seal store.SealFunc, at time.Time) (store.Credential, error), delay time.Duration) {
	a.refreshStore.add, a.refreshStore.delay = add, delay
}
