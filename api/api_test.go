package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/starter"
)

// requestTimeout bounds one API call; commands wait for their workflow
// update, which on a busy CI machine can take a few seconds.
const requestTimeout = 60 * time.Second

type testBundle struct {
	stack  *teststack.Stack
	server *httptest.Server
	// admin is an admin API key, which do sends unless told otherwise,
	// and adminName its name, the recorded actor of its commands.
	admin, adminName string
	// bodies is every response body the API sent in this test, so a test
	// can check that no secret ever left the service.
	bodies []string
	// leads numbers the test leads sent through intake.
	leads int
}

func setup(t *testing.T, db testenv.Database) *testBundle {
	t.Helper()
	stack := teststack.New(t, db, teststack.Options{})
	// The API logs into the stack's buffer too, so one scan of stack.Logs
	// covers the API, the worker and the Temporal client.
	logger := slog.New(slog.NewTextHandler(stack.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	server := httptest.NewServer(api.New(stack.Starter, logger))
	t.Cleanup(server.Close)
	b := &testBundle{stack: stack, server: server, adminName: "test-admin"}
	_, b.admin = b.issueKey(t, apikey.Spec{Admin: true, Name: b.adminName})
	return b
}

// withHandlerOptions returns a bundle on the same stack and keys whose API
// handler is built with opts.
func (b *testBundle) withHandlerOptions(t *testing.T, opts ...api.Option) *testBundle {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(b.stack.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	server := httptest.NewServer(api.New(b.stack.Starter, logger, opts...))
	t.Cleanup(server.Close)
	return &testBundle{stack: b.stack, server: server, admin: b.admin, adminName: b.adminName}
}

// issueKey issues an API key for spec and returns its ID and the key.
func (b *testBundle) issueKey(t *testing.T, spec apikey.Spec) (id, key string) {
	t.Helper()
	k, key, err := apikey.Issue(context.Background(), b.stack.Store, spec, time.Now())
	require.NoError(t, err)
	return k.ID, key
}

// response is one HTTP exchange's outcome.
type response struct {
	code   int
	header http.Header
	body   string
}

// do sends a request (no body when body is empty) and checks that the
// answer, whatever its status, is JSON.
func (b *testBundle) do(t *testing.T, method, path, body string) response {
	t.Helper()
	return b.doWithHeader(t, method, path, body, nil)
}

// doWithHeader is do with the request headers header instead of the
// admin key's Authorization (nil: the admin key).
func (b *testBundle) doWithHeader(t *testing.T, method, path, body string, header http.Header) response {
	t.Helper()
	contentType := ""
	if body != "" {
		contentType = "application/json"
	}
	return b.raw(t, method, path, body, contentType, header)
}

// raw is doWithHeader with the Content-Type given ("": none).
func (b *testBundle) raw(t *testing.T, method, path, body, contentType string, header http.Header) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.server.URL+path, reader)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if header == nil {
		header = bearer(b.admin)
	}
	for name, values := range header {
		req.Header[name] = values
	}
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	b.bodies = append(b.bodies, string(raw))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s answered %d: %s", method, path, resp.StatusCode, raw)
	require.True(t, json.Valid(raw), "%s %s answered %d with invalid JSON: %s", method, path, resp.StatusCode, raw)
	return response{code: resp.StatusCode, header: resp.Header, body: string(raw)}
}

// ok sends a request that must succeed and returns the body.
func (b *testBundle) ok(t *testing.T, method, path, body string) string {
	t.Helper()
	r := b.do(t, method, path, body)
	require.Equal(t, http.StatusOK, r.code, "%s %s: %s", method, path, r.body)
	return r.body
}

// fail sends a request that must fail with code and returns its error
// message, which must be the only field of a JSON object and one line.
func (b *testBundle) fail(t *testing.T, code int, method, path, body string) string {
	t.Helper()
	r := b.do(t, method, path, body)
	require.Equal(t, code, r.code, "%s %s: %s", method, path, r.body)
	return errorMessage(t, r)
}

func errorMessage(t *testing.T, r response) string {
	t.Helper()
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &e), r.body)
	require.Len(t, e, 1, `an error is exactly {"error": "..."}: %s`, r.body)
	msg, ok := e["error"].(string)
	require.True(t, ok, `"error" must be a string: %s`, r.body)
	require.NotEmpty(t, msg)
	require.NotContains(t, msg, "\n", "one line: %q", msg)
	return msg
}

