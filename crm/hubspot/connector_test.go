package hubspot

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
	"github.com/acme/integrations/integration"
)

// Lead PII used in test records; no error, check or reason may contain it.
const (
	piiName    = "Zelda Quillfeather"
	piiEmail   = "zelda.quill@example.org"
	piiPhone   = "+1-555-0199"
	piiMessage = "call me about the blue house"
)

// testBundle is a connector pointed at a fake HubSpot, on a clock the test
// moves.
type testBundle struct {
	fakeURL   string
	fake      *hubspotfake.Client
	connector *Connector

	mu  sync.Mutex
	now time.Time
}

// advance moves the connector's clock (the fake keeps real time).
func (b *testBundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = b.now.Add(d)
}

func (b *testBundle) clock() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.now
}

// setup starts a fake HubSpot and a connector with the fake's OAuth client.
func setup(t *testing.T) *testBundle {
	t.Helper()
	server, err := hubspotfake.NewServer("")
	require.NoError(t, err)
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	b := &testBundle{fakeURL: httpServer.URL, fake: hubspotfake.NewClient(httpServer.URL, httpServer.Client()), now: time.Now()}
	b.connector = New(Config{APIURL: httpServer.URL, AuthURL: httpServer.URL + "/oauth/authorize",
		ClientID: hubspotfake.DevClientID, ClientSecret: hubspotfake.DevClientSecret, HTTPClient: httpServer.Client()})
	b.connector.now = b.clock
	return b
}

// ourProperties are the contact properties validation would create.
func ourProperties() []hubspotfake.Property {
	return []hubspotfake.Property{
		{Name: KeyProperty, Label: "Lead key", Type: "string", FieldType: "text", GroupName: "contactinformation", HasUniqueValue: true},
		{Name: SourceProperty, Label: "Lead source", Type: "string", FieldType: "text", GroupName: "contactinformation"},
	}
}

// privateAccount creates a private-app account with scopes (nil: the
// defaults) and, when withProps, our contact properties; it returns the hub
// ID and the credentials.
func (b *testBundle) privateAccount(t *testing.T, scopes []string, withProps bool) (int64, []byte, string) {
	t.Helper()
	req := hubspotfake.CreateAccountRequest{Scopes: scopes}
	if withProps {
		req.Properties = ourProperties()
	}
	a, err := b.fake.CreateAccount(context.Background(), req)
	require.NoError(t, err)
	return a.HubID, []byte(`{"access_token":"` + a.PrivateAppToken + `"}`), a.PrivateAppToken
}

const callback = "http://127.0.0.1:9/oauth/callback"

// oauthAccount creates an OAuth account with our properties and exchanges
// its code through the connector.
func (b *testBundle) oauthAccount(t *testing.T) (int64, []byte) {
	t.Helper()
	a, err := b.fake.CreateAccount(context.Background(), hubspotfake.CreateAccountRequest{OAuth: true, RedirectURI: callback, Properties: ourProperties()})
	require.NoError(t, err)
	raw, err := b.connector.Exchange(context.Background(), crm.ExchangeRequest{Code: a.Code, RedirectURL: callback})
	require.NoError(t, err)
	return a.HubID, raw
}

func (b *testBundle) calls(t *testing.T, hub int64) []hubspotfake.Call {
	t.Helper()
	calls, err := b.fake.Calls(context.Background(), hub)
	require.NoError(t, err)
	return calls
}

func (b *testBundle) faults(t *testing.T, hub int64, u hubspotfake.FaultsUpdate) {
	t.Helper()
	_, err := b.fake.UpdateFaults(context.Background(), hub, u)
	require.NoError(t, err)
}

// requireNothingStored fails if the account holds any contact.
func (b *testBundle) requireNothingStored(t *testing.T, hub int64) {
	t.Helper()
	st, err := b.fake.Records(context.Background(), hub)
	require.NoError(t, err)
	require.Zero(t, st.Records, "a refused call stores nothing")
}

// requireClean fails if text holds a secret or test PII.
func requireClean(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, piiName, piiEmail, piiPhone, piiMessage, "secret attribute", "zelda") {
		require.NotContains(t, text, s)
	}
}

// crmError requires err to be a *crm.Error of class and returns it.
func crmError(t *testing.T, err error, class crm.ErrorClass) *crm.Error {
	t.Helper()
	var ce *crm.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, class, ce.Class, "%v", err)
	return ce
}

func piiRecord(key string) crm.Record {
	return crm.Record{Key: key, Source: "Zillow Premier", FirstName: "Zelda", LastName: "Quillfeather", Company: "Blue House Ltd",
		Email: piiEmail, Phone: piiPhone, Message: piiMessage,
		Attributes: map[string]any{"budget": 450000, "notes": "secret attribute", "beds": []any{2, 3}}}
}

func TestMapping(t *testing.T) {
	t.Parallel()

	t.Run("EveryField", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		results, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("lead-1")})
		require.NoError(t, err)
		require.Equal(t, crm.RecordDelivered, results[0].Status)

		c, err := b.fake.Contact(context.Background(), hub, "lead-1")
		require.NoError(t, err)
		require.Equal(t, results[0].CRMID, c.ID)
		require.Equal(t, KeyProperty, c.IDProperty, "upserted by our unique property")
		require.Equal(t, map[string]string{
			KeyProperty:    "lead-1",
			SourceProperty: "Zillow Premier",
			"firstname":    "Zelda",
			"lastname":     "Quillfeather",
			"company":      "Blue House Ltd",
			"email":        piiEmail,
			"phone":        piiPhone,
			"message":      piiMessage + "\n\nDetails from the lead partner:\nbeds: [2,3]\nbudget: 450000\nnotes: secret attribute",
		}, c.Properties)
	})

	t.Run("NameSplitAndEmptyFields", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		recs := []crm.Record{
			{Key: "two", Source: "p", Name: "  Ada King   Lovelace ", Phone: piiPhone},
			{Key: "one", Source: "p", Name: "Cher"},
			{Key: "parts", Source: "p", Name: "Ignored Whole", FirstName: "Grace"},
			{Key: "attrs", Source: "p", Attributes: map[string]any{"z": "last", "a": nil}},
		}
		_, err := b.connector.Push(context.Background(), raw, recs)
		require.NoError(t, err)
		want := map[string]map[string]string{
			// The one rule of integration.SplitName: the last word is
			// the last name; one word is a last name only.
			"two":   {"firstname": "Ada King", "lastname": "Lovelace", "phone": piiPhone},
			"one":   {"lastname": "Cher"},
			"parts": {"firstname": "Grace"},
			"attrs": {"message": "Details from the lead partner:\na: \nz: last"},
		}
		for key, props := range want {
			c, err := b.fake.Contact(context.Background(), hub, key)
			require.NoError(t, err)
			props[KeyProperty], props[SourceProperty] = key, "p"
			require.Equal(t, props, c.Properties, key)
		}

		// An update without a phone keeps the phone the contact has.
		_, err = b.connector.Push(context.Background(), raw, []crm.Record{{Key: "two", Source: "p", Email: "ada@example.org"}})
		require.NoError(t, err)
		c, err := b.fake.Contact(context.Background(), hub, "two")
		require.NoError(t, err)
		require.Equal(t, piiPhone, c.Properties["phone"])
		require.Equal(t, "ada@example.org", c.Properties["email"])
	})

	t.Run("KeyTwiceInABatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		second := piiRecord("other")
		second.Email = "other@example.org"
		results, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("k"), second, piiRecord("k")})
		require.NoError(t, err)
		require.Len(t, results, 3)
		require.Equal(t, results[0], results[2], "one lead, one contact")
		calls := b.calls(t, hub)
		require.Equal(t, 2, calls[len(calls)-1].Inputs, "sent once")
	})
}

