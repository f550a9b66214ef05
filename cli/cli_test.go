package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
)

type testBundle struct {
	stack *teststack.Stack
}

// result is one CLI invocation.
type result struct {
	stdout, stderr string
	code           int
}

func setup(t *testing.T, db testenv.Database) *testBundle {
	t.Helper()
	return &testBundle{stack: teststack.New(t, db, teststack.Options{})}
}

// run invokes the CLI in-process the way a user in the dev stack's
// directory would, from a second terminal.
func (b *testBundle) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"integrations", "--data-dir", b.stack.DataDir}, args...), &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// ok runs a command that must succeed.
func (b *testBundle) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := b.run(t, args...)
	require.Equal(t, cli.ExitOK, r.code, "integrations %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

// rejected runs a command the state must reject: exit 3 and a one-line
// reason on stderr.
func (b *testBundle) rejected(t *testing.T, args ...string) string {
	t.Helper()
	r := b.run(t, args...)
	require.Equal(t, cli.ExitRejected, r.code, "integrations %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	require.Empty(t, r.stdout)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "rejected: "), r.stderr)
	return r.stderr
}

// view runs a command with --output json and decodes its integration.
func (b *testBundle) view(t *testing.T, args ...string) integration.View {
	t.Helper()
	var v integration.View
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, append(args, "--output", "json")...)), &v))
	return v
}

func (b *testBundle) status(t *testing.T, id string) integration.View {
	t.Helper()
	return b.view(t, "status", id)
}

func (b *testBundle) events(t *testing.T, id string) []integration.Change {
	t.Helper()
	var changes []integration.Change
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, "events", id, "-o", "json")), &changes))
	return changes
}