func integrationPath(id string, rest ...string) string {
	return strings.Join(append([]string{"/v1/integrations", id}, rest...), "/")
}

// get reads an integration through the API and checks that its JSON is
// the CLI's `status --output json`, byte for byte modulo indentation.
func (b *testBundle) get(t *testing.T, id string) integration.View {
	t.Helper()
	body := b.ok(t, http.MethodGet, integrationPath(id), "")
	require.JSONEq(t, b.cli(t, "status", id), body, "the API and the CLI show %s alike", id)
	return decodeView(t, body)
}

// command sends a command that must succeed and returns the resulting
// view, which must already be what a read shows (read-your-writes).
func (b *testBundle) command(t *testing.T, id, command, body string) integration.View {
	t.Helper()
	v := decodeView(t, b.ok(t, http.MethodPost, integrationPath(id, command), body))
	require.Equal(t, v, b.get(t, id), "%s returns the projected state", command)
	return v
}

// rejected sends a command the state must refuse: 409, a one-line reason,
// and no change to the integration, its events or its credentials.
func (b *testBundle) rejected(t *testing.T, id, command, body string) string {
	t.Helper()
	before := b.snapshot(t, id)
	msg := b.fail(t, http.StatusConflict, http.MethodPost, integrationPath(id, command), body)
	b.requireUnchanged(t, id, before)
	return msg
}

// events reads an integration's events through the API and checks them
// against the CLI's `events --output json`.
func (b *testBundle) events(t *testing.T, id string) []integration.Change {
	t.Helper()
	body := b.ok(t, http.MethodGet, integrationPath(id, "events"), "")
	require.JSONEq(t, b.cli(t, "events", id), body)
	var changes []integration.Change
	require.NoError(t, json.Unmarshal([]byte(body), &changes))
	return changes
}

// list reads GET /v1/integrations?query and returns the IDs, in order.
func (b *testBundle) list(t *testing.T, query string) []string {
	t.Helper()
	body := b.ok(t, http.MethodGet, "/v1/integrations?"+query, "")
	var views []integration.View
	require.NoError(t, json.Unmarshal([]byte(body), &views), body)
	require.NotNil(t, views, "an empty list is [], not null: %s", body)
	ids := make([]string, 0, len(views))
	for _, v := range views {
		ids = append(ids, v.ID)
	}
	return ids
}

// cli runs the CLI in-process against this stack with --output json and
// returns its stdout.
func (b *testBundle) cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"integrations", "--data-dir", b.stack.DataDir}, args...)
	code := cli.Run(context.Background(), append(args, "--output", "json"), &out, &errOut)
	require.Equal(t, cli.ExitOK, code, "%s\nstderr: %s", strings.Join(args, " "), errOut.String())
	return out.String()
}

func decodeView(t *testing.T, body string) integration.View {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var v integration.View
	require.NoError(t, dec.Decode(&v), body)
	return v
}

// state is everything a request that changes nothing must leave alone.
type state struct {
	integration integration.State
	events      int
	// credentialRows are the versions in crm_credentials, discarded
	// candidates included.
	credentialRows []int
}

func (b *testBundle) snapshot(t *testing.T, id string) state {
	t.Helper()
	ctx := context.Background()
	st, err := b.stack.Store.Get(ctx, id)
	require.NoError(t, err)
	changes, err := b.stack.Store.Events(ctx, id)
	require.NoError(t, err)
	return state{integration: st, events: len(changes), credentialRows: b.stack.StoredVersions(t, id)}
}

func (b *testBundle) requireUnchanged(t *testing.T, id string, before state) {
	t.Helper()
	after := b.snapshot(t, id)
	require.Equal(t, before.integration, after.integration, "%s must not change", id)
	require.Equal(t, before.events, after.events, "no event may be recorded for %s", id)
	require.Equal(t, before.credentialRows, after.credentialRows, "no credentials may be stored for %s", id)
}

// requireNoSecret checks that no response and no log line contains secret.
func (b *testBundle) requireNoSecret(t *testing.T, secret string) {
	t.Helper()
	require.NotEmpty(t, secret)
	for _, body := range b.bodies {
		require.NotContains(t, body, secret, "a response contains an API key")
	}
	require.NotContains(t, b.stack.Logs.String(), secret, "the logs contain an API key")
}

