package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxPacedTokens is how many intake tokens the pacer tracks before it
// forgets the idle ones (a full bucket is an idle token's, and forgetting
// it changes nothing).
const maxPacedTokens = 10_000

// intakePacer paces intake per token: a token bucket per lead integration
// (each has one current intake token), filled at rate, holding burst.
type intakePacer struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newIntakePacer(r rate.Limit, burst int) *intakePacer {
	return &intakePacer{rate: r, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// take spends one lead of integration id's budget at now; when there is
// none left it spends nothing and returns how long until there is.
func (p *intakePacer) take(id string, now time.Time) (wait time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lim, found := p.buckets[id]
	if !found {
		if len(p.buckets) >= maxPacedTokens {
			p.forgetIdle(now)
		}
		lim = rate.NewLimiter(p.rate, p.burst)
		p.buckets[id] = lim
	}
	res := lim.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		// Not taken: a refused lead costs its sender nothing more.
		res.CancelAt(now)
		return delay, false
	}
	return 0, true
}

// forgetIdle drops the buckets that are full again (p.mu held).
func (p *intakePacer) forgetIdle(now time.Time) {
	for id, lim := range p.buckets {
		if lim.TokensAt(now) >= float64(p.burst) {
			delete(p.buckets, id)
		}
	}
}

// paced spends one lead of integration id's intake budget, or answers 429
// with Retry-After (whole seconds, at least 1) and reports false.
func (h *handler) paced(w http.ResponseWriter, id string) bool {
	wait, ok := h.pacer.take(id, h.now())
	if ok {
		return true
	}
	seconds := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(max(seconds, 1)))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many leads for %s: at most %g a second (bursts of %d); retry after %d s", id, float64(h.pacer.rate), h.pacer.burst, max(seconds, 1)))
	return false
}
