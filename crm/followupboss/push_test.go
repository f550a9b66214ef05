package followupboss

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/followupboss/followupbossfake"
)

// lead is a record full of lead data.
func lead(key string) crm.Record {
	return crm.Record{
		Key:        key,
		Source:     "Zillow Premier",
		Name:       "Ada King Lovelace",
		FirstName:  "Ada",
		LastName:   "Lovelace",
		Company:    "Analytical Engines <Ltd>",
		Email:      "ada@example.com",
		Phone:      "+1 555 0100",
		Message:    "Looking for a house & a garden",
		Attributes: map[string]any{"budget": 450000, "area": "Boston", "rooms": []any{3, 4}},
	}
}

// leadData is the lead's data, which no error or reason may contain.
func leadData(r crm.Record) []string {
	return []string{r.Name, r.FirstName, r.LastName, r.Email, r.Phone, r.Message, r.Company, "Boston"}
}

// push pushes one record, which must be answered one to one.
func (b *testBundle) push(t *testing.T, rec crm.Record) crm.RecordResult {
	t.Helper()
	results, err := b.connector.Push(context.Background(), b.creds, []crm.Record{rec})
	require.NoError(t, err)
	require.NoError(t, crm.CheckResults([]crm.Record{rec}, results))
	b.requireClean(t, results[0].Reason+results[0].CRMID, leadData(rec)...)
	return results[0]
}

// pushError pushes one record, which must fail as a whole.
func (b *testBundle) pushError(t *testing.T, rec crm.Record) *crm.Error {
	t.Helper()
	results, err := b.connector.Push(context.Background(), b.creds, []crm.Record{rec})
	require.Error(t, err)
	require.Nil(t, results)
	b.requireClean(t, err.Error(), leadData(rec)...)
	require.Contains(t, err.Error(), "lead "+rec.Key, "the error names the lead by key")
	var crmErr *crm.Error
	require.ErrorAs(t, err, &crmErr)
	return crmErr
}

func (b *testBundle) events(t *testing.T) []followupbossfake.Event {
	t.Helper()
	events, err := b.fake.Events(context.Background(), b.account.APIKey)
	require.NoError(t, err)
	return events
}

func TestPushMapping(t *testing.T) {
	t.Parallel()

	t.Run("Full", func(t *testing.T) {
		b := setup(t)
		rec := lead("42")
		res := b.push(t, rec)
		require.Equal(t, crm.RecordDelivered, res.Status)
		require.NotEmpty(t, res.CRMID)

		events := b.events(t)
		require.Len(t, events, 1)
		got := events[0]
		require.Equal(t, res.CRMID, strconv.Itoa(got.PersonID), "the CRM ID is the contact's")
		got.ID, got.PersonID = 0, 0
		require.Equal(t, followupbossfake.Event{
			At: got.At, Status: http.StatusCreated,
			Type: "General Inquiry", Source: "Zillow Premier", System: testSystem,
			Message:   "Looking for a house & a garden\n\nCompany: Analytical Engines <Ltd>\narea: Boston\nbudget: 450000\nrooms: [3,4]",
			FirstName: "Ada", LastName: "Lovelace",
			Emails: []string{"ada@example.com"}, Phones: []string{"+1 555 0100"}, Tags: []string{"lead-id:42"},
		}, got)

		require.Equal(t, []string{"GET /v1/people", "POST /v1/events"}, b.apiCalls(), "a lookup, then the event")
		var lookup, post seen
		for _, r := range b.front.seen() {
			switch r.path {
			case "/v1/people":
				lookup = r
			case "/v1/events":
				post = r
			}
		}
		require.Equal(t, "application/json", post.header.Get("Content-Type"))
		require.Contains(t, string(post.body), `<Ltd>`, "no HTML escaping: a lead stays its size")
		require.Contains(t, string(post.body), `& a garden`)
		require.Equal(t, "fields=id%2Ctags&limit=10&tags=lead-id%3A42", lookup.query)
	})

	t.Run("Names", func(t *testing.T) {
		b := setup(t)
		for i, tc := range []struct {
			rec         crm.Record
			first, last string
		}{
			// The one rule of integration.SplitName.
			{crm.Record{Name: "Ada King Lovelace", Email: "a@example.com"}, "Ada King", "Lovelace"},
			{crm.Record{Name: "  Cher ", Email: "b@example.com"}, "", "Cher"},
			{crm.Record{Name: "Ada Lovelace", FirstName: "Augusta", Email: "c@example.com"}, "Augusta", ""},
			{crm.Record{Name: "Ada Lovelace", LastName: "Byron", Email: "d@example.com"}, "", "Byron"},
			{crm.Record{Email: "e@example.com"}, "", ""},
		} {
			tc.rec.Key, tc.rec.Source = strconv.Itoa(i), "partner"
			require.Equal(t, crm.RecordDelivered, b.push(t, tc.rec).Status)
			ev := b.events(t)[i]
			require.Equal(t, tc.first, ev.FirstName, "record %d", i)
			require.Equal(t, tc.last, ev.LastName, "record %d", i)
		}
	})

	t.Run("Message", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct {
			rec  crm.Record
			want string
		}{
			"message only": {crm.Record{Message: "hi"}, "hi"},
			"nothing":      {crm.Record{}, ""},
			"company only": {crm.Record{Company: "Acme"}, "Company: Acme"},
			"attributes":   {crm.Record{Message: "hi", Attributes: map[string]any{"b": "x", "a": true, "c": nil}}, "hi\n\na: true\nb: x\nc: null"},
		} {
			require.Equal(t, tc.want, message(tc.rec), name)
		}
	})
}

