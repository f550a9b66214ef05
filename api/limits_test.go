package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// bodyLimit is the documented cap on every request body.
const bodyLimit = 64 << 10

// padded returns the JSON object body grown to exactly n bytes with
// whitespace before its closing brace (whitespace the decoder reads).
func padded(t *testing.T, n int, body string) string {
	t.Helper()
	require.True(t, strings.HasSuffix(body, "}"), body)
	out := body[:len(body)-1] + strings.Repeat(" ", n-len(body)) + "}"
	require.Len(t, out, n)
	return out
}

// TestBodyLimitBoundary: a body of 64 KiB - 1 and of exactly 64 KiB is
// taken, one byte over 64 KiB is refused with 413 and stores nothing, on a
// command route and on lead intake.
func TestBodyLimitBoundary(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupIntake(t, db)

		// A command route.
		before := b.snapshot(t, b.crm)
		over := padded(t, bodyLimit+1, `{"by": "ops", "note": "over the limit"}`)
		msg := b.fail(t, http.StatusRequestEntityTooLarge, http.MethodPost, integrationPath(b.crm, "pause"), over)
		require.Contains(t, msg, "64 KiB")
		b.requireUnchanged(t, b.crm, before)

		v := b.command(t, b.crm, "pause", padded(t, bodyLimit-1, `{"by": "ops", "note": "just under the limit"}`))
		requireStatus(t, v, integration.StatusPaused, integration.ReasonManual)
		changes := b.events(t, b.crm)
		require.Equal(t, "just under the limit", changes[len(changes)-1].Note)
		v = b.command(t, b.crm, "resume", padded(t, bodyLimit, `{"by": "ops", "note": "at the limit"}`))
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)

		// Lead intake (the lead integration is in setup: a stored lead
		// would also move its tracker).
		auth := bearer(b.token)
		leadBefore, leadsBefore, deliveriesBefore := b.snapshot(t, b.lead), b.leadCount(t, b.lead), b.deliveries(t)
		r := b.doWithHeader(t, http.MethodPost, leadPath(b.lead), padded(t, bodyLimit+1, leadJSON(t, "limit-over", "Z")), auth)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
		require.Contains(t, errorMessage(t, r), "64 KiB")
		require.Equal(t, leadsBefore, b.leadCount(t, b.lead), "no lead may be stored")
		require.Equal(t, deliveriesBefore, b.deliveries(t), "no delivery may be queued")
		b.requireUnchanged(t, b.lead, leadBefore)

		under := b.send(t, http.StatusAccepted, auth, b.lead, padded(t, bodyLimit-1, leadJSON(t, "limit-under", "Z")))
		require.False(t, under.Duplicate)
		at := b.send(t, http.StatusAccepted, auth, b.lead, padded(t, bodyLimit, leadJSON(t, "limit-at", "Z")))
		require.False(t, at.Duplicate)
		require.Equal(t, leadsBefore+2, b.leadCount(t, b.lead))
		// The refused lead's external ID is new to the service.
		again := b.send(t, http.StatusAccepted, auth, b.lead, leadJSON(t, "limit-over", "Z"))
		require.False(t, again.Duplicate, "the refused lead was not stored")
		requireStatus(t, b.get(t, b.lead), integration.StatusSetupIncomplete, integration.ReasonAwaitingSetupCompletion)

		b.requireNoPII(t)
	})
}