// sandboxKey creates a sandbox account through the CLI and returns its key.
func (b *testBundle) sandboxKey(t *testing.T, scopes ...string) string {
	t.Helper()
	args := []string{"sandbox", "account", "create", "-o", "json"}
	if len(scopes) > 0 {
		args = append(args, "--scopes", strings.Join(scopes, ","))
	}
	var acct struct {
		APIKey string `json:"api_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, args...)), &acct))
	require.NotEmpty(t, acct.APIKey)
	return acct.APIKey
}

func (b *testBundle) credentialsFile(t *testing.T, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "creds.json")
	require.NoError(t, os.WriteFile(path, teststack.Credentials(key), 0o600))
	return path
}

// eventually polls the projection until cond holds.
func (b *testBundle) eventually(t *testing.T, id string, cond func(v integration.View) bool, what string) integration.View {
	t.Helper()
	var last integration.View
	require.Eventually(t, func() bool {
		last = b.status(t, id)
		return cond(last)
	}, 60*time.Second, 200*time.Millisecond, "%s; last status %s/%s v%d", what, last.Status, last.Reason, last.Version)
	return last
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

// requireEventsMatchVersions checks integration_events has exactly one row
// per version, 1..current.
func (b *testBundle) requireEventsMatchVersions(t *testing.T, id string) []integration.Change {
	t.Helper()
	v := b.status(t, id)
	changes := b.events(t, id)
	require.Len(t, changes, int(v.Version))
	for i, ch := range changes {
		require.Equal(t, int64(i+1), ch.Version)
	}
	return changes
}

func TestLeadLifecycle(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("lead")

		v := b.view(t, "create", "lead", "--org", "acme", "--partner", "zillow", "--expected-source", "Zillow Premier", "--id", id, "--name", "Zillow leads")
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
		require.Equal(t, int64(1), v.Version)
		require.Equal(t, "acme", v.OrgID)
		require.Equal(t, "zillow", v.Provider)
		require.Equal(t, integration.KindLead, v.Kind)
		require.NotNil(t, v.ExpectedSource)
		require.Equal(t, "Zillow Premier", *v.ExpectedSource)
		require.Nil(t, v.LastSource)
		require.False(t, step(t, v, integration.StepTestLeadReceived).Done)
		require.False(t, v.UpdatedAt.IsZero())

		// Complete-setup before any test lead is rejected, saying why.
		msg := b.rejected(t, "complete-setup", id)
		require.Contains(t, msg, `"Zillow Premier"`)

		// Near misses are mismatches: case, trailing space.
		for _, wrong := range []string{"zillow premier", "Zillow Premier ", "zillow premier"} {
			v = b.view(t, "send-lead", id, "--source", wrong)
			requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonSourceMismatch)
			require.Equal(t, wrong, *v.LastSource)
		}
		msg = b.rejected(t, "complete-setup", id)
		require.Contains(t, msg, `expected source "Zillow Premier"`)
		require.Contains(t, msg, `"zillow premier"`)

		// One revision request per distinct wrong value.
		notes, err := b.stack.Store.Notifications(context.Background(), id)
		require.NoError(t, err)
		var revisions int
		for _, n := range notes {
			if n.Kind == "source_revision" {
				revisions++
				require.Equal(t, "partner", n.Channel)
			}
		}
		require.Equal(t, 2, revisions)

		// The exact source: setup still incomplete, leads never complete it.
		v = b.view(t, "send-lead", id, "--source", "Zillow Premier")
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingSetupCompletion)
		require.True(t, step(t, v, integration.StepTestLeadReceived).Done)
		require.NotNil(t, step(t, v, integration.StepTestLeadReceived).At)
		v = b.view(t, "send-lead", id, "--source", "Zillow Premier")
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingSetupCompletion)

		v = b.view(t, "complete-setup", id, "--by", "alice", "--note", "partner confirmed")
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		require.True(t, step(t, v, integration.StepSetupCompleted).Done)

		// Active is sticky: later leads of any source change nothing.
		before := v.Version
		v = b.view(t, "send-lead", id, "--source", "something else")
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		require.Equal(t, before, v.Version)
		b.rejected(t, "complete-setup", id)
		b.rejected(t, "pause", id)
		b.rejected(t, "resume", id)

		// Read-your-writes: the projection already shows what the command returned.
		require.Equal(t, v, b.status(t, id))
		changes := b.requireEventsMatchVersions(t, id)
		last := changes[len(changes)-1]
		require.Equal(t, integration.EventCompleteSetup, last.Event)
		require.Equal(t, "alice", last.Actor)
		require.Equal(t, "partner confirmed", last.Note)

		v = b.view(t, "delete", id)
		requireStatus(t, v, integration.StatusDeleted, integration.ReasonNone)
		require.Equal(t, integration.StatusDeleted, b.status(t, id).Status)
		b.rejected(t, "complete-setup", id)
		b.rejected(t, "send-lead", id, "--source", "Zillow Premier")
		b.requireEventsMatchVersions(t, id)

		// The deleted ID is not reused.
		b.rejected(t, "create", "lead", "--org", "acme", "--partner", "zillow", "--expected-source", "x", "--id", id)
	})
}

func TestCRMLifecycle(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		ctx := context.Background()
		id := testenv.ID("crm")
		// A short validation interval so the periodic validation runs
		// within the test.
		v := b.view(t, "create", "crm", "--org", "acme", "--provider", "sandbox", "--id", id, "--validation-interval", "1s")
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
		require.NotNil(t, v.Validation)
		require.Empty(t, v.Validation.Checks)

		msg := b.rejected(t, "complete-setup", id)
		require.Contains(t, msg, "integrations authorize")
		b.rejected(t, "pause", id)
		b.rejected(t, "resume", id)

		// Validation failing during setup: needs_information with the checks.
		weak := b.sandboxKey(t, "contacts.read")
		v = b.view(t, "authorize", id, "--credentials-file", b.credentialsFile(t, weak))
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonNeedsInformation)
		require.False(t, step(t, v, integration.StepAuthorized).Done)
		var failed []string
		for _, c := range v.Validation.Checks {
			if !c.OK {
				failed = append(failed, c.Name)
				require.Equal(t, integration.ReasonInsufficientPermissions, c.Code)
				require.NotEmpty(t, c.Remediation)
			}
		}
		require.Equal(t, []string{"scopes"}, failed)
		msg = b.rejected(t, "complete-setup", id)
		require.Contains(t, msg, "validation failed")

		// A revoked key is needs_information too.
		revoked := b.sandboxKey(t)
		b.ok(t, "sandbox", "account", "revoke", revoked)
		v = b.view(t, "authorize", id, "--credentials-file", b.credentialsFile(t, revoked))
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonNeedsInformation)

		key := b.sandboxKey(t)
		v = b.view(t, "authorize", id, "--credentials-file", b.credentialsFile(t, key))
		requireStatus(t, v, integration.StatusSetupIncomplete, integration.ReasonAwaitingFinish)
		require.True(t, step(t, v, integration.StepAuthorized).Done)
		v = b.view(t, "complete-setup", id, "--by", "manager")
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		require.True(t, step(t, v, integration.StepFinished).Done)
		b.rejected(t, "complete-setup", id)
		b.rejected(t, "resume", id)

		// Periodic validation pauses on a revoked key and notifies...
		b.ok(t, "sandbox", "account", "revoke", key)
		v = b.eventually(t, id, func(v integration.View) bool { return v.Status == integration.StatusPaused }, "validation pauses")
		requireStatus(t, v, integration.StatusPaused, integration.ReasonExpiredCredentials)
		requireOpenPauseNotices(t, b, id, 2)
		msg = b.rejected(t, "resume", id)
		require.Contains(t, msg, "expired_credentials")

		// ...and resumes by itself when the key is restored.
		b.ok(t, "sandbox", "account", "restore", key)
		v = b.eventually(t, id, func(v integration.View) bool { return v.Status == integration.StatusActive }, "validation resumes")
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)
		requireOpenPauseNotices(t, b, id, 0)

		// A dropped scope pauses with insufficient_permissions.
		b.ok(t, "sandbox", "account", "drop-scope", key, "contacts.write")
		b.eventually(t, id, func(v integration.View) bool { return v.Reason == integration.ReasonInsufficientPermissions }, "scope pause")
		_, err := b.stack.Sandbox.AddScope(ctx, key, "contacts.write")
		require.NoError(t, err)
		b.eventually(t, id, func(v integration.View) bool { return v.Status == integration.StatusActive }, "scope restored")

		// A manual pause never resumes by itself, even with validation passing.
		v = b.view(t, "pause", id, "--by", "ops", "--note", "maintenance")
		requireStatus(t, v, integration.StatusPaused, integration.ReasonManual)
		b.rejected(t, "pause", id)
		// Validation keeps running, and passing, while the pause holds:
		// three periodic validations later nothing has changed.
		paused := v.Version
		before := len(b.validations(t, id))
		var since []validation
		require.Eventually(t, func() bool {
			since = b.validations(t, id)[before:]
			done := 0
			for _, val := range since {
				if val.completed {
					done++
				}
			}
			return done >= 3
		}, 60*time.Second, 200*time.Millisecond, "three validations run during the manual pause")
		for _, val := range since {
			for _, c := range val.checks {
				require.True(t, c.OK, "validation during the pause passes: %+v", c)
			}
		}
		v = b.status(t, id)
		requireStatus(t, v, integration.StatusPaused, integration.ReasonManual)
		require.Equal(t, paused, v.Version, "nothing changed during the pause")

		// Resume validates: a revoked key turns the manual pause into a
		// validation pause...
		b.ok(t, "sandbox", "account", "revoke", key)
		v = b.view(t, "resume", id)
		requireStatus(t, v, integration.StatusPaused, integration.ReasonExpiredCredentials)
		// ...which re-authorizing with a good key lifts at once.
		fresh := b.sandboxKey(t)
		v = b.view(t, "authorize", id, "--credentials-file", b.credentialsFile(t, fresh))
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)

		v = b.view(t, "pause", id)
		requireStatus(t, v, integration.StatusPaused, integration.ReasonManual)
		v = b.view(t, "resume", id)
		requireStatus(t, v, integration.StatusActive, integration.ReasonNone)

		b.requireEventsMatchVersions(t, id)
		v = b.view(t, "delete", id)
		requireStatus(t, v, integration.StatusDeleted, integration.ReasonNone)
		b.rejected(t, "resume", id)
		b.rejected(t, "authorize", id, "--credentials-file", b.credentialsFile(t, fresh))
	})
}

// validation is one Validate activity of an integration's workflow.
type validation struct {
	completed bool
	checks    []integration.Check
}

// validations returns the Validate activities the integration's workflow
// scheduled, oldest first across its runs, with the checks of those that
// completed: what the workflow really ran, wherever the projection shows
// no change.
func (b *testBundle) validations(t *testing.T, id string) []validation {
	t.Helper()
	var out []validation
	for _, run := range testenv.History(t, b.stack.Temporal, integration.WorkflowID(integration.KindCRM, id)) {
		scheduled := map[int64]int{} // event ID -> index in out
		for _, ev := range run.Events {
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Validate" {
				scheduled[ev.GetEventId()] = len(out)
				out = append(out, validation{})
			}
			if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
				if i, ok := scheduled[a.GetScheduledEventId()]; ok {
					out[i].completed = true
					require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(a.GetResult(), &out[i].checks))
				}
			}
		}
	}
	return out
}

func requireOpenPauseNotices(t *testing.T, b *testBundle, id string, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		notes, err := b.stack.Store.Notifications(context.Background(), id)
		require.NoError(t, err)
		open := 0
		for _, n := range notes {
			if n.Kind == "paused" && n.Status == "open" {
				open++
			}
		}
		return open == want
	}, 20*time.Second, 100*time.Millisecond, "want %d open pause notifications", want)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		id := testenv.ID("crm")
		b.ok(t, "create", "crm", "--org", "acme", "--provider", "sandbox", "--id", id)
		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"unknown command", []string{"frobnicate"}, cli.ExitUsage, "unknown command"},
			{"bad output", []string{"--output", "yaml", "list"}, cli.ExitUsage, "--output"},
			{"missing id", []string{"pause"}, cli.ExitUsage, "exactly one argument"},
			{"two ids", []string{"pause", "a", "b"}, cli.ExitUsage, "exactly one argument"},
			{"invalid id", []string{"status", "bad id!"}, cli.ExitUsage, "invalid integration id"},
			{"unknown id", []string{"status", "no-such-thing"}, cli.ExitUsage, "no integration has id"},
			{"unknown provider", []string{"create", "crm", "--org", "acme", "--provider", "nope"}, cli.ExitUsage, "sandbox"},
			{"missing org", []string{"create", "crm", "--provider", "sandbox"}, cli.ExitUsage, "--org"},
			{"missing expected source", []string{"create", "lead", "--org", "acme", "--partner", "p"}, cli.ExitUsage, "--expected-source"},
			{"bad kind filter", []string{"list", "--kind", "fax"}, cli.ExitUsage, "unknown kind"},
			{"bad status filter", []string{"list", "--status", "sleeping"}, cli.ExitUsage, "unknown status"},
			{"bad limit", []string{"list", "--limit", "0"}, cli.ExitUsage, "--limit"},
			{"missing credentials file", []string{"authorize", id, "--credentials-file", "/nonexistent/creds.json"}, cli.ExitUsage, "credentials file"},
			{"unknown flag", []string{"pause", id, "--bogus"}, cli.ExitUsage, "bogus"},
			{"duplicate id", []string{"create", "crm", "--org", "acme", "--provider", "sandbox", "--id", id}, cli.ExitRejected, "already exists"},
			{"lead command on crm", []string{"send-lead", id, "--source", "x"}, cli.ExitRejected, "does not receive leads"},
		} {
			r := b.run(t, tc.args...)
			require.Equal(t, tc.code, r.code, "%s: stdout %q stderr %q", tc.name, r.stdout, r.stderr)
			require.Contains(t, r.stderr, tc.want, tc.name)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "%s: one line: %q", tc.name, r.stderr)
		}

		// Malformed credentials: rejected before anything is stored.
		bad := filepath.Join(t.TempDir(), "bad.json")
		require.NoError(t, os.WriteFile(bad, []byte(`{"api_key": 42}`), 0o600))
		r := b.run(t, "authorize", id, "--credentials-file", bad)
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Empty(t, b.stack.StoredVersions(t, id), "no credentials may be stored")

		// Nothing above changed the integration.
		v := b.status(t, id)
		require.Equal(t, int64(1), v.Version)
		require.Len(t, b.events(t, id), 1)
	})
}

func TestListAndOutput(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		org := testenv.ID("org")
		lead := testenv.ID("lead")
		crmID := testenv.ID("crm")
		b.ok(t, "create", "lead", "--org", org, "--partner", "zillow", "--expected-source", "z", "--id", lead)
		b.ok(t, "create", "crm", "--org", org, "--provider", "sandbox", "--id", crmID)

		var views []integration.View
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "list", "--org", org, "-o", "json")), &views))
		require.Len(t, views, 2)
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "list", "--org", org, "--kind", "crm", "-o", "json")), &views))
		require.Len(t, views, 1)
		require.Equal(t, crmID, views[0].ID)
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "list", "--org", org, "--status", "active", "-o", "json")), &views))
		require.Empty(t, views)

		// status --output json carries the documented fields.
		var raw map[string]any
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "status", lead, "-o", "json")), &raw))
		for _, k := range []string{"id", "org_id", "kind", "provider", "status", "reason", "version", "updated_at", "setup", "expected_source"} {
			require.Contains(t, raw, k)
		}
		steps := raw["setup"].(map[string]any)["steps"].([]any)
		require.Len(t, steps, 2)
		for _, k := range []string{"name", "done", "at"} {
			require.Contains(t, steps[0].(map[string]any), k)
		}
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "status", crmID, "-o", "json")), &raw))
		require.Contains(t, raw["validation"].(map[string]any), "checks")

		// --live asks the workflow, which agrees with the projection.
		var live struct {
			integration.View
			ProjectedVersion int64 `json:"projected_version"`
		}
		require.NoError(t, json.Unmarshal([]byte(b.ok(t, "status", crmID, "--live", "-o", "json")), &live))
		require.Equal(t, integration.StatusSetupIncomplete, live.Status)
		require.Equal(t, int64(1), live.ProjectedVersion)

		text := b.ok(t, "status", lead)
		require.Contains(t, text, "setup_incomplete (awaiting_test_lead)")
		require.Contains(t, b.ok(t, "list", "--org", org), crmID)
		require.Contains(t, b.ok(t, "events", lead), "created")
	})
}