func TestPushIdempotent(t *testing.T) {
	t.Parallel()

	t.Run("RepeatIsFoundNotResent", func(t *testing.T) {
		b := setup(t)
		rec := lead("7")
		first := b.push(t, rec)
		again := b.push(t, rec)
		require.Equal(t, first, again, "the same contact, delivered")
		require.Len(t, b.events(t), 1, "no second event: the agent is not notified twice")
		require.Equal(t, []string{"GET /v1/people", "POST /v1/events", "GET /v1/people"}, b.apiCalls())

		// Another lead of the same person is a new event on the same contact.
		other := lead("8")
		res := b.push(t, other)
		require.Equal(t, first.CRMID, res.CRMID)
		require.Len(t, b.events(t), 2)
	})

	t.Run("LookupOnlyTrustsTheTag", func(t *testing.T) {
		b := setup(t)
		// A search that ignores its filter answers people without our tag.
		b.front.answer(func(r *http.Request) (int, http.Header, string, bool) {
			if r.URL.Path != "/v1/people" {
				return 0, nil, "", false
			}
			return http.StatusOK, nil, `{"_metadata":{"total":1},"people":[{"id":99,"tags":["lead-id:70","Buyer"]}]}`, true
		})
		res := b.push(t, lead("7"))
		require.NotEqual(t, "99", res.CRMID)
		require.Len(t, b.events(t), 1, "no contact carries lead-id:7: the lead is sent")
	})

	t.Run("LookupRefusedIsSkipped", func(t *testing.T) {
		b := setup(t)
		for _, status := range []int{http.StatusBadRequest, http.StatusNotFound} {
			b.front.answer(func(r *http.Request) (int, http.Header, string, bool) {
				return status, nil, `{"errorMessage":"Unknown parameter tags"}`, r.URL.Path == "/v1/people"
			})
			require.Equal(t, crm.RecordDelivered, b.push(t, lead("9")).Status)
		}
		require.Len(t, b.events(t), 2, "without the lookup a repeat is sent again: the documented exposure")
	})

	t.Run("CommaKeyIsNotLookedUp", func(t *testing.T) {
		b := setup(t)
		rec := lead("a,b")
		require.Equal(t, crm.RecordDelivered, b.push(t, rec).Status)
		require.Equal(t, []string{"POST /v1/events"}, b.apiCalls())
	})

	t.Run("LookupFailures", func(t *testing.T) {
		b := setup(t)
		for status, class := range map[int]crm.ErrorClass{
			http.StatusUnauthorized:        crm.ClassAuth,
			http.StatusForbidden:           crm.ClassPermission,
			http.StatusInternalServerError: crm.ClassTransient,
		} {
			b.front.answer(func(r *http.Request) (int, http.Header, string, bool) {
				return status, nil, `{"errorMessage":"no"}`, r.URL.Path == "/v1/people"
			})
			err := b.pushError(t, lead("5"))
			require.Equal(t, class, err.Class, "HTTP %d", status)
			require.Equal(t, status, err.StatusCode)
		}
		b.front.answer(func(r *http.Request) (int, http.Header, string, bool) {
			return http.StatusOK, nil, `{"people": "nope"}`, r.URL.Path == "/v1/people"
		})
		require.Equal(t, crm.ClassTransient, b.pushError(t, lead("5")).Class, "an answer that is not a list")
		require.Empty(t, b.events(t), "a failed lookup sends nothing")
	})
}

