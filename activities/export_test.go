package activities

import "time"

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