func TestPushMatching(t *testing.T) {
	t.Parallel()

	t.Run("WithoutTraceIDs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, true)
		yes, prop, contains := true, "email", "refused"
		b.faults(t, hub, hubspotfake.FaultsUpdate{OmitTraceIDs: &yes, RejectProperty: &prop, RejectContains: &contains})

		recs := []crm.Record{{Key: "a", Email: "a@example.org"}, {Key: "b", Email: "zelda.refused@example.org"}, {Key: "c", Email: "c@example.org"}}
		results, err := b.connector.Push(context.Background(), raw, recs)
		require.NoError(t, err)
		require.NoError(t, crm.CheckResults(recs, results))
		require.Equal(t, crm.RecordDelivered, results[0].Status, "matched by the key property the result holds")
		require.Equal(t, crm.RecordDelivered, results[2].Status)
		require.Equal(t, crm.RecordRejected, results[1].Status, "the error names no record: asked again alone, it is this one's")
		require.Equal(t, "invalid email (INVALID_EMAIL) on property email", results[1].Reason)
		requireClean(t, results[1].Reason, token)
		calls := b.calls(t, hub)
		require.Len(t, calls, 2)
		require.Equal(t, []int{3, 1}, []int{calls[0].Inputs, calls[1].Inputs}, "only the unaccounted record again")
	})

	t.Run("UnaccountedIsNeverDelivered", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		yes := true
		b.faults(t, hub, hubspotfake.FaultsUpdate{DropResults: &yes})

		results, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("a"), {Key: "b"}, {Key: "c"}})
		require.Nil(t, results)
		ce := crmError(t, err, crm.ClassTransient)
		require.Contains(t, ce.Error(), "accounted for 0 of 3 records")
		require.Len(t, b.calls(t, hub), 4, "the batch, then each record alone")
	})

	t.Run("MisattributingServer", func(t *testing.T) {
		t.Parallel()
		// A server speaking HubSpot's shapes that answers a batch with
		// results for keys it was not sent, and a record both delivered
		// and refused; asked one by one, it answers properly.
		var mu sync.Mutex
		var sizes []int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Inputs []upsertInput `json:"inputs"`
			}
			require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
			mu.Lock()
			sizes = append(sizes, len(body.Inputs))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if len(body.Inputs) > 1 {
				w.WriteHeader(http.StatusMultiStatus)
				_, _ = w.Write([]byte(`{"status":"COMPLETE","results":[{"id":"1","objectWriteTraceId":"stranger"},{"id":"2","objectWriteTraceId":"a"}],` +
					`"errors":[{"status":"error","category":"VALIDATION_ERROR","message":"x","context":{"objectWriteTraceId":["a"]}}],"numErrors":1}`))
				return
			}
			_, _ = w.Write([]byte(`{"status":"COMPLETE","results":[{"id":"9","properties":{}}]}`))
		}))
		t.Cleanup(srv.Close)
		c := New(Config{APIURL: srv.URL, HTTPClient: srv.Client()})
		results, err := c.Push(context.Background(), []byte(`{"access_token":"pat-na1-x"}`), []crm.Record{{Key: "a"}, {Key: "b"}})
		require.NoError(t, err)
		require.Equal(t, []crm.RecordResult{{Key: "a", Status: crm.RecordDelivered, CRMID: "9"}, {Key: "b", Status: crm.RecordDelivered, CRMID: "9"}}, results)
		require.Equal(t, []int{2, 1, 1}, sizes)
	})
}

