package activities

import "time"

// SetPaging makes Deliver read pages of at most maxPage leads and stop
// reading after budget, so tests can page through small backlogs.
func (a *Activities) SetPaging(maxPage int, budget time.Duration) {
	a.paging.maxPage, a.paging.budget = maxPage, budget
}