// sandboxKey creates a sandbox CRM account (nil scopes: the default ones)
// and returns its API key.
func (b *testBundle) sandboxKey(t *testing.T, scopes []string) string {
	t.Helper()
	acct, err := b.stack.Sandbox.CreateAccount(context.Background(), scopes)
	require.NoError(t, err)
	require.NotEmpty(t, acct.APIKey)
	return acct.APIKey
}

func (b *testBundle) createLead(t *testing.T, id, org, expectedSource string) {
	t.Helper()
	_, err := b.stack.Starter.Create(context.Background(), integration.Spec{
		ID: id, OrgID: org, Kind: integration.KindLead, Provider: "zillow", Name: "Zillow leads", ExpectedSource: expectedSource,
	}, "test")
	require.NoError(t, err)
}

func (b *testBundle) createCRM(t *testing.T, id, org string) {
	t.Helper()
	_, err := b.stack.Starter.Create(context.Background(), integration.Spec{
		ID: id, OrgID: org, Kind: integration.KindCRM, Provider: "sandbox",
	}, "test")
	require.NoError(t, err)
}

func (b *testBundle) sendLead(t *testing.T, id, source string) {
	t.Helper()
	b.leads++
	_, err := b.stack.Starter.Intake(context.Background(), id, starter.Lead{ExternalID: fmt.Sprintf("api-test-%d", b.leads), Source: source})
	require.NoError(t, err)
}

// authorizeBody is an authorize request carrying a sandbox API key.
func authorizeBody(t *testing.T, by, apiKey string) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{"by": by, "credentials": json.RawMessage(teststack.Credentials(apiKey))})
	require.NoError(t, err)
	return string(body)
}

func requireStatus(t *testing.T, v integration.View, status integration.Status, reason integration.Reason) {
	t.Helper()
	require.Equal(t, status, v.Status, "status of %s", v.ID)
	require.Equal(t, reason, v.Reason, "reason of %s", v.ID)
}

func step(t *testing.T, v integration.View, name string) integration.SetupStep {
	t.Helper()
	for _, s := range v.Setup.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("%s has no setup step %s", v.ID, name)
	return integration.SetupStep{}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		require.JSONEq(t, `{"status": "ok"}`, b.ok(t, http.MethodGet, "/healthz", ""))
	})
}

func TestLeadIntegration(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("lead")
		b.createLead(t, id, "acme", "Zillow Premier")

		v := b.get(t, id)
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
		require.Equal(t, int64(1), v.Version)
		require.Equal(t, integration.KindLead, v.Kind)
		require.Equal(t, "acme", v.OrgID)
		require.Equal(t, "zillow", v.Provider)
		require.Equal(t, "Zillow leads", v.Name)
		require.NotNil(t, v.ExpectedSource)
		require.Equal(t, "Zillow Premier", *v.ExpectedSource)
		require.Nil(t, v.LastSource)
		require.Nil(t, v.Validation, "lead integrations have no validation")
		require.False(t, step(t, v, integration.StepTestLeadReceived).Done)

		msg := b.rejected(t, id, "complete-setup", `{"by": "alice"}`)
		require.Contains(t, msg, `"Zillow Premier"`)

		// A near miss: the status and the rejection show both values.
		b.sendLead(t, id, "zillow premier")
		v = b.get(t, id)
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonSourceMismatch)
		require.NotNil(t, v.LastSource)
		require.Equal(t, "zillow premier", *v.LastSource)
		msg = b.rejected(t, id, "complete-setup", "")
		require.Contains(t, msg, `expected source "Zillow Premier"`)
		require.Contains(t, msg, `"zillow premier"`)

		b.sendLead(t, id, "Zillow Premier")
		requireStatus(t, b.get(t, id), integration.StatusSetupIncomplete, integration.ReasonAwaitingSetupCompletion)

		v = b.command(t, id, "complete-setup", `{"by": "alice", "note": "partner confirmed"}`)
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		require.True(t, step(t, v, integration.StepSetupCompleted).Done)

		// Active is sticky; commands that do not apply are refused.
		b.rejected(t, id, "complete-setup", "")
		b.rejected(t, id, "pause", `{"by": "ops"}`)
		b.rejected(t, id, "resume", `{"by": "ops"}`)
		key := b.sandboxKey(t, nil)
		msg = b.rejected(t, id, "authorize", authorizeBody(t, "ops", key))
		require.Contains(t, msg, "only CRM integrations take credentials")

		changes := b.events(t, id)
		require.Len(t, changes, int(v.Version), "one event per version")
		for i, ch := range changes {
			require.Equal(t, int64(i+1), ch.Version)
			require.Equal(t, id, ch.IntegrationID)
		}
		last := changes[len(changes)-1]
		require.Equal(t, integration.EventCompleteSetup, last.Event)
		require.Equal(t, b.adminName, last.Actor, "the actor is the API key's name")
		require.Equal(t, "alice", last.ClaimedBy, "the body's by is a claim beside it")
		require.Equal(t, "partner confirmed", last.Note)

		v = b.command(t, id, "delete", `{"by": "alice", "note": "partner left"}`)
		requireStatus(t, v, integration.StatusDeleted, integration.ReasonNone)
		msg = b.rejected(t, id, "complete-setup", "")
		require.Contains(t, msg, "deleted")
		b.rejected(t, id, "delete", "")
		changes = b.events(t, id)
		require.Len(t, changes, int(v.Version))
		require.Equal(t, integration.EventDelete, changes[len(changes)-1].Event)
		require.Equal(t, "partner left", changes[len(changes)-1].Note)

		b.requireNoSecret(t, key)
	})
}