// TestRepeatLeads: a lead for a person HubSpot already has as a contact
// (the same email, a new lead key) updates that contact.
func TestRepeatLeads(t *testing.T) {
	t.Parallel()

	t.Run("UpdatesTheExistingContact", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, true)
		first, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("first")})
		require.NoError(t, err)
		contactID := first[0].CRMID
		require.NotEmpty(t, contactID)

		// The same person again, from another partner, without a company.
		newer := crm.Record{Key: "second", Source: "Realtor Connect", FirstName: "Zelda", LastName: "Quill", Email: piiEmail,
			Phone: "+1-555-0142", Message: "now looking for a flat"}
		results, err := b.connector.Push(context.Background(), raw, []crm.Record{newer})
		require.NoError(t, err)
		require.Equal(t, []crm.RecordResult{{Key: "second", Status: crm.RecordDelivered, CRMID: contactID}}, results,
			"delivered to the contact that has the email")
		st, err := b.fake.Records(context.Background(), hub)
		require.NoError(t, err)
		require.Equal(t, 1, st.Records, "one contact for one person")
		c, err := b.fake.Contact(context.Background(), hub, "second")
		require.NoError(t, err)
		require.Equal(t, contactID, c.ID)
		require.Equal(t, map[string]string{
			KeyProperty:    "second",
			SourceProperty: "Realtor Connect",
			"firstname":    "Zelda",
			"lastname":     "Quill",
			"company":      "Blue House Ltd",
			"email":        piiEmail,
			"phone":        "+1-555-0142",
			"message":      "now looking for a flat",
		}, c.Properties, "the newer lead's values; what it left out stays")
		calls := b.calls(t, hub)
		require.Len(t, calls, 3)
		require.Equal(t, []int{http.StatusMultiStatus, http.StatusOK}, []int{calls[1].Status, calls[2].Status},
			"refused by key, then upserted by email")
		require.Equal(t, []int{1, 1}, []int{calls[1].Inputs, calls[2].Inputs})

		// The older lead again: its key is nobody's now, so it lands on
		// the same contact through the same email, which takes its key.
		again, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("first")})
		require.NoError(t, err)
		require.Equal(t, []crm.RecordResult{{Key: "first", Status: crm.RecordDelivered, CRMID: contactID}}, again)
		c, err = b.fake.Contact(context.Background(), hub, "first")
		require.NoError(t, err)
		require.Equal(t, contactID, c.ID)
		require.Equal(t, "first", c.Properties[KeyProperty])
		require.Equal(t, "Zillow Premier", c.Properties[SourceProperty])
		st, err = b.fake.Records(context.Background(), hub)
		require.NoError(t, err)
		require.Equal(t, 1, st.Records)
		require.Len(t, b.calls(t, hub), 5)
		requireClean(t, strings.Join([]string{results[0].Reason, again[0].Reason}, " "), token)
	})

	t.Run("MixedBatchMatchedByKey", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct {
			omitTraceIDs bool
			// inputs are the sizes of the upsert calls after the first
			// contact's.
			inputs []int
		}{
			// The batch; the two repeat leads by email, one after the
			// other (one email, so never in one batch).
			"with trace IDs": {false, []int{4, 1, 1}},
			// The batch, whose errors name no record; each of those
			// alone; then the repeat leads by email.
			"without trace IDs": {true, []int{4, 1, 1, 1, 1, 1}},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				hub, raw, token := b.privateAccount(t, nil, true)
				owner, err := b.connector.Push(context.Background(), raw, []crm.Record{{Key: "owner", Source: "p", FirstName: "Ada", Email: "ada@example.org"}})
				require.NoError(t, err)
				ownerID := owner[0].CRMID
				prop, contains := "email", "refused"
				b.faults(t, hub, hubspotfake.FaultsUpdate{OmitTraceIDs: &tc.omitTraceIDs, RejectProperty: &prop, RejectContains: &contains})

				recs := []crm.Record{
					{Key: "new", Source: "p", Email: "nia@example.org"},
					{Key: "repeat", Source: "p2", Email: "ada@example.org", Phone: "+1 555 0100"},
					{Key: "invalid", Source: "p", Email: "zelda.refused@example.org"},
					{Key: "repeat-again", Source: "p3", Email: "ADA@example.org", Message: "second time today"},
				}
				results, err := b.connector.Push(context.Background(), raw, recs)
				require.NoError(t, err)
				require.NoError(t, crm.CheckResults(recs, results))
				require.Equal(t, crm.RecordDelivered, results[0].Status)
				require.NotEmpty(t, results[0].CRMID)
				require.NotEqual(t, ownerID, results[0].CRMID, "a new person is a new contact")
				require.Equal(t, crm.RecordResult{Key: "repeat", Status: crm.RecordDelivered, CRMID: ownerID}, results[1])
				require.Equal(t, crm.RecordResult{Key: "invalid", Status: crm.RecordRejected, Reason: "invalid email (INVALID_EMAIL) on property email"}, results[2])
				require.Equal(t, crm.RecordResult{Key: "repeat-again", Status: crm.RecordDelivered, CRMID: ownerID}, results[3],
					"emails compare case-insensitively")
				requireClean(t, results[2].Reason, token, recs[2].Email)

				st, err := b.fake.Records(context.Background(), hub)
				require.NoError(t, err)
				require.Equal(t, 2, st.Records, "the owner's contact and the new one; the invalid lead stored nothing")
				c, err := b.fake.Contact(context.Background(), hub, "repeat-again")
				require.NoError(t, err)
				require.Equal(t, ownerID, c.ID)
				require.Equal(t, "repeat-again", c.Properties[KeyProperty], "the last lead's key")
				require.Equal(t, "p3", c.Properties[SourceProperty])
				require.Equal(t, "+1 555 0100", c.Properties["phone"], "the first repeat's phone stays")
				require.Equal(t, "second time today", c.Properties["message"])
				require.Equal(t, "Ada", c.Properties["firstname"])

				calls := b.calls(t, hub)
				var sizes []int
				for _, call := range calls[1:] {
					sizes = append(sizes, call.Inputs)
				}
				require.Equal(t, tc.inputs, sizes)
			})
		}
	})

	t.Run("RefusedByEmailTooIsRejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, true)
		_, err := b.connector.Push(context.Background(), raw, []crm.Record{
			{Key: "a", Source: "p", FirstName: "Ada", Email: "ada@example.org"},
			{Key: "b", Source: "p", FirstName: "Bea", Email: "bea@example.org"},
		})
		require.NoError(t, err)
		before := map[string]hubspotfake.Contact{}
		for _, key := range []string{"a", "b"} {
			before[key], err = b.fake.Contact(context.Background(), hub, key)
			require.NoError(t, err)
		}

		// Lead b again with Ada's email: b's contact may not take it, and
		// Ada's contact may not take b's key, which b's contact holds.
		results, err := b.connector.Push(context.Background(), raw, []crm.Record{{Key: "b", Source: "p", FirstName: "Bea", Email: "ada@example.org"}})
		require.NoError(t, err)
		require.Equal(t, []crm.RecordResult{{Key: "b", Status: crm.RecordRejected,
			Reason: "another contact already has this value (CONFLICT) on property " + KeyProperty}}, results)
		requireClean(t, results[0].Reason, token, "ada@example.org", "bea@example.org")

		for key, want := range before {
			got, err := b.fake.Contact(context.Background(), hub, key)
			require.NoError(t, err)
			require.Equal(t, want, got, "contact %s is as it was", key)
		}
		st, err := b.fake.Records(context.Background(), hub)
		require.NoError(t, err)
		require.Equal(t, 2, st.Upserts, "the refusals stored nothing")
		calls := b.calls(t, hub)
		require.Len(t, calls, 3)
		require.Equal(t, []int{http.StatusMultiStatus, http.StatusMultiStatus}, []int{calls[1].Status, calls[2].Status})
	})

	t.Run("WholeCallConflict", func(t *testing.T) {
		t.Parallel()
		// A server speaking HubSpot's shapes that refuses a contact whose
		// email another contact holds with a whole-call 409, as HubSpot
		// answers a single creation, and upserts by email.
		var mu sync.Mutex
		var sent [][]upsertInput
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Inputs []upsertInput `json:"inputs"`
			}
			require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
			mu.Lock()
			sent = append(sent, body.Inputs)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if body.Inputs[0].IDProperty != "email" {
				w.WriteHeader(http.StatusConflict)
				_, _ = w.Write([]byte(`{"status":"error","message":"Contact already exists. Existing ID: 77","correlationId":"c1","category":"CONFLICT"}`))
				return
			}
			in := body.Inputs[0]
			_, _ = w.Write([]byte(`{"status":"COMPLETE","results":[{"id":"77","new":false,"objectWriteTraceId":"` + in.ObjectWriteTraceID +
				`","properties":{"` + KeyProperty + `":"` + in.Properties[KeyProperty] + `"}}]}`))
		}))
		t.Cleanup(srv.Close)
		c := New(Config{APIURL: srv.URL, HTTPClient: srv.Client()})
		raw := []byte(`{"access_token":"pat-na1-x"}`)
		calls := func() [][]upsertInput {
			mu.Lock()
			defer mu.Unlock()
			out := sent
			sent = nil
			return out
		}

		rec := piiRecord("a")
		results, err := c.Push(context.Background(), raw, []crm.Record{rec})
		require.NoError(t, err)
		require.Equal(t, []crm.RecordResult{{Key: "a", Status: crm.RecordDelivered, CRMID: "77"}}, results)
		got := calls()
		require.Len(t, got, 2)
		require.Equal(t, []upsertInput{{ID: piiEmail, IDProperty: "email", ObjectWriteTraceID: "a", Properties: contactProperties(rec)}}, got[1],
			"upserted by its email, carrying its key")

		// Two records: whose email is it? The caller splits the batch.
		_, err = c.Push(context.Background(), raw, []crm.Record{piiRecord("a"), piiRecord("b")})
		ce := crmError(t, err, crm.ClassBatchRejected)
		require.Equal(t, http.StatusConflict, ce.StatusCode)
		requireClean(t, err.Error())
		require.Len(t, calls(), 1)

		// Without an email there is nothing to upsert by: the refusal
		// stands.
		results, err = c.Push(context.Background(), raw, []crm.Record{{Key: "c", Source: "p"}})
		require.NoError(t, err)
		require.Equal(t, []crm.RecordResult{{Key: "c", Status: crm.RecordRejected, Reason: "another contact already has this email (CONFLICT)"}}, results)
		require.Len(t, calls(), 1)
	})
}