func TestPushOutcomes(t *testing.T) {
	t.Parallel()

	t.Run("ArchivedLeadFlow", func(t *testing.T) {
		b := setup(t)
		archived := []string{"Zillow Premier"}
		_, err := b.fake.UpdateFaults(context.Background(), b.account.APIKey, followupbossfake.FaultsUpdate{ArchivedSources: &archived})
		require.NoError(t, err)
		res := b.push(t, lead("3"))
		require.Equal(t, crm.RecordResult{Key: "3", Status: crm.RecordRejected, Reason: ReasonArchivedLeadFlow}, res)
		require.Empty(t, b.events(t))
	})

	t.Run("Rejections", func(t *testing.T) {
		b := setup(t)
		for field, reason := range map[string]string{
			"email":     ReasonInvalidEmail,
			"phone":     ReasonInvalidPhone,
			"firstName": ReasonInvalidName,
			"lastName":  ReasonInvalidName,
			"message":   ReasonRefused,
			"source":    ReasonRefused,
		} {
			contains := map[string]string{"email": "ada@", "phone": "555", "firstName": "Ada", "lastName": "Love", "message": "garden", "source": "Zillow"}[field]
			_, err := b.fake.UpdateFaults(context.Background(), b.account.APIKey, followupbossfake.FaultsUpdate{RejectField: &field, RejectContains: &contains})
			require.NoError(t, err)
			res := b.push(t, lead("r-"+field))
			require.Equal(t, crm.RecordResult{Key: "r-" + field, Status: crm.RecordRejected, Reason: reason}, res, field)
		}
		require.Empty(t, b.events(t))

		// The fake's own check: an email without "@", quoted in its message.
		require.NoError(t, b.fake.ClearFaults(context.Background(), b.account.APIKey))
		bad := lead("r-native")
		bad.Email = "ada.example.com"
		require.Equal(t, ReasonInvalidEmail, b.push(t, bad).Reason)
	})

	t.Run("WholeCallFailures", func(t *testing.T) {
		b := setup(t)
		for name, tc := range map[string]struct {
			status int
			body   string
			class  crm.ErrorClass
		}{
			"400 not Follow Up Boss's": {http.StatusBadRequest, `<html>Bad Request</html>`, crm.ClassTransient},
			"413":                      {http.StatusRequestEntityTooLarge, `Request Entity Too Large`, crm.ClassBatchRejected},
			"404":                      {http.StatusNotFound, `{"errorMessage":"Not found"}`, crm.ClassTransient},
			"401":                      {http.StatusUnauthorized, ``, crm.ClassAuth},
			"403":                      {http.StatusForbidden, `{"errorMessage":"Forbidden"}`, crm.ClassPermission},
			"503":                      {http.StatusServiceUnavailable, ``, crm.ClassTransient},
		} {
			b.front.answer(func(r *http.Request) (int, http.Header, string, bool) {
				return tc.status, nil, tc.body, r.URL.Path == "/v1/events"
			})
			err := b.pushError(t, lead("w"))
			require.Equal(t, tc.class, err.Class, name)
			require.Equal(t, tc.status, err.StatusCode, name)
			require.Contains(t, err.Error(), "POST /v1/events", name)
		}
	})

	t.Run("ALongRetryAfterFailsTheNextCallsAtOnce", func(t *testing.T) {
		b := setup(t)
		one, hour := 1, 3600
		_, err := b.fake.UpdateFaults(context.Background(), b.account.APIKey, followupbossfake.FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &hour})
		require.NoError(t, err)
		first := b.pushError(t, lead("h"))
		require.Equal(t, crm.ClassRateLimited, first.Class)
		require.Equal(t, time.Hour, first.RetryAfter)
		calls := len(b.apiCalls())

		// The account is held for the hour Follow Up Boss asked for: a push
		// and a validation fail at once with the time left, rather than
		// wait until their deadline and fail as a timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = b.connector.Push(ctx, b.creds, []crm.Record{lead("h")})
		var held *crm.Error
		require.ErrorAs(t, err, &held)
		require.Equal(t, crm.ClassRateLimited, held.Class, "%v", err)
		require.Greater(t, held.RetryAfter, 59*time.Minute)
		b.requireClean(t, err.Error(), leadData(lead("h"))...)
		_, err = b.connector.Validate(ctx, b.creds)
		require.Equal(t, crm.ClassRateLimited, crm.ClassOf(err), "%v", err)
		require.NoError(t, ctx.Err(), "neither waited for the deadline")
		require.Len(t, b.apiCalls(), calls, "held without a call to Follow Up Boss")
		require.Empty(t, b.events(t))
	})

	t.Run("SuccessWithoutID", func(t *testing.T) {
		b := setup(t)
		b.front.answer(func(r *http.Request) (int, http.Header, string, bool) {
			return http.StatusCreated, nil, `not json`, r.URL.Path == "/v1/events"
		})
		require.Equal(t, crm.RecordResult{Key: "s", Status: crm.RecordDelivered}, b.push(t, lead("s")))
	})

	t.Run("ExpiredAccount", func(t *testing.T) {
		b := setup(t)
		_, err := b.fake.Expire(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		// The lookup is refused during the grace period: the push fails
		// with a permission error, validation then pauses the integration,
		// and the lead waits with us until the account is reactivated.
		require.Equal(t, crm.ClassPermission, b.pushError(t, lead("e")).Class)
		require.Empty(t, b.events(t))
	})

	t.Run("UnusableCredentials", func(t *testing.T) {
		b := setup(t)
		_, err := b.connector.Push(context.Background(), []byte(`{}`), []crm.Record{lead("u")})
		require.Equal(t, crm.ClassAuth, crm.ClassOf(err))
		require.Empty(t, b.apiCalls())
	})
}

func TestEncodeEvent(t *testing.T) {
	t.Parallel()
	data, err := encodeEvent(eventRequest{Type: EventType, Message: "<b>&", Person: personRequest{Tags: []string{"lead-id:1"}}})
	require.NoError(t, err)
	require.JSONEq(t, `{"type":"General Inquiry","message":"<b>&","person":{"tags":["lead-id:1"]}}`, string(data))
	require.True(t, json.Valid(data))
	require.False(t, strings.HasSuffix(string(data), "\n"))
}