func TestCRMIntegration(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		ctx := context.Background()
		id := testenv.ID("crm")
		b.createCRM(t, id, "acme")

		v := b.get(t, id)
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
		require.Equal(t, integration.KindCRM, v.Kind)
		require.Equal(t, "sandbox", v.Provider)
		require.Nil(t, v.ExpectedSource, "CRM integrations have no expected source")
		require.NotNil(t, v.Validation)
		require.Empty(t, v.Validation.Checks)
		require.Contains(t, b.ok(t, http.MethodGet, integrationPath(id), ""), `"checks":[]`, "no checks yet is [], not null")

		msg := b.rejected(t, id, "complete-setup", "")
		require.Contains(t, msg, "authorize")
		b.rejected(t, id, "pause", "")
		b.rejected(t, id, "resume", "")

		// A key without the write scope: validation fails, saying which check.
		weak := b.sandboxKey(t, []string{"contacts.read"})
		v = b.command(t, id, "authorize", authorizeBody(t, "ops", weak))
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonNeedsInformation)
		require.False(t, step(t, v, integration.StepAuthorized).Done)
		var failed []string
		for _, c := range v.Validation.Checks {
			if !c.OK {
				failed = append(failed, c.Name)
				require.NotEmpty(t, c.Remediation)
			}
		}
		require.Equal(t, []string{"scopes"}, failed)
		msg = b.rejected(t, id, "complete-setup", "")
		require.Contains(t, msg, "validation failed")

		key := b.sandboxKey(t, nil)
		v = b.command(t, id, "authorize", authorizeBody(t, "ops", key))
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingFinish)
		require.True(t, step(t, v, integration.StepAuthorized).Done)
		for _, c := range v.Validation.Checks {
			require.True(t, c.OK, "check %s", c.Name)
		}
		// The key is stored encrypted, as the second credentials version,
		// and is current: it passed validation.
		cred, err := b.stack.Store.CurrentCredential(ctx, id)
		require.NoError(t, err)
		require.Equal(t, 2, cred.Version)
		require.NotContains(t, string(cred.Ciphertext), key)
		plain, err := b.stack.Keyring.Open(cred.Ciphertext, id, cred.Version)
		require.NoError(t, err)
		require.JSONEq(t, string(teststack.Credentials(key)), string(plain))

		v = b.command(t, id, "complete-setup", `{"by": "manager"}`)
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		require.True(t, step(t, v, integration.StepFinished).Done)
		b.rejected(t, id, "complete-setup", "")
		b.rejected(t, id, "resume", "")

		v = b.command(t, id, "pause", `{"by": "ops", "note": "maintenance"}`)
		requireStatus(t, v, integration.StatusPaused, integration.ReasonManual)
		msg = b.rejected(t, id, "pause", "")
		require.Contains(t, msg, "paused")
		v = b.command(t, id, "resume", "")
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)

		changes := b.events(t, id)
		require.Len(t, changes, int(v.Version))
		pause := changes[len(changes)-2]
		require.Equal(t, integration.EventPause, pause.Event)
		require.Equal(t, b.adminName, pause.Actor)
		require.Equal(t, "ops", pause.ClaimedBy)
		require.Equal(t, "maintenance", pause.Note)
		require.Equal(t, integration.StatusPaused, pause.ToStatus)
		require.Equal(t, integration.ReasonManual, pause.ToReason)
		require.Equal(t, integration.EventResume, changes[len(changes)-1].Event)

		v = b.command(t, id, "delete", `{"by": "manager"}`)
		requireStatus(t, v, integration.StatusDeleted, integration.ReasonNone)
		b.rejected(t, id, "resume", "")
		msg = b.fail(t, http.StatusConflict, http.MethodPost, integrationPath(id, "authorize"), authorizeBody(t, "ops", key))
		require.Contains(t, msg, "deleted")

		b.requireNoSecret(t, weak)
		b.requireNoSecret(t, key)
	})
}