func TestPushErrors(t *testing.T) {
	t.Parallel()

	t.Run("InvalidEmailRefusesTheBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, true)
		bad := piiRecord("bad")
		bad.Email = "zelda.quill.example.org"
		results, err := b.connector.Push(context.Background(), raw, []crm.Record{{Key: "good", Email: "g@example.org"}, bad})
		require.Nil(t, results)
		ce := crmError(t, err, crm.ClassBatchRejected)
		require.Equal(t, "INVALID_EMAIL", ce.Code)
		require.Equal(t, http.StatusBadRequest, ce.StatusCode)
		require.Contains(t, err.Error(), "HubSpot refused the batch of 2 contacts: invalid email (INVALID_EMAIL) on property email")
		requireClean(t, err.Error(), token, bad.Email)
		b.requireNothingStored(t, hub)
	})

	t.Run("MissingPropertiesAreSetupProblems", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		require.NoError(t, b.fake.DeleteProperty(context.Background(), hub, SourceProperty))
		_, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("a")})
		ce := crmError(t, err, crm.ClassPermission)
		require.Equal(t, "PROPERTY_DOESNT_EXIST", ce.Code)
		require.Contains(t, err.Error(), "no contact property "+SourceProperty)
		requireClean(t, err.Error())
		b.requireNothingStored(t, hub)

		require.NoError(t, b.fake.DeleteProperty(context.Background(), hub, KeyProperty))
		_, err = b.fake.CreateProperty(context.Background(), hub, hubspotfake.Property{Name: KeyProperty, Label: "K", Type: "string", FieldType: "text", GroupName: "contactinformation"})
		require.NoError(t, err)
		_, err = b.connector.Push(context.Background(), raw, []crm.Record{{Key: "a"}})
		crmError(t, err, crm.ClassPermission)
		require.Contains(t, err.Error(), "does not require unique values")
		b.requireNothingStored(t, hub)
	})

	t.Run("RateLimitWithoutRetryAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		one, calls, window := 1, 50, 2000
		b.faults(t, hub, hubspotfake.FaultsUpdate{RateLimitNext: &one, LimitCalls: &calls, LimitWindowMS: &window})
		_, err := b.connector.Push(context.Background(), raw, []crm.Record{{Key: "a"}})
		ce := crmError(t, err, crm.ClassRateLimited)
		require.Equal(t, 2*time.Second, ce.RetryAfter, "no Retry-After: wait the window HubSpot reports")
		require.Equal(t, "TEN_SECONDLY_ROLLING", ce.Code)
		b.requireNothingStored(t, hub)
	})

	t.Run("ALongHoldFailsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, true)
		one, hour := 1, 3600
		b.faults(t, hub, hubspotfake.FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &hour})
		_, err := b.connector.Push(context.Background(), raw, []crm.Record{{Key: "a"}})
		require.Equal(t, time.Hour, crmError(t, err, crm.ClassRateLimited).RetryAfter)
		before := len(b.calls(t, hub))

		// The account is held for an hour: the next push, and a
		// validation, fail at once with the time left instead of waiting
		// until their deadline (which would answer a transient timeout).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = b.connector.Push(ctx, raw, []crm.Record{{Key: "a"}})
		ce := crmError(t, err, crm.ClassRateLimited)
		require.Greater(t, ce.RetryAfter, 59*time.Minute, "what is left of the hold")
		require.Contains(t, err.Error(), "the contacts batch upsert: the CRM's rate limit holds the account's calls for another 1h0m0s")
		requireClean(t, err.Error(), token)
		checks, err := b.connector.Validate(ctx, raw)
		require.Nil(t, checks, "validation could not run")
		require.Greater(t, crmError(t, err, crm.ClassRateLimited).RetryAfter, 59*time.Minute)
		require.NoError(t, ctx.Err(), "neither waited for the deadline")
		require.Len(t, b.calls(t, hub), before, "held without a call to HubSpot")
		b.requireNothingStored(t, hub)
	})

	t.Run("RetryAfterOfTheDailyLimit", func(t *testing.T) {
		t.Parallel()
		c := New(Config{})
		a := answer{status: http.StatusTooManyRequests, header: http.Header{}}
		require.Equal(t, dailyRetry, c.retryAfter(a, apiError{PolicyName: "DAILY"}))
		require.Equal(t, DefaultLimit.Per, c.retryAfter(a, apiError{PolicyName: "TEN_SECONDLY_ROLLING"}))
		a.header.Set("Retry-After", "7")
		require.Equal(t, 7*time.Second, c.retryAfter(a, apiError{PolicyName: "DAILY"}), "a Retry-After wins")
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		addr := srv.URL
		srv.Close()
		c := New(Config{APIURL: addr})
		_, err := c.Push(context.Background(), []byte(`{"access_token":"pat-na1-secret"}`), []crm.Record{piiRecord("a")})
		crmError(t, err, crm.ClassTransient)
		require.NotContains(t, err.Error(), strings.TrimPrefix(addr, "http://"), "no address of the CRM")
		require.NotContains(t, err.Error(), "http")
		requireClean(t, err.Error(), "pat-na1-secret")
	})

	t.Run("WrongAPIURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, raw, _ := b.privateAccount(t, nil, true)
		c := New(Config{APIURL: b.fakeURL + "/elsewhere"})
		_, err := c.Push(context.Background(), raw, []crm.Record{{Key: "a"}})
		crmError(t, err, crm.ClassTransient)
		require.Contains(t, err.Error(), "INTEGRATIONS_HUBSPOT_API_URL")
	})
}

