package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
)

// expiring is a connector whose credentials are the expiry time itself.
type expiring struct{ crm.Connector }

func (expiring) ExpiresAt(raw []byte) (time.Time, bool) {
	at, err := time.Parse(time.RFC3339, string(raw))
	return at, err == nil
}

func TestExpiresSoon(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) []byte { return []byte(now.Add(d).Format(time.RFC3339)) }
	c := expiring{}
	require.False(t, crm.ExpiresSoon(c, at(crm.RefreshAhead+time.Second), now))
	require.True(t, crm.ExpiresSoon(c, at(crm.RefreshAhead), now), "refreshed RefreshAhead before expiry")
	require.True(t, crm.ExpiresSoon(c, at(-time.Minute), now), "already expired")
	require.False(t, crm.ExpiresSoon(c, []byte("no expiry"), now))
	require.False(t, crm.ExpiresSoon(struct{ crm.Connector }{}, at(0), now), "a connector without expiries")
}
