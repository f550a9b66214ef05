package followupboss

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
)

// rateHeaders are an answer's X-RateLimit-* headers.
func rateHeaders(limit, remaining, window, context string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{
		"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": remaining,
		"X-RateLimit-Window": window, "X-RateLimit-Context": context,
	} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

// requireHeld fails unless the account's next call is held for about an
// hour (the holds tested are an hour long), which the pacer answers at
// once as a rate limit with the time left.
func requireHeld(t *testing.T, c *Connector, acct string, held bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.pacer.Wait(ctx, acct)
	if held {
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr, "the account is held")
		require.Equal(t, crm.ClassRateLimited, crmErr.Class)
		require.Greater(t, crmErr.RetryAfter, 59*time.Minute, "the hold's remaining time")
	} else {
		require.NoError(t, err, "the account is not held")
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()

	t.Run("FromTheHeaders", func(t *testing.T) {
		b := setup(t)
		at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		b.connector.now = func() time.Time { return at }
		_, ok := b.connector.Quota(b.creds)
		require.False(t, ok, "nothing reported before any call")

		b.validate(t)
		q, ok := b.connector.Quota(b.creds)
		require.True(t, ok)
		require.Equal(t, crm.Quota{Remaining: 249, Limit: 250, Window: "10s", ObservedAt: at}, q)

		// A delivery's event counts in POST.events; the quota shown stays
		// the global one, the context validation and lookups count in.
		b.push(t, lead("1"))
		q, ok = b.connector.Quota(b.creds)
		require.True(t, ok)
		require.Equal(t, int64(248), q.Remaining)
		require.Equal(t, int64(250), q.Limit)

		_, ok = b.connector.Quota([]byte(`{"api_key":"another"}`))
		require.False(t, ok, "another account has reported nothing")
		_, ok = b.connector.Quota([]byte(`not json`))
		require.False(t, ok)
	})

	t.Run("UnregisteredSystem", func(t *testing.T) {
		b := setup(t)
		c := NewConnector(Config{APIURL: b.url, System: testSystem})
		require.Equal(t, crm.Limit{Calls: 125, Per: 10 * time.Second}, c.published, "without a system key Follow Up Boss allows 125")
		require.Equal(t, crm.Limit{Calls: 250, Per: 10 * time.Second}, b.connector.published)
		_, err := c.Validate(context.Background(), b.creds)
		require.NoError(t, err)
		q, ok := c.Quota(b.creds)
		require.True(t, ok)
		require.Equal(t, int64(125), q.Limit)
	})
}

func TestObserve(t *testing.T) {
	t.Parallel()
	const acct = "acct"
	global := crm.Limit{Calls: 250, Per: 10 * time.Second}

	observe := func(c *Connector, status int, h http.Header) {
		c.observe(acct, answer{status: status, header: h})
	}
	effective := func(c *Connector) crm.Limit {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.effective[acct]
	}

	t.Run("TightestContext", func(t *testing.T) {
		t.Parallel()
		c := NewConnector(Config{SystemKey: "k"})
		// A roomier context never lifts the pace above the published
		// global limit before Follow Up Boss states the global one.
		observe(c, http.StatusCreated, rateHeaders("1000", "999", "10", "POST.events"))
		require.Equal(t, global, effective(c))
		requireHeld(t, c, acct, false)

		observe(c, http.StatusOK, rateHeaders("400", "399", "10", "global"))
		require.Equal(t, crm.Limit{Calls: 400, Per: 10 * time.Second}, effective(c), "a raised global limit is used")

		// A context tighter than global sets the pace for every call, and
		// holds the account for one interval of the new limit: an hour here.
		observe(c, http.StatusCreated, rateHeaders("1", "1", "3600", "POST.events"))
		require.Equal(t, crm.Limit{Calls: 1, Per: time.Hour}, effective(c))
		requireHeld(t, c, acct, true)
	})

	t.Run("UnusableHeaders", func(t *testing.T) {
		t.Parallel()
		c := NewConnector(Config{SystemKey: "k"})
		for name, h := range map[string]http.Header{
			"none":              {},
			"limit not number":  rateHeaders("lots", "5", "10", "global"),
			"limit zero":        rateHeaders("0", "0", "10", "global"),
			"remaining missing": rateHeaders("250", "", "10", "global"),
			"remaining below 0": rateHeaders("250", "-1", "10", "global"),
		} {
			observe(c, http.StatusOK, h)
			_, ok := c.Quota([]byte(`{"api_key":"x"}`))
			require.False(t, ok, name)
			c.mu.Lock()
			require.Empty(t, c.limits[acct], name)
			c.mu.Unlock()
		}
		// A window that makes no sense is Follow Up Boss's 10 seconds.
		for _, window := range []string{"", "0", "-5", "ten", "999999"} {
			require.Equal(t, 10*time.Second, windowOf(rateHeaders("", "", window, "")), window)
		}
		require.Equal(t, 2*time.Second, windowOf(rateHeaders("", "", " 2 ", "")))
	})

	t.Run("TooManyRequestsHolds", func(t *testing.T) {
		t.Parallel()
		c := NewConnector(Config{SystemKey: "k"})
		h := rateHeaders("250", "0", "10", "global")
		h.Set("Retry-After", "3600")
		observe(c, http.StatusTooManyRequests, h)
		requireHeld(t, c, acct, true)
		requireHeld(t, c, "another account", false)

		err := c.statusError(answer{status: http.StatusTooManyRequests, header: h}, http.MethodGet, pathPeople)
		require.Equal(t, crm.ClassRateLimited, err.Class)
		require.Equal(t, time.Hour, err.RetryAfter)

		// Without Retry-After, the window.
		err = c.statusError(answer{status: http.StatusTooManyRequests, header: rateHeaders("3", "0", "2", "global")}, http.MethodGet, pathPeople)
		require.Equal(t, 2*time.Second, err.RetryAfter)
	})
}