func TestTokens(t *testing.T) {
	t.Parallel()

	t.Run("RefreshAheadOfExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		t0 := b.clock()
		hub, raw := b.oauthAccount(t)
		at, ok := b.connector.ExpiresAt(raw)
		require.True(t, ok)
		require.WithinDuration(t, t0.Add(30*time.Minute), at, time.Second, "expires_in 1800")
		require.False(t, crm.ExpiresSoon(b.connector, raw, t0.Add(24*time.Minute)))
		require.True(t, crm.ExpiresSoon(b.connector, raw, t0.Add(26*time.Minute)), "refreshed ahead of expiry")

		// Past the stored expiry, Push asks for a refresh without a call.
		b.advance(31 * time.Minute)
		_, err := b.connector.Push(context.Background(), raw, []crm.Record{{Key: "a"}})
		crmError(t, err, crm.ClassAuth)
		require.Empty(t, b.calls(t, hub), "refused before any call")
		b.requireNothingStored(t, hub)

		// Validation still passes: it refreshes for its checks.
		checks, err := b.connector.Validate(context.Background(), raw)
		require.NoError(t, err)
		for _, c := range checks {
			require.True(t, c.OK, "%s: %s", c.Name, c.Message)
		}

		fresh, err := b.connector.Refresh(context.Background(), raw)
		require.NoError(t, err)
		var before, after credentialsDoc
		require.NoError(t, json.Unmarshal(raw, &before))
		require.NoError(t, json.Unmarshal(fresh, &after))
		require.NotEqual(t, before.AccessToken, after.AccessToken)
		require.Equal(t, before.RefreshToken, after.RefreshToken)
		require.Equal(t, before.HubID, after.HubID)
		newAt, ok := b.connector.ExpiresAt(fresh)
		require.True(t, ok)
		require.WithinDuration(t, b.clock().Add(30*time.Minute), newAt, time.Second)
		results, err := b.connector.Push(context.Background(), fresh, []crm.Record{{Key: "a"}})
		require.NoError(t, err)
		require.Equal(t, crm.RecordDelivered, results[0].Status)
	})

	t.Run("StaticTokens", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, raw, token := b.privateAccount(t, nil, true)
		_, ok := b.connector.ExpiresAt(raw)
		require.False(t, ok, "a private app token has no known expiry")
		_, err := b.connector.Refresh(context.Background(), raw)
		crmError(t, err, crm.ClassAuth)
		requireClean(t, err.Error(), token)
	})

	t.Run("MisconfiguredClient", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, raw := b.oauthAccount(t)
		wrong := New(Config{APIURL: b.fakeURL, ClientID: hubspotfake.DevClientID, ClientSecret: "not-it"})
		_, err := wrong.Refresh(context.Background(), raw)
		ce := crmError(t, err, crm.ClassTransient)
		require.Equal(t, "BAD_CLIENT_SECRET", ce.Code)
		require.Contains(t, err.Error(), "INTEGRATIONS_HUBSPOT_CLIENT_SECRET", "our configuration, not the customer's grant")
		require.NotContains(t, err.Error(), "not-it")

		none := New(Config{APIURL: b.fakeURL})
		_, err = none.Refresh(context.Background(), raw)
		require.ErrorContains(t, err, "INTEGRATIONS_HUBSPOT_CLIENT_ID")
		_, err = none.AuthCodeURL(crm.AuthRequest{State: "s", RedirectURL: callback})
		require.ErrorContains(t, err, "INTEGRATIONS_HUBSPOT_CLIENT_ID")
		_, err = none.Exchange(context.Background(), crm.ExchangeRequest{Code: "c", RedirectURL: callback})
		require.ErrorContains(t, err, "INTEGRATIONS_HUBSPOT_CLIENT_ID")
	})

	t.Run("ConsentURL", func(t *testing.T) {
		t.Parallel()
		c := New(Config{ClientID: "client-1", ClientSecret: "hidden-value"})
		raw, err := c.AuthCodeURL(crm.AuthRequest{State: "st-1", RedirectURL: callback})
		require.NoError(t, err)
		u, err := url.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, "app.hubspot.com", u.Host)
		require.Equal(t, "/oauth/authorize", u.Path)
		require.Equal(t, url.Values{"client_id": {"client-1"}, "redirect_uri": {callback}, "scope": {"oauth crm.objects.contacts.write"},
			"optional_scope": {"crm.schemas.contacts.write"}, "state": {"st-1"}}, u.Query())
		require.NotContains(t, raw, "hidden-value")

		_, err = c.AuthCodeURL(crm.AuthRequest{State: "s", RedirectURL: callback, Sandbox: true})
		require.ErrorContains(t, err, "no separate sandbox login")
		_, err = c.Exchange(context.Background(), crm.ExchangeRequest{Code: "c", RedirectURL: callback, Sandbox: true})
		require.ErrorContains(t, err, "no separate sandbox login")
		_, err = c.AuthCodeURL(crm.AuthRequest{RedirectURL: callback})
		require.Error(t, err, "a state is required")
	})

	t.Run("ExchangeAgainstTheWrongRedirect", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, err := b.fake.CreateAccount(context.Background(), hubspotfake.CreateAccountRequest{OAuth: true, RedirectURI: callback})
		require.NoError(t, err)
		_, err = b.connector.Exchange(context.Background(), crm.ExchangeRequest{Code: a.Code, RedirectURL: "http://127.0.0.1:9/other"})
		ce := crmError(t, err, crm.ClassTransient)
		require.Equal(t, "BAD_REDIRECT_URI", ce.Code)
		require.NotContains(t, err.Error(), a.Code)
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()

	// validate runs Validate and checks what every outcome shares: four
	// checks in a fixed order, no token in any text.
	validate := func(t *testing.T, b *testBundle, raw []byte, secrets ...string) []integration.Check {
		t.Helper()
		checks, err := b.connector.Validate(context.Background(), raw)
		require.NoError(t, err)
		names := make([]string, len(checks))
		for i, c := range checks {
			names[i] = c.Name
			requireClean(t, c.Message+" "+c.Remediation, secrets...)
		}
		require.Equal(t, []string{crm.CheckCredentials, crm.CheckScopes, CheckLeadKeyProperty, CheckLeadSourceProperty}, names)
		return checks
	}
	requireOK := func(t *testing.T, checks []integration.Check) {
		t.Helper()
		for _, c := range checks {
			require.True(t, c.OK, "%s: %s", c.Name, c.Message)
		}
	}

	t.Run("CreatesTheProperties", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, false)
		first := validate(t, b, raw, token)
		requireOK(t, first)
		require.Equal(t, first, validate(t, b, raw, token), "created or found, the checks read the same")
		_, err := b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("a")})
		require.NoError(t, err, "the created properties take upserts")
		calls := b.calls(t, hub)
		var creations int
		for _, c := range calls {
			if c.Method == http.MethodPost && c.Path == pathContactProperties {
				require.Equal(t, http.StatusCreated, c.Status)
				creations++
			}
		}
		require.Equal(t, 2, creations, "created once each")
	})

	t.Run("CannotCreateTheProperties", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, raw, _ := b.privateAccount(t, []string{hubspotfake.ScopeContactsWrite}, false)
		checks := validate(t, b, raw)
		require.True(t, checks[0].OK)
		require.True(t, checks[1].OK)
		for i, remediation := range map[int]string{2: remediateLeadKeyProperty, 3: remediateLeadSourceProperty} {
			require.False(t, checks[i].OK)
			require.Equal(t, integration.ReasonInsufficientPermissions, checks[i].Code)
			require.Equal(t, remediation, checks[i].Remediation)
			require.Contains(t, checks[i].Message, "lacks scope "+ScopeSchemasContactsWrite)
		}
	})

	t.Run("TheConsentPagesRequiredScopesAlone", func(t *testing.T) {
		t.Parallel()
		// A customer who declines the optional scope grants what the
		// consent page requires, oauth and crm.objects.contacts.write:
		// HubSpot lets that scope read contact properties too, so every
		// check runs (none is "not checked") and passes.
		b := setup(t)
		u, err := url.Parse(mustAuthCodeURL(t, b.connector))
		require.NoError(t, err)
		required := strings.Fields(u.Query().Get("scope"))
		a, err := b.fake.CreateAccount(context.Background(), hubspotfake.CreateAccountRequest{OAuth: true, RedirectURI: callback,
			Scopes: required, Properties: ourProperties()})
		require.NoError(t, err)
		raw, err := b.connector.Exchange(context.Background(), crm.ExchangeRequest{Code: a.Code, RedirectURL: callback})
		require.NoError(t, err)
		requireOK(t, validate(t, b, raw))
		_, err = b.connector.Push(context.Background(), raw, []crm.Record{piiRecord("a")})
		require.NoError(t, err)
	})

	t.Run("KeyPropertyNotUnique", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, false)
		_, err := b.fake.CreateProperty(context.Background(), hub, hubspotfake.Property{Name: KeyProperty, Label: "K", Type: "string", FieldType: "text", GroupName: "contactinformation"})
		require.NoError(t, err)
		checks := validate(t, b, raw)
		require.False(t, checks[2].OK)
		require.Equal(t, integration.ReasonInsufficientPermissions, checks[2].Code)
		require.Equal(t, remediateLeadKeyNotUnique, checks[2].Remediation)
		require.True(t, checks[3].OK, "the source property was created")
	})

	t.Run("WithoutIntrospection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, token := b.privateAccount(t, nil, true)
		yes := true
		b.faults(t, hub, hubspotfake.FaultsUpdate{IntrospectionUnavailable: &yes})
		checks := validate(t, b, raw, token)
		requireOK(t, checks)
		require.Equal(t, "HubSpot accepts the token", checks[0].Message)
		require.Contains(t, checks[1].Message, "did not list the token's scopes")

		_, err := b.fake.DropScope(context.Background(), hub, hubspotfake.ScopeContactsWrite)
		require.NoError(t, err)
		checks = validate(t, b, raw, token)
		require.True(t, checks[0].OK)
		require.False(t, checks[1].OK)
		require.Equal(t, integration.ReasonInsufficientPermissions, checks[1].Code)
		require.Contains(t, checks[1].Message, "lacks scope crm.objects.contacts.write", "HubSpot's own answer names it")
		require.Equal(t, remediateScopesToken, checks[1].Remediation)

		_, err = b.fake.Revoke(context.Background(), hub)
		require.NoError(t, err)
		checks = validate(t, b, raw, token)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code, "the authenticated call decides")
		require.Equal(t, remediateCredentialsToken, checks[0].Remediation)
	})

	t.Run("RevokedOAuth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw := b.oauthAccount(t)
		_, err := b.fake.Revoke(context.Background(), hub)
		require.NoError(t, err)
		checks := validate(t, b, raw)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "INVALID_AUTHENTICATION", "the token is refused; refreshing is the caller's")
		require.Equal(t, remediateCredentialsOAuth, checks[0].Remediation)
		for _, c := range checks[1:] {
			require.True(t, strings.HasPrefix(c.Message, "not checked: "), c.Name)
		}

		_, err = b.fake.DropScope(context.Background(), hub, hubspotfake.ScopeContactsWrite)
		require.NoError(t, err)
		_, err = b.fake.Restore(context.Background(), hub)
		require.NoError(t, err)
		checks = validate(t, b, raw)
		require.Equal(t, remediateScopesOAuth, checks[1].Remediation)
	})

	t.Run("PropertyDefinitionRefused", func(t *testing.T) {
		t.Parallel()
		// A HubSpot that refuses our property definitions with a 400:
		// the customer can still create them by hand, so the checks fail
		// with that fix instead of validation never finishing.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.URL.Path == pathPrivateTokenInfo:
				_, _ = w.Write([]byte(`{"hubId":7,"scopes":["crm.objects.contacts.write","crm.schemas.contacts.write"]}`))
			case r.Method == http.MethodGet:
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"status":"error","message":"not found","category":"OBJECT_NOT_FOUND"}`))
			default:
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"status":"error","message":"group does not exist","category":"VALIDATION_ERROR"}`))
			}
		}))
		t.Cleanup(srv.Close)
		c := New(Config{APIURL: srv.URL, HTTPClient: srv.Client()})
		checks, err := c.Validate(context.Background(), []byte(`{"access_token":"pat-na1-x"}`))
		require.NoError(t, err)
		require.True(t, checks[0].OK)
		require.True(t, checks[1].OK)
		require.Equal(t, remediateLeadKeyProperty, checks[2].Remediation)
		require.Contains(t, checks[2].Message, "HubSpot refused to create it (HTTP 400, VALIDATION_ERROR)")
		require.Equal(t, remediateLeadSourceProperty, checks[3].Remediation)
	})

	t.Run("PropertiesTheTokenMayNotRead", func(t *testing.T) {
		t.Parallel()
		// A HubSpot whose introspection lists scopes, while reading our
		// properties answers MISSING_SCOPES (the scopes changed between
		// the calls, or HubSpot asks for more than it documents).
		var mu sync.Mutex
		scopes := `["crm.objects.contacts.write"]`
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.URL.Path == pathPrivateTokenInfo:
				mu.Lock()
				listed := scopes
				mu.Unlock()
				_, _ = w.Write([]byte(`{"hubId":7,"scopes":` + listed + `}`))
			case r.Method == http.MethodGet:
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"status":"error","category":"MISSING_SCOPES","errors":[{"context":{"requiredScopes":["crm.schemas.contacts.read"]}}]}`))
			default:
				w.WriteHeader(http.StatusInternalServerError)
			}
		}))
		t.Cleanup(srv.Close)
		c := New(Config{APIURL: srv.URL, HTTPClient: srv.Client()})
		checks, err := c.Validate(context.Background(), []byte(`{"access_token":"pat-na1-x"}`))
		require.NoError(t, err)
		require.True(t, checks[1].OK, "the introspection lists the scope upserts need")
		for _, check := range checks[2:] {
			require.False(t, check.OK)
			require.Equal(t, integration.ReasonInsufficientPermissions, check.Code, "nothing else says what is wrong: %s", check.Name)
			require.Contains(t, check.Message, "HubSpot asks for scope crm.schemas.contacts.read; crm.objects.contacts.write, which deliveries need, reads it too")
			require.Equal(t, remediateScopesToken, check.Remediation)
		}

		// When the scopes check fails, it is the reason, and the
		// properties are not checked.
		mu.Lock()
		scopes = `[]`
		mu.Unlock()
		checks, err = c.Validate(context.Background(), []byte(`{"access_token":"pat-na1-x"}`))
		require.NoError(t, err)
		require.Equal(t, integration.ReasonInsufficientPermissions, checks[1].Code)
		for _, check := range checks[2:] {
			require.True(t, strings.HasPrefix(check.Message, "not checked: "), check.Name)
			require.Empty(t, check.Code)
		}
	})

	t.Run("UnusableDocument", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		checks := validate(t, b, []byte(`{"access_token":"pat-na1-x","extra":1}`), "pat-na1-x")
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, `unknown field "extra"`)
	})

	t.Run("Throttled", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw, _ := b.privateAccount(t, nil, true)
		// A 429 with no rate-limit headers at all.
		n, status := 1, http.StatusTooManyRequests
		b.faults(t, hub, hubspotfake.FaultsUpdate{FailNext: &n, FailStatus: &status})
		checks, err := b.connector.Validate(context.Background(), raw)
		require.Nil(t, checks, "could not run: no failed checks")
		ce := crmError(t, err, crm.ClassRateLimited)
		require.Equal(t, DefaultLimit.Per, ce.RetryAfter, "no Retry-After, no window: HubSpot's published window")
	})
}

func TestQuota(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, privateRaw, _ := b.privateAccount(t, nil, true)
	hub, oauthRaw := b.oauthAccount(t)

	_, ok := b.connector.Quota(privateRaw)
	require.False(t, ok, "nothing reported before a call")
	_, err := b.connector.Push(context.Background(), privateRaw, []crm.Record{{Key: "a"}})
	require.NoError(t, err)
	q, ok := b.connector.Quota(privateRaw)
	require.True(t, ok)
	require.Equal(t, crm.Quota{Remaining: 249_999, Limit: 250_000, Window: "24h", ObservedAt: q.ObservedAt}, q, "a private app's daily allowance")

	calls, window := 50, 5000
	b.faults(t, hub, hubspotfake.FaultsUpdate{LimitCalls: &calls, LimitWindowMS: &window})
	_, err = b.connector.Push(context.Background(), oauthRaw, []crm.Record{{Key: "a"}})
	require.NoError(t, err)
	q, ok = b.connector.Quota(oauthRaw)
	require.True(t, ok)
	require.Equal(t, crm.Quota{Remaining: 49, Limit: 50, Window: "5s", ObservedAt: q.ObservedAt}, q, "OAuth answers carry the window only")

	_, ok = b.connector.Quota([]byte("{"))
	require.False(t, ok)
}

func TestParseCredentialsDetails(t *testing.T) {
	t.Parallel()
	c := New(Config{})
	const secret = "tok-s3cret"
	good := `{"access_token":"` + secret + `","refresh_token":"r-` + secret + `","expires_at":"2026-12-01T12:30:00Z","hub_id":42}`
	require.NoError(t, c.ParseCredentials([]byte(good)))
	require.NoError(t, c.ParseCredentials([]byte(`{"access_token":"pat-na1-`+secret+`"}`)))

	for name, tc := range map[string]struct{ raw, field string }{
		"bad expiry":        {strings.Replace(good, "2026-12-01T12:30:00Z", secret, 1), "expires_at"},
		"no expiry":         {strings.Replace(good, `"expires_at":"2026-12-01T12:30:00Z",`, "", 1), "expires_at"},
		"no hub":            {strings.Replace(good, `,"hub_id":42`, "", 1), "hub_id"},
		"negative hub":      {strings.Replace(good, `"hub_id":42`, `"hub_id":-4`, 1), "hub_id"},
		"hub without grant": {`{"access_token":"` + secret + `","hub_id":42}`, "refresh_token"},
		"line break":        {`{"access_token":"` + secret + `\n"}`, "access_token"},
		"typo":              {`{"accesstoken":"` + secret + `"}`, "accesstoken"},
	} {
		err := c.ParseCredentials([]byte(tc.raw))
		require.Error(t, err, name)
		require.Contains(t, err.Error(), tc.field, name)
		require.NotContains(t, err.Error(), secret, name)
	}
	_, ok := c.ExpiresAt([]byte(good))
	require.True(t, ok)
}

// TestPacingFollowsTheAccountHubSpotNames: a credentials document comes
// from whoever authorizes, so the hub_id in an OAuth-shaped one is never
// trusted. A document naming another customer's hub cannot hold that
// customer's calls with its 429s, re-pace them with its rate-limit headers,
// or read its quota.
func TestPacingFollowsTheAccountHubSpotNames(t *testing.T) {
	t.Parallel()

	// attack returns the attacker's document: its own token, with an OAuth
	// document's fields around it, naming the victim's hub.
	attack := func(t *testing.T, token string, victimHub int64) []byte {
		t.Helper()
		doc, err := json.Marshal(credentialsDoc{AccessToken: token, RefreshToken: "x", ExpiresAt: "2099-01-01T00:00:00Z", HubID: victimHub})
		require.NoError(t, err)
		return doc
	}
	// requireNotHeld pushes for the victim, which must be delivered with
	// nothing waiting: a held victim would fail as rate limited (or wait
	// until the deadline).
	requireNotHeld := func(t *testing.T, c *Connector, victim []byte, key string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		results, err := c.Push(ctx, victim, []crm.Record{{Key: key}})
		require.NoError(t, err, "the victim's calls are not held")
		require.Equal(t, crm.RecordDelivered, results[0].Status)
	}
	one, hour := 1, 3600

	t.Run("APrivateAppTokenInAnOAuthDocument", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		victimHub, victim := b.oauthAccount(t)
		attackerHub, _, token := b.privateAccount(t, nil, true)
		doc := attack(t, token, victimHub)
		require.NoError(t, b.connector.ParseCredentials(doc), "accepted: the OAuth callback authorizes with such documents too")

		// Its validation names no account: HubSpot's OAuth introspection
		// does not know a private app token.
		checks, err := b.connector.Validate(context.Background(), doc)
		require.NoError(t, err)
		require.Equal(t, "HubSpot accepts the OAuth connection", checks[0].Message)
		requireClean(t, checks[0].Message, strconv.FormatInt(victimHub, 10))

		// The attacker's calls report its own daily allowance, then meet an
		// hour's rate limit.
		_, err = b.connector.Push(context.Background(), doc, []crm.Record{{Key: "a1"}})
		require.NoError(t, err)
		b.faults(t, attackerHub, hubspotfake.FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &hour})
		_, err = b.connector.Push(context.Background(), doc, []crm.Record{{Key: "a2"}})
		require.Equal(t, time.Hour, crmError(t, err, crm.ClassRateLimited).RetryAfter)

		requireNotHeld(t, b.connector, victim, "v1")
		q, ok := b.connector.Quota(victim)
		require.True(t, ok)
		require.Equal(t, "10s", q.Window, "the victim's own OAuth window, not the attacker's daily allowance")
		q, ok = b.connector.Quota(doc)
		require.True(t, ok)
		require.Equal(t, "24h", q.Window, "the attacker sees its own allowance")
		_, err = b.connector.Push(context.Background(), doc, []crm.Record{{Key: "a3"}})
		crmError(t, err, crm.ClassRateLimited)
	})

	t.Run("AnotherAccountsOAuthTokenNamingTheVictim", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		victimHub, victim := b.oauthAccount(t)
		attackerHub, attackerRaw := b.oauthAccount(t)
		var own credentialsDoc
		require.NoError(t, json.Unmarshal(attackerRaw, &own))
		doc := attack(t, own.AccessToken, victimHub)

		// A worker that has seen neither token (another process, or one
		// restarted) asks HubSpot which account each belongs to.
		fresh := New(Config{APIURL: b.fakeURL, HTTPClient: b.connector.httpClient})
		b.faults(t, attackerHub, hubspotfake.FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &hour})
		_, err := fresh.Push(context.Background(), doc, []crm.Record{{Key: "a1"}})
		require.Equal(t, time.Hour, crmError(t, err, crm.ClassRateLimited).RetryAfter)

		requireNotHeld(t, fresh, victim, "v1")
		_, err = fresh.Push(context.Background(), attackerRaw, []crm.Record{{Key: "a2"}})
		crmError(t, err, crm.ClassRateLimited)
		b.requireNothingStored(t, attackerHub)

		checks, err := fresh.Validate(context.Background(), doc)
		require.Error(t, err, "held")
		require.Nil(t, checks)
	})

	t.Run("WithoutTheIntrospection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		hub, raw := b.oauthAccount(t)
		var doc credentialsDoc
		require.NoError(t, json.Unmarshal(raw, &doc))
		creds, err := parseCredentials(raw)
		require.NoError(t, err)
		fresh := New(Config{APIURL: b.fakeURL, HTTPClient: b.connector.httpClient})
		fresh.now = b.clock
		yes, no := true, false
		b.faults(t, hub, hubspotfake.FaultsUpdate{IntrospectionUnavailable: &yes})

		// HubSpot names no account: the calls go on, paced as the token's
		// own, and the introspection is asked again a minute later.
		requireNotHeld(t, fresh, raw, "k1")
		key, known := fresh.knownPaceKey(creds)
		require.True(t, known)
		require.Equal(t, crm.TokenKey(doc.AccessToken), key)
		b.advance(unknownHubRetry)
		_, known = fresh.knownPaceKey(creds)
		require.False(t, known)

		b.faults(t, hub, hubspotfake.FaultsUpdate{IntrospectionUnavailable: &no})
		requireNotHeld(t, fresh, raw, "k2")
		key, _ = fresh.knownPaceKey(creds)
		require.Equal(t, hubKey(hub), key)
	})

	t.Run("TheVictimsQuotaStaysItsOwn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		victimHub, victim := b.oauthAccount(t)
		calls, window := 50, 5000
		b.faults(t, victimHub, hubspotfake.FaultsUpdate{LimitCalls: &calls, LimitWindowMS: &window})
		requireNotHeld(t, b.connector, victim, "v1")
		_, _, token := b.privateAccount(t, nil, true)
		_, ok := b.connector.Quota(attack(t, token, victimHub))
		require.False(t, ok, "a document naming the victim's hub does not read its quota")
	})
}

// mustAuthCodeURL is the connector's consent URL for the test callback.
func mustAuthCodeURL(t *testing.T, c *Connector) string {
	t.Helper()
	consent, err := c.AuthCodeURL(crm.AuthRequest{State: "st", RedirectURL: callback})
	require.NoError(t, err)
	return consent
}