// TestAuthorizeDeletedStoresNothing: credentials sent for a deleted
// integration are refused, and not stored either.
func TestAuthorizeDeletedStoresNothing(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("crm")
		b.createCRM(t, id, "acme")
		b.command(t, id, "delete", `{"by": "manager"}`)
		key := b.sandboxKey(t, nil)
		msg := b.rejected(t, id, "authorize", authorizeBody(t, "ops", key))
		require.Contains(t, msg, "deleted")
		b.requireNoSecret(t, key)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		org, other := testenv.ID("org-a"), testenv.ID("org-b")
		// IDs sort in creation order, so expected lists read naturally.
		lead, crm, otherCRM := "a-"+testenv.ID("lead"), "b-"+testenv.ID("crm"), "c-"+testenv.ID("crm")
		b.createLead(t, lead, org, "z")
		b.createCRM(t, crm, org)
		b.createCRM(t, otherCRM, other)

		require.Equal(t, []string{lead, crm, otherCRM}, b.list(t, ""))
		require.Equal(t, []string{lead, crm}, b.list(t, "org="+org))
		require.JSONEq(t, b.cli(t, "list", "--org", org), b.ok(t, http.MethodGet, "/v1/integrations?org="+org, ""),
			"the API and the CLI list alike")
		require.Equal(t, []string{otherCRM}, b.list(t, "org="+other))
		require.Empty(t, b.list(t, "org=nobody"))
		require.Equal(t, []string{crm}, b.list(t, "org="+org+"&kind=crm"))
		require.Equal(t, []string{lead}, b.list(t, "org="+org+"&kind=lead"))
		require.Equal(t, []string{crm, otherCRM}, b.list(t, "kind=crm&status=setup_incomplete"))
		require.Empty(t, b.list(t, "status=active"))
		require.Equal(t, []string{lead}, b.list(t, "limit=1"))
		require.Equal(t, []string{lead, crm}, b.list(t, "limit=2"))
		require.Len(t, b.list(t, "limit=1000"), 3)
		// Empty values filter nothing, as a form with blank fields sends them.
		require.Len(t, b.list(t, "org=&kind=&status=&limit="), 3)

		b.sendLead(t, lead, "z")
		_, err := b.stack.Starter.Command(context.Background(), lead, integration.EventCompleteSetup, "test", "")
		require.NoError(t, err)
		require.Equal(t, []string{lead}, b.list(t, "status=active"))
		require.Equal(t, []string{crm}, b.list(t, "org="+org+"&status=setup_incomplete"))

		for _, tc := range []struct {
			query string
			want  []string // substrings of the error
		}{
			{"kind=fax", []string{`"kind"`, "lead or crm"}},
			{"kind=CRM", []string{`"kind"`}},
			{"status=sleeping", []string{`"status"`, "setup_incomplete"}},
			{"status=Active", []string{`"status"`}},
			{"limit=0", []string{`"limit"`, "1 to 1000"}},
			{"limit=-1", []string{`"limit"`}},
			{"limit=1001", []string{`"limit"`}},
			{"limit=ten", []string{`"limit"`}},
			{"limit=1.5", []string{`"limit"`}},
			{"org=" + url.QueryEscape("bad org!"), []string{`"org"`, "invalid org id"}},
			{"orgs=" + org, []string{`"orgs"`, "org, kind, status"}},
			{"org=" + org + "&org=" + other, []string{`"org"`, "once"}},
			{"org=%zz", []string{"query"}},
		} {
			msg := b.fail(t, http.StatusBadRequest, http.MethodGet, "/v1/integrations?"+tc.query, "")
			for _, want := range tc.want {
				require.Contains(t, msg, want, "?%s", tc.query)
			}
		}
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		lead, crm := testenv.ID("lead"), testenv.ID("crm")
		b.createLead(t, lead, "acme", "Zillow Premier")
		b.createCRM(t, crm, "acme")
		leadBefore, crmBefore := b.snapshot(t, lead), b.snapshot(t, crm)
		key := b.sandboxKey(t, nil)
		credentials := authorizeBody(t, "ops", key)
		crmPath := func(rest ...string) string { return integrationPath(crm, rest...) }
		over64KiB := strings.Repeat("x", 64<<10)

		for _, tc := range []struct {
			name               string
			method, path, body string
			code               int
			want               []string // substrings of the error
			allow              string   // the Allow header of a 405
		}{
			{name: "unknown id", method: "GET", path: integrationPath("no-such-id"),
				code: 404, want: []string{"no integration has id no-such-id"}},
			{name: "unknown id events", method: "GET", path: integrationPath("no-such-id", "events"),
				code: 404, want: []string{"no-such-id"}},
			{name: "unknown id command", method: "POST", path: integrationPath("no-such-id", "pause"), body: `{"by": "ops"}`,
				code: 404, want: []string{"no-such-id"}},
			{name: "unknown id authorize", method: "POST", path: integrationPath("no-such-id", "authorize"), body: credentials,
				code: 404, want: []string{"no-such-id"}},
			{name: "invalid id", method: "GET", path: integrationPath("bad%20id!"),
				code: 400, want: []string{"invalid integration id"}},
			{name: "invalid id events", method: "GET", path: integrationPath("bad%20id!", "events"),
				code: 400, want: []string{"invalid integration id"}},
			{name: "invalid id command", method: "POST", path: integrationPath("bad%20id!", "delete"),
				code: 400, want: []string{"invalid integration id"}},
			{name: "invalid id authorize", method: "POST", path: integrationPath("bad%20id!", "authorize"), body: credentials,
				code: 400, want: []string{"invalid integration id"}},
			{name: "too long id", method: "POST", path: integrationPath(strings.Repeat("a", 65), "pause"),
				code: 400, want: []string{"invalid integration id"}},

			{name: "unknown command", method: "POST", path: crmPath("frobnicate"), body: `{"by": "ops"}`,
				code: 404, want: []string{`"frobnicate"`, "complete-setup, pause, resume, delete or authorize"}},
			{name: "internal event as command", method: "POST", path: crmPath("validated"),
				code: 404, want: []string{`unknown command "validated"`}},
			{name: "lead event as command", method: "POST", path: crmPath("lead-received"), body: `{"by": "ops"}`,
				code: 404, want: []string{`unknown command "lead-received"`}},

			{name: "truncated JSON", method: "POST", path: crmPath("pause"), body: `{"by": "ops"`,
				code: 400, want: []string{"not valid JSON"}},
			{name: "not JSON", method: "POST", path: crmPath("pause"), body: `pause please`,
				code: 400, want: []string{"not valid JSON"}},
			{name: "JSON array", method: "POST", path: crmPath("pause"), body: `["ops"]`,
				code: 400, want: []string{"JSON object", "array"}},
			{name: "two JSON objects", method: "POST", path: crmPath("pause"), body: `{"by": "ops"} {"by": "eve"}`,
				code: 400, want: []string{"after the JSON object"}},
			{name: "wrong field type", method: "POST", path: crmPath("pause"), body: `{"by": 5}`,
				code: 400, want: []string{`"by"`, "string"}},
			{name: "unknown field", method: "POST", path: crmPath("pause"), body: `{"by": "ops", "force": true}`,
				code: 400, want: []string{`"force"`}},
			{name: "credentials on a command", method: "POST", path: crmPath("complete-setup"), body: credentials,
				code: 400, want: []string{`"credentials"`, "authorize"}},
			{name: "note on authorize", method: "POST", path: crmPath("authorize"), body: `{"note": "x", "credentials": {"api_key": "` + key + `"}}`,
				code: 400, want: []string{`"note"`}},
			{name: "command body over 64 KiB", method: "POST", path: crmPath("pause"), body: `{"by": "ops", "note": "` + over64KiB + `"}`,
				code: 413, want: []string{"64 KiB"}},
			{name: "authorize body over 64 KiB", method: "POST", path: crmPath("authorize"),
				body: `{"credentials": {"api_key": "` + key + `"}, "by": "` + over64KiB + `"}`,
				code: 413, want: []string{"64 KiB"}},

			{name: "missing credentials", method: "POST", path: crmPath("authorize"), body: `{"by": "ops"}`,
				code: 400, want: []string{`"credentials"`, "api_key"}},
			{name: "empty authorize body", method: "POST", path: crmPath("authorize"),
				code: 400, want: []string{`"credentials"`}},
			{name: "null credentials", method: "POST", path: crmPath("authorize"), body: `{"credentials": null}`,
				code: 400, want: []string{`"credentials"`}},
			{name: "api_key a number", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"api_key": 42}}`,
				code: 400, want: []string{"api_key", "string"}},
			{name: "secret api_key a number", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"api_key": 987654321987654321987654321}}`,
				code: 400, want: []string{"api_key"}},
			{name: "empty api_key", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"api_key": ""}}`,
				code: 400, want: []string{"api_key"}},
			{name: "api_key with a line break", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"api_key": "` + key + `\n"}}`,
				code: 400, want: []string{"api_key", "whitespace"}},
			{name: "misspelled api_key", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"apikey": "` + key + `"}}`,
				code: 400, want: []string{"apikey"}},
			{name: "extra credentials field", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"api_key": "` + key + `", "region": "eu"}}`,
				code: 400, want: []string{"region"}},
			{name: "credentials a string", method: "POST", path: crmPath("authorize"), body: `{"credentials": "` + key + `"}`,
				code: 400, want: []string{"JSON object"}},
			{name: "credentials broken inside", method: "POST", path: crmPath("authorize"), body: `{"credentials": {"api_key": ` + key + `}}`,
				code: 400, want: []string{"not valid JSON"}},
			{name: "authorize a lead integration", method: "POST", path: integrationPath(lead, "authorize"), body: credentials,
				code: 409, want: []string{"only CRM integrations take credentials"}},

			{name: "DELETE an integration", method: "DELETE", path: crmPath(),
				code: 405, want: []string{"DELETE", "GET"}, allow: "GET, HEAD"},
			{name: "PUT the list", method: "PUT", path: "/v1/integrations", body: `{}`,
				code: 405, want: []string{"PUT"}, allow: "GET, HEAD"},
			{name: "GET a command", method: "GET", path: crmPath("pause"),
				code: 405, want: []string{"POST"}, allow: "POST"},
			{name: "GET authorize", method: "GET", path: crmPath("authorize"),
				code: 405, want: []string{"POST"}, allow: "POST"},
			{name: "POST events", method: "POST", path: crmPath("events"), body: `{}`,
				code: 405, want: []string{"GET"}, allow: "GET, HEAD"},
			{name: "POST healthz", method: "POST", path: "/healthz",
				code: 405, want: []string{"GET"}, allow: "GET, HEAD"},
			{name: "PATCH a command", method: "PATCH", path: crmPath("delete"), body: `{}`,
				code: 405, want: []string{"POST"}, allow: "POST"},

			{name: "unknown path", method: "GET", path: "/v1/leads",
				code: 404, want: []string{"no route for GET /v1/leads"}},
			{name: "path too deep", method: "GET", path: crmPath("events", "1"),
				code: 404, want: []string{"no route"}},
			{name: "empty id", method: "GET", path: "/v1/integrations/",
				code: 404, want: []string{"no route"}},
		} {
			r := b.do(t, tc.method, tc.path, tc.body)
			require.Equal(t, tc.code, r.code, "%s: %s", tc.name, r.body)
			msg := errorMessage(t, r)
			for _, want := range tc.want {
				require.Contains(t, msg, want, tc.name)
			}
			require.NotContains(t, msg, key, "%s: the error echoes the API key", tc.name)
			require.NotContains(t, msg, "987654321987654321", "%s: the error echoes a secret", tc.name)
			require.Equal(t, tc.allow, r.header.Get("Allow"), tc.name)
		}

		b.requireUnchanged(t, lead, leadBefore)
		b.requireUnchanged(t, crm, crmBefore)
		require.Len(t, b.events(t, crm), 1)
		b.requireNoSecret(t, key)
		require.NotContains(t, b.stack.Logs.String(), "987654321987654321")
	})
}
