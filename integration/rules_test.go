package integration

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The identities every fixture uses. The expected source has a capital
// letter so the case-sensitivity cases below are meaningful.
const (
	testLeadID         = "lead-1"
	testCRMID          = "crm-1"
	testOrgID          = "org-1"
	testActor          = "alice@example.test"
	testNote           = "from the rules tests"
	testExpectedSource = "Zillow"
	testWrongSource    = "zillow"
)

// testStart is the creation time of every fixture; events follow it.
var testStart = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// testBundle is what one test needs to build states by replaying events
// through Apply: a clock that hands out strictly increasing event times, so
// every Change, setup step and validation carries a distinct time a test
// can check.
type testBundle struct {
	now time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{now: testStart}
}

// tick advances the bundle's clock by a minute and returns the new time.
func (b *testBundle) tick() time.Time {
	b.now = b.now.Add(time.Minute)
	return b.now
}

func (b *testBundle) newLead(t *testing.T) State {
	t.Helper()
	s, err := New(Spec{
		ID: testLeadID, OrgID: testOrgID, Kind: KindLead, Provider: "zillow-partner",
		Name: "Zillow leads", ExpectedSource: testExpectedSource,
	}, testStart)
	require.NoError(t, err)
	return s
}

func (b *testBundle) newCRM(t *testing.T) State {
	t.Helper()
	s, err := New(Spec{ID: testCRMID, OrgID: testOrgID, Kind: KindCRM, Provider: "hubspot", Name: "HubSpot"}, testStart)
	require.NoError(t, err)
	return s
}

// replay applies evs to s in order, as the workflow would, asserting every
// step succeeds and keeps the transition invariants.
func (b *testBundle) replay(t *testing.T, s State, evs ...Event) State {
	t.Helper()
	for _, ev := range evs {
		tr, err := b.apply(t, s, ev)
		require.NoError(t, err, "replaying %s", ev.Type)
		s = tr.State
	}
	return s
}

// apply stamps ev with the next clock time (unless it has one), applies it
// to s and checks what must hold for every transition: the receiver is not
// mutated, Apply is deterministic, the result shares no memory with the
// receiver, rejections change nothing, and versions and Change records
// follow visible changes exactly.
func (b *testBundle) apply(t *testing.T, s State, ev Event) (Transition, error) {
	t.Helper()
	if ev.At.IsZero() {
		ev.At = b.tick()
	}
	before := deepCopy(s)

	tr, err := s.Apply(ev)
	require.Equal(t, before, s, "Apply(%s) mutated its receiver", ev.Type)

	again, againErr := s.Apply(ev)
	require.Equal(t, tr, again, "Apply(%s) is not deterministic", ev.Type)
	require.Equal(t, err, againErr, "Apply(%s) is not deterministic", ev.Type)

	requireTransitionInvariants(t, s, ev, tr, err)

	if err == nil && tr.Changed {
		// Scribble over everything the new state holds by reference: none
		// of it may be shared with the receiver.
		scribble(&again.State)
		require.Equal(t, before, s, "Apply(%s) returned a state sharing memory with its receiver", ev.Type)
	}
	return tr, err
}

// mustApply is apply for events the state must accept.
func (b *testBundle) mustApply(t *testing.T, s State, ev Event) Transition {
	t.Helper()
	tr, err := b.apply(t, s, ev)
	require.NoError(t, err, "%s from %s/%s", ev.Type, s.Status, s.Reason)
	return tr
}

// mustReject is apply for events the state must reject; it returns the
// rejection, already checked to be a one-line *Rejection for ev.
func (b *testBundle) mustReject(t *testing.T, s State, ev Event) *Rejection {
	t.Helper()
	_, err := b.apply(t, s, ev)
	require.Error(t, err, "%s from %s/%s must be rejected", ev.Type, s.Status, s.Reason)
	var rej *Rejection
	require.True(t, errors.As(err, &rej))
	return rej
}

func requireTransitionInvariants(t *testing.T, s State, ev Event, tr Transition, err error) {
	t.Helper()
	if err != nil {
		require.True(t, IsRejection(err), "%s from %s/%s: want a *Rejection, got %T: %v", ev.Type, s.Status, s.Reason, err, err)
		var rej *Rejection
		require.True(t, errors.As(err, &rej))
		require.Equal(t, ev.Type, rej.Command)
		require.Equal(t, rej.Message, err.Error())
		requireOneLine(t, rej.Message)
		require.Equal(t, s, tr.State, "a rejected %s must leave the state as it was", ev.Type)
		require.False(t, tr.Changed)
		require.Zero(t, tr.Change)
		require.Empty(t, tr.Effects, "a rejected %s must have no effects", ev.Type)
		return
	}
	if !tr.Changed {
		require.Equal(t, s, tr.State, "%s reported no change but the state differs", ev.Type)
		require.Zero(t, tr.Change)
		// An effect without a change would not be recorded, so the shell
		// could neither dedupe nor replay it.
		require.Empty(t, tr.Effects, "%s has effects without a change", ev.Type)
		return
	}
	require.False(t, visiblySame(s, tr.State), "%s reported a change that is not visible", ev.Type)
	require.Equal(t, s.Version+1, tr.State.Version, "a change bumps the version by exactly one")
	require.Equal(t, ev.At, tr.State.UpdatedAt)
	require.Equal(t, Change{
		IntegrationID: s.ID, Version: s.Version + 1, Event: ev.Type,
		FromStatus: s.Status, FromReason: s.Reason, ToStatus: tr.State.Status, ToReason: tr.State.Reason,
		Actor: ev.Actor, Note: ev.Note, At: ev.At,
	}, tr.Change)
	// The status is true: a CRM integration that shows a healthy active
	// has no failing sync behind it.
	if tr.State.Kind == KindCRM && tr.State.Status == StatusActive {
		require.Zero(t, tr.State.ConsecutiveFailures, "%s: active while its last sync failed", ev.Type)
		require.False(t, tr.State.NeedsAttention, "%s: active while it needs attention", ev.Type)
		require.Empty(t, tr.State.LastSyncError, "%s: active with a sync error", ev.Type)
	}
	// Identity never changes.
	require.Equal(t, s.ID, tr.State.ID)
	require.Equal(t, s.OrgID, tr.State.OrgID)
	require.Equal(t, s.Kind, tr.State.Kind)
	require.Equal(t, s.Provider, tr.State.Provider)
	require.Equal(t, s.ExpectedSource, tr.State.ExpectedSource)
	require.Equal(t, s.CreatedAt, tr.State.CreatedAt)
}

func requireOneLine(t *testing.T, msg string) {
	t.Helper()
	require.NotEmpty(t, msg)
	require.NotContains(t, msg, "\n", "message must be one line: %q", msg)
	require.NotContains(t, msg, "\r", "message must be one line: %q", msg)
	require.Equal(t, strings.TrimSpace(msg), msg, "message has stray whitespace: %q", msg)
}

// visiblySame reports whether a and b show the same thing, ignoring the
// version bookkeeping. It is written independently of the package's own
// comparison so the test does not trust the code under test.
func visiblySame(a, b State) bool {
	a.Version, b.Version = 0, 0
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// deepCopy copies s down to every slice element and pointee, so a later
// comparison catches mutation through any reference.
func deepCopy(s State) State {
	c := s
	c.Setup = slices.Clone(s.Setup)
	for i := range c.Setup {
		if at := c.Setup[i].At; at != nil {
			copied := *at
			c.Setup[i].At = &copied
		}
	}
	c.RevisionRequested = slices.Clone(s.RevisionRequested)
	if s.Validation != nil {
		v := *s.Validation
		v.Checks = slices.Clone(v.Checks)
		if v.At != nil {
			at := *v.At
			v.At = &at
		}
		c.Validation = &v
	}
	return c
}

// scribble overwrites every slice element and the validation record of s in
// place.
func scribble(s *State) {
	for i := range s.Setup {
		s.Setup[i].Name += "#"
		s.Setup[i].Done = !s.Setup[i].Done
		s.Setup[i].At = nil
	}
	for i := range s.RevisionRequested {
		s.RevisionRequested[i] += "#"
	}
	if s.Validation != nil {
		s.Validation.At = nil
		for i := range s.Validation.Checks {
			s.Validation.Checks[i].Name += "#"
			s.Validation.Checks[i].OK = !s.Validation.Checks[i].OK
		}
	}
}

// checkCatalog is what a CRM connector checks, each failing with its own
// pause reason and remediation text.
var checkCatalog = []Check{
	{Name: "token", Code: ReasonExpiredCredentials, Message: "refresh token was revoked", Remediation: "reconnect HubSpot from the integration page"},
	{Name: "scopes", Code: ReasonInsufficientPermissions, Message: "missing scope crm.objects.contacts.write", Remediation: "grant the app the contacts write scope"},
	{Name: "api_access", Code: ReasonAPIDisabled, Message: "API access is disabled for this portal", Remediation: "enable API access in the HubSpot settings"},
}

// passing returns a validation result where every check passes.
func passing() []Check {
	var checks []Check
	for _, c := range checkCatalog {
		checks = append(checks, Check{Name: c.Name, OK: true})
	}
	return checks
}

// failing returns a validation result where the checks with the given codes
// fail and the rest pass.
func failing(codes ...Reason) []Check {
	var checks []Check
	for _, c := range checkCatalog {
		if slices.Contains(codes, c.Code) {
			checks = append(checks, c)
		} else {
			checks = append(checks, Check{Name: c.Name, OK: true})
		}
	}
	return checks
}

// catalogCheck returns the failing check of checkCatalog with code.
func catalogCheck(code Reason) Check {
	i := slices.IndexFunc(checkCatalog, func(c Check) bool { return c.Code == code })
	return checkCatalog[i]
}

func leadFrom(source string) Event { return Event{Type: EventLeadReceived, Source: source} }

func command(typ EventType) Event { return Event{Type: typ, Actor: testActor, Note: testNote} }

func commandWith(typ EventType, checks []Check) Event {
	ev := command(typ)
	ev.Checks = checks
	return ev
}

func authorizeWith(checks []Check) Event { return commandWith(EventAuthorize, checks) }

func resumeWith(checks []Check) Event { return commandWith(EventResume, checks) }

// validation is the periodic validation timer's outcome: no actor.
func validation(checks []Check) Event { return Event{Type: EventValidated, Checks: checks} }

func timer(typ EventType) Event { return Event{Type: typ} }

// syncFailure is a transient delivery failure, retried a minute later.
func syncFailure() Event {
	return Event{Type: EventSyncFailed, Actor: ActorSystem, Error: "crm transient (HTTP 503)"}
}

// syncSuccess is a delivery round the CRM answered.
func syncSuccess() Event { return Event{Type: EventSyncSucceeded, Actor: ActorSystem} }

// fixtures build every state of both lifecycles by replaying events from
// New, keyed by "kind/status reason". They are filled in by init because
// some build on others.
var fixtures map[string]func(t *testing.T, b *testBundle) State

func init() {
	fixtures = map[string]func(t *testing.T, b *testBundle) State{
		"lead/awaiting_test_lead": func(t *testing.T, b *testBundle) State { return b.newLead(t) },
		"lead/source_mismatch": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newLead(t), leadFrom(testWrongSource))
		},
		"lead/awaiting_setup_completion": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newLead(t), leadFrom(testExpectedSource))
		},
		"lead/awaiting_setup_completion after a mismatch": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newLead(t), leadFrom(testWrongSource), leadFrom(testExpectedSource))
		},
		"lead/active": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newLead(t), leadFrom(testExpectedSource), command(EventCompleteSetup))
		},
		"lead/deleted": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newLead(t), leadFrom(testExpectedSource), command(EventCompleteSetup), command(EventDelete))
		},

		"crm/awaiting_authorization": func(t *testing.T, b *testBundle) State { return b.newCRM(t) },
		"crm/needs_information": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newCRM(t), authorizeWith(failing(ReasonExpiredCredentials)))
		},
		"crm/awaiting_finish": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newCRM(t), authorizeWith(passing()))
		},
		"crm/active": func(t *testing.T, b *testBundle) State {
			return b.replay(t, b.newCRM(t), authorizeWith(passing()), command(EventCompleteSetup))
		},
		"crm/failed_sync": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/active"](t, b), syncFailure())
		},
		"crm/failed_sync needs_attention": func(t *testing.T, b *testBundle) State {
			// Five consecutive failures over six hours: the default threshold.
			s := fixtures["crm/active"](t, b)
			for range DefaultAttentionFailures {
				b.now = b.now.Add(DefaultAttentionAfter / (DefaultAttentionFailures - 1))
				s = b.replay(t, s, syncFailure())
			}
			require.True(t, s.NeedsAttention)
			return s
		},
		"crm/paused manual while failing": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/failed_sync needs_attention"](t, b), command(EventPause))
		},
		"crm/paused expired_credentials while failing": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/failed_sync needs_attention"](t, b), validation(failing(ReasonExpiredCredentials)))
		},
		"crm/paused expired_credentials": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/active"](t, b), validation(failing(ReasonExpiredCredentials)))
		},
		"crm/paused insufficient_permissions": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/active"](t, b), validation(failing(ReasonInsufficientPermissions)))
		},
		"crm/paused api_disabled": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/active"](t, b), validation(failing(ReasonAPIDisabled)))
		},
		"crm/paused manual": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/active"](t, b), command(EventPause))
		},
		"crm/paused manual after a validation pause": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/paused expired_credentials"](t, b), command(EventPause))
		},
		"crm/deleted": func(t *testing.T, b *testBundle) State {
			return b.replay(t, fixtures["crm/active"](t, b), command(EventDelete))
		},
	}
}

// given builds the named fixture and replays then on top of it.
func (b *testBundle) given(t *testing.T, fixture string, then ...Event) State {
	t.Helper()
	build, ok := fixtures[fixture]
	require.True(t, ok, "unknown fixture %q", fixture)
	return b.replay(t, build(t, b), then...)
}

func fixtureNames() []string { return slices.Sorted(maps.Keys(fixtures)) }

// setupFixtures are the fixtures in setup_incomplete.
var setupFixtures = []string{
	"lead/awaiting_test_lead", "lead/source_mismatch", "lead/awaiting_setup_completion",
	"lead/awaiting_setup_completion after a mismatch",
	"crm/awaiting_authorization", "crm/needs_information", "crm/awaiting_finish",
}

// pausedByValidation maps each validation pause fixture to its reason.
var pausedByValidation = map[string]Reason{
	"crm/paused expired_credentials":      ReasonExpiredCredentials,
	"crm/paused insufficient_permissions": ReasonInsufficientPermissions,
	"crm/paused api_disabled":             ReasonAPIDisabled,
}

func TestFixtures(t *testing.T) {
	t.Parallel()

	want := map[string]struct {
		status Status
		reason Reason
	}{
		"lead/awaiting_test_lead":                         {StatusSetupIncomplete, ReasonAwaitingTestLead},
		"lead/source_mismatch":                            {StatusSetupIncomplete, ReasonSourceMismatch},
		"lead/awaiting_setup_completion":                  {StatusSetupIncomplete, ReasonAwaitingSetupCompletion},
		"lead/awaiting_setup_completion after a mismatch": {StatusSetupIncomplete, ReasonAwaitingSetupCompletion},
		"lead/active":                                     {StatusActive, ReasonNone},
		"lead/deleted":                                    {StatusDeleted, ReasonNone},
		"crm/awaiting_authorization":                      {StatusSetupIncomplete, ReasonAwaitingAuthorization},
		"crm/needs_information":                           {StatusSetupIncomplete, ReasonNeedsInformation},
		"crm/awaiting_finish":                             {StatusSetupIncomplete, ReasonAwaitingFinish},
		"crm/active":                                      {StatusActive, ReasonNone},
		"crm/failed_sync":                                 {StatusFailedSync, ReasonSyncError},
		"crm/failed_sync needs_attention":                 {StatusFailedSync, ReasonSyncError},
		"crm/paused manual while failing":                 {StatusPaused, ReasonManual},
		"crm/paused expired_credentials while failing":    {StatusPaused, ReasonExpiredCredentials},
		"crm/paused expired_credentials":                  {StatusPaused, ReasonExpiredCredentials},
		"crm/paused insufficient_permissions":             {StatusPaused, ReasonInsufficientPermissions},
		"crm/paused api_disabled":                         {StatusPaused, ReasonAPIDisabled},
		"crm/paused manual":                               {StatusPaused, ReasonManual},
		"crm/paused manual after a validation pause":      {StatusPaused, ReasonManual},
		"crm/deleted":                                     {StatusDeleted, ReasonNone},
	}
	require.ElementsMatch(t, slices.Collect(maps.Keys(want)), fixtureNames(), "every fixture has an expectation")

	for _, name := range fixtureNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, name)
			require.Equal(t, want[name].status, s.Status)
			require.Equal(t, want[name].reason, s.Reason)
		})
	}
}

// accepted is a table row for an event the state allows.
type accepted struct {
	name  string
	given string  // fixture name
	then  []Event // replayed on the fixture before event
	event Event

	wantStatus  Status
	wantReason  Reason
	wantChanged bool
	// wantEffects is compared exactly: nil means no effects at all.
	wantEffects []Effect
	// check asserts anything else about the transition.
	check func(t *testing.T, before State, tr Transition)
}

func runAccepted(t *testing.T, cases []accepted) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, tc.given, tc.then...)

			tr := b.mustApply(t, s, tc.event)

			require.Equal(t, tc.wantStatus, tr.State.Status)
			require.Equal(t, tc.wantReason, tr.State.Reason)
			require.Equal(t, tc.wantChanged, tr.Changed)
			require.Equal(t, tc.wantEffects, tr.Effects)
			if tc.check != nil {
				tc.check(t, s, tr)
			}
		})
	}
}

// rejected is a table row for an event the state refuses.
type rejected struct {
	name  string
	given string
	then  []Event
	event Event
	// mentions are substrings the one-line message must contain: what is
	// wrong and what to do about it.
	mentions []string
	// omits are substrings the message must not contain.
	omits []string
}

func runRejected(t *testing.T, cases []rejected) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, tc.given, tc.then...)

			rej := b.mustReject(t, s, tc.event)

			for _, m := range tc.mentions {
				require.Contains(t, rej.Message, m)
			}
			for _, m := range tc.omits {
				require.NotContains(t, rej.Message, m)
			}
		})
	}
}

// requireStep asserts the named setup step's completion, and that a done
// step carries the time of the given change.
func requireStep(t *testing.T, s State, name string, done bool, at *time.Time) {
	t.Helper()
	step, ok := s.Step(name)
	require.True(t, ok, "setup step %s missing", name)
	require.Equal(t, done, step.Done, "setup step %s", name)
	if !done {
		require.Nil(t, step.At, "an undone step %s has no time", name)
		return
	}
	require.NotNil(t, step.At)
	if at != nil {
		require.Equal(t, *at, *step.At)
	}
}

func TestApply_LeadSetup(t *testing.T) {
	t.Parallel()

	runAccepted(t, []accepted{
		{
			name: "test lead with the expected source awaits setup completion", given: "lead/awaiting_test_lead",
			event:      leadFrom(testExpectedSource),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingSetupCompletion, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepTestLeadReceived, true, &tr.Change.At)
				requireStep(t, tr.State, StepSetupCompleted, false, nil)
				require.Equal(t, testExpectedSource, tr.State.LastReceivedSource)
				require.Empty(t, tr.State.RevisionRequested)
			},
		},
		{
			name: "expected source after a mismatch awaits setup completion and keeps the revision history", given: "lead/source_mismatch",
			event:      leadFrom(testExpectedSource),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingSetupCompletion, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepTestLeadReceived, true, &tr.Change.At)
				require.Equal(t, []string{testWrongSource}, tr.State.RevisionRequested)
				require.Equal(t, testExpectedSource, tr.State.LastReceivedSource)
			},
		},
		{
			name: "lead with another source is a mismatch and requests a revision", given: "lead/awaiting_test_lead",
			event:      leadFrom(testWrongSource),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonSourceMismatch, wantChanged: true,
			wantEffects: []Effect{{Type: EffectRequestRevision, Source: testWrongSource}},
			check: func(t *testing.T, _ State, tr Transition) {
				// The status shows expected vs received.
				require.Equal(t, testExpectedSource, tr.State.ExpectedSource)
				require.Equal(t, testWrongSource, tr.State.LastReceivedSource)
				require.Equal(t, []string{testWrongSource}, tr.State.RevisionRequested)
				requireStep(t, tr.State, StepTestLeadReceived, false, nil)
			},
		},
		{
			name: "a second stray lead with the same wrong source is a no-op", given: "lead/source_mismatch",
			event:      leadFrom(testWrongSource),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonSourceMismatch, wantChanged: false,
		},
		{
			name: "a new wrong source requests its own revision", given: "lead/source_mismatch",
			event:      leadFrom("ZILLOW"),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonSourceMismatch, wantChanged: true,
			wantEffects: []Effect{{Type: EffectRequestRevision, Source: "ZILLOW"}},
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, []string{testWrongSource, "ZILLOW"}, tr.State.RevisionRequested)
				require.Equal(t, "ZILLOW", tr.State.LastReceivedSource)
			},
		},
		{
			name: "a 200-byte source is the longest accepted and is a wrong source like any other", given: "lead/awaiting_test_lead",
			event:      leadFrom(strings.Repeat("z", 200)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonSourceMismatch, wantChanged: true,
			wantEffects: []Effect{{Type: EffectRequestRevision, Source: strings.Repeat("z", 200)}},
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, strings.Repeat("z", 200), tr.State.LastReceivedSource)
			},
		},
		{
			name: "a stray lead after the matching one neither undoes it nor requests a revision", given: "lead/awaiting_setup_completion",
			event:      leadFrom(testWrongSource),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingSetupCompletion, wantChanged: true,
			check: func(t *testing.T, before State, tr Transition) {
				step, _ := before.Step(StepTestLeadReceived)
				requireStep(t, tr.State, StepTestLeadReceived, true, step.At)
				require.Empty(t, tr.State.RevisionRequested)
				require.Equal(t, testWrongSource, tr.State.LastReceivedSource)
			},
		},
		{
			name: "another matching lead changes nothing", given: "lead/awaiting_setup_completion",
			event:      leadFrom(testExpectedSource),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingSetupCompletion, wantChanged: false,
		},
		{
			name: "complete-setup after the matching lead activates", given: "lead/awaiting_setup_completion",
			event:      command(EventCompleteSetup),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepTestLeadReceived, true, nil)
				requireStep(t, tr.State, StepSetupCompleted, true, &tr.Change.At)
			},
		},
		{
			name: "complete-setup after a mismatch then the matching lead activates", given: "lead/awaiting_setup_completion after a mismatch",
			event:      command(EventCompleteSetup),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
		},
		{
			name: "complete-setup after a stray lead that followed the matching one activates", given: "lead/awaiting_setup_completion",
			then:       []Event{leadFrom(testWrongSource)},
			event:      command(EventCompleteSetup),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
		},
		{
			name: "validation results mean nothing to a lead integration", given: "lead/source_mismatch",
			event:      validation(failing(ReasonExpiredCredentials)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonSourceMismatch, wantChanged: false,
		},
	})

	runRejected(t, []rejected{
		{
			name: "complete-setup before any test lead names the expected source", given: "lead/awaiting_test_lead",
			event:    command(EventCompleteSetup),
			mentions: []string{testLeadID, "no test lead received yet", `exactly "Zillow"`, "ask the partner"},
			omits:    []string{"had", "revise"},
		},
		{
			name: "complete-setup after a mismatch names expected and last received values", given: "lead/source_mismatch",
			event:    command(EventCompleteSetup),
			mentions: []string{`expected source "Zillow"`, `had "zillow"`, `revise the source to exactly "Zillow"`},
			omits:    []string{"no test lead received yet"},
		},
		{
			name: "complete-setup after several mismatches names the last value received", given: "lead/source_mismatch",
			then:     []Event{leadFrom("ZILLOW"), leadFrom("Zillow ")},
			event:    command(EventCompleteSetup),
			mentions: []string{`expected source "Zillow"`, `had "Zillow "`},
			omits:    []string{`"zillow"`, `"ZILLOW"`},
		},
		{
			name: "complete-setup rejection quotes a source with a newline on one line", given: "lead/awaiting_test_lead",
			then:     []Event{leadFrom("Zillow\n")},
			event:    command(EventCompleteSetup),
			mentions: []string{`had "Zillow\n"`},
		},
		{
			name: "complete-setup when active is rejected (Active is sticky)", given: "lead/active",
			event:    command(EventCompleteSetup),
			mentions: []string{testLeadID, "already complete", "active"},
		},
	})

	t.Run("complete-setup after a rejected lead with an empty source says no test lead was received", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "lead/awaiting_test_lead")
		b.mustReject(t, s, leadFrom(""))

		rej := b.mustReject(t, s, command(EventCompleteSetup))

		require.Contains(t, rej.Message, "no test lead received yet")
		require.Contains(t, rej.Message, `exactly "Zillow"`)
		require.NotContains(t, rej.Message, "had")
	})

	t.Run("complete-setup branches on the reason, not on the last received value", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A state saved before empty sources were rejected: a lead with an
		// empty source was received and counted as a mismatch. No event
		// produces this any more, so it is set directly.
		s := b.given(t, "lead/source_mismatch")
		s.LastReceivedSource = ""

		rej := b.mustReject(t, s, command(EventCompleteSetup))

		require.Contains(t, rej.Message, `expected source "Zillow"`)
		require.Contains(t, rej.Message, `had ""`)
		require.NotContains(t, rej.Message, "no test lead received yet", "a lead was received")
	})
}

func TestApply_LeadSourceLength(t *testing.T) {
	t.Parallel()

	// The contract is 1-200 bytes, counted in bytes, not characters.
	require.Equal(t, 200, MaxSourceLength)
	invalid := map[string]string{
		"an empty source":                         "",
		"a 201-byte source":                       strings.Repeat("z", 201),
		"a 201-byte source of 67 characters":      strings.Repeat("\u20ac", 67),
		"the expected source padded to 201 bytes": testExpectedSource + strings.Repeat(" ", 201-len(testExpectedSource)),
	}
	for _, fixture := range fixtureNames() {
		if !strings.HasPrefix(fixture, "lead/") || strings.HasSuffix(fixture, "/deleted") {
			continue
		}
		for name, source := range invalid {
			t.Run(fmt.Sprintf("%s is rejected from %s", name, fixture), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				s := b.given(t, fixture)

				// mustReject checks that nothing changes and nothing is emitted.
				rej := b.mustReject(t, s, leadFrom(source))

				require.Contains(t, rej.Message, "1-200 bytes")
				require.Contains(t, rej.Message, "ask the partner")
			})
		}
		t.Run("a 200-byte source is accepted from "+fixture, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, fixture)

			source := strings.Repeat("\u20ac", 66) + "zz"
			require.Len(t, source, 200)

			tr := b.mustApply(t, s, leadFrom(source))

			require.Equal(t, s.Status, tr.State.Status, "a wrong source never changes the status")
			if s.Status == StatusSetupIncomplete {
				require.Equal(t, source, tr.State.LastReceivedSource)
			}
		})
	}

	t.Run("a 200-byte expected source matches a 200-byte lead", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		source := strings.Repeat("s", 200)
		s, err := New(Spec{ID: testLeadID, OrgID: testOrgID, Kind: KindLead, Provider: "p", ExpectedSource: source}, testStart)
		require.NoError(t, err)

		tr := b.mustApply(t, s, leadFrom(source))

		require.Equal(t, ReasonAwaitingSetupCompletion, tr.State.Reason)
		requireStep(t, tr.State, StepTestLeadReceived, true, &tr.Change.At)
	})
}

func TestApply_LeadSourceMatchesExactly(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		source string
		match  bool
	}{
		{"identical", "Zillow", true},
		{"lower case", "zillow", false},
		{"upper case", "ZILLOW", false},
		{"trailing space", "Zillow ", false},
		{"leading space", " Zillow", false},
		{"trailing newline", "Zillow\n", false},
		{"trailing tab", "Zillow\t", false},
		{"non-breaking space", "Zillow\u00a0", false},
		{"zero-width space inside", "Zil\u200blow", false},
		{"byte order mark prefix", "\ufeffZillow", false},
		{"Cyrillic o lookalike", "Zill\u043ew", false},
		{"Greek capital zeta lookalike", "\u0396illow", false},
		{"fullwidth letters", "\uff3a\uff49\uff4c\uff4c\uff4f\uff57", false},
		{"prefix only", "Zillo", false},
		{"longer value", "Zillow.com", false},
		{"200-byte value starting with the expected one", testExpectedSource + strings.Repeat("w", 200-len(testExpectedSource)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, "lead/awaiting_test_lead")

			tr := b.mustApply(t, s, leadFrom(tt.source))

			require.Equal(t, tt.source, tr.State.LastReceivedSource, "the received value is kept verbatim")
			if tt.match {
				require.Equal(t, ReasonAwaitingSetupCompletion, tr.State.Reason)
				requireStep(t, tr.State, StepTestLeadReceived, true, &tr.Change.At)
				require.Empty(t, tr.Effects)
				return
			}
			require.Equal(t, ReasonSourceMismatch, tr.State.Reason)
			requireStep(t, tr.State, StepTestLeadReceived, false, nil)
			require.Equal(t, []Effect{{Type: EffectRequestRevision, Source: tt.source}}, tr.Effects)
			b.mustReject(t, tr.State, command(EventCompleteSetup))
		})
	}

	t.Run("an expected source with spaces matches only itself", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s, err := New(Spec{ID: testLeadID, OrgID: testOrgID, Kind: KindLead, Provider: "p", ExpectedSource: " Zillow "}, testStart)
		require.NoError(t, err)
		require.Equal(t, " Zillow ", s.ExpectedSource, "the expected source is stored untrimmed")

		tr := b.mustApply(t, s, leadFrom("Zillow"))
		require.Equal(t, ReasonSourceMismatch, tr.State.Reason)
		tr = b.mustApply(t, tr.State, leadFrom(" Zillow "))
		require.Equal(t, ReasonAwaitingSetupCompletion, tr.State.Reason)
	})
}

func TestApply_LeadRevisionRequestedOncePerDistinctValue(t *testing.T) {
	t.Parallel()

	steps := []struct {
		source      string
		wantRequest bool
		wantChanged bool
	}{
		{"zillow", true, true},
		{"zillow", false, false}, // the same stray lead again: a no-op
		{"ZILLOW", true, true},
		{"zillow", false, true}, // already requested; only the last received value moves
		{"ZILLOW", false, true},
		{"ZILLOW", false, false},
		{"Zillow ", true, true},
		{"Zillow\t", true, true},
		{"Zillow\t", false, false},
	}
	b := setup(t)
	s := b.given(t, "lead/awaiting_test_lead")
	var requested []string
	for i, step := range steps {
		tr := b.mustApply(t, s, leadFrom(step.source))
		require.Equal(t, step.wantChanged, tr.Changed, "step %d (%q)", i, step.source)
		if step.wantRequest {
			requested = append(requested, step.source)
			require.Equal(t, []Effect{{Type: EffectRequestRevision, Source: step.source}}, tr.Effects, "step %d (%q)", i, step.source)
		} else {
			require.Empty(t, tr.Effects, "step %d (%q)", i, step.source)
		}
		require.Equal(t, requested, tr.State.RevisionRequested, "step %d", i)
		require.Equal(t, ReasonSourceMismatch, tr.State.Reason)
		s = tr.State
	}
	require.Equal(t, int64(1+6), s.Version, "one bump per visible change")
}

func TestApply_LeadReceivingLeadsNeverCompletesSetup(t *testing.T) {
	t.Parallel()

	sources := []string{"zillow", testExpectedSource, "ZILLOW", testExpectedSource, testExpectedSource, "Zillow\u00a0", testExpectedSource}
	b := setup(t)
	s := b.given(t, "lead/awaiting_test_lead")
	for _, source := range sources {
		s = b.replay(t, s, leadFrom(source))
		require.Equal(t, StatusSetupIncomplete, s.Status, "after a lead with %q", source)
		requireStep(t, s, StepSetupCompleted, false, nil)
	}
	require.Equal(t, ReasonAwaitingSetupCompletion, s.Reason)

	tr := b.mustApply(t, s, command(EventCompleteSetup))
	require.Equal(t, StatusActive, tr.State.Status)
}

func TestApply_LeadActiveIsSticky(t *testing.T) {
	t.Parallel()

	// Every event but delete leaves an active lead integration exactly as
	// it is (or is rejected); none changes the status.
	events := map[string]Event{
		"lead with the expected source": leadFrom(testExpectedSource),
		"lead with a wrong source":      leadFrom(testWrongSource),
		"lead with a lookalike source":  leadFrom("Zill\u043ew"),
		"lead with a 200-byte source":   leadFrom(strings.Repeat("z", 200)),
		"failing validation":            validation(failing(ReasonExpiredCredentials)),
		"passing validation":            validation(passing()),
		"setup reminder due":            timer(EventReminderDue),
		"setup abandon due":             timer(EventAbandonDue),
	}
	for name, ev := range events {
		t.Run(name+" changes nothing", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, "lead/active")

			tr := b.mustApply(t, s, ev)

			require.False(t, tr.Changed)
			require.Equal(t, StatusActive, tr.State.Status)
			require.Equal(t, s.LastReceivedSource, tr.State.LastReceivedSource)
			require.Empty(t, tr.Effects)
		})
	}

	rejections := map[string]Event{
		"complete-setup again":          command(EventCompleteSetup),
		"a lead with an empty source":   leadFrom(""),
		"a lead with a 201-byte source": leadFrom(strings.Repeat("z", 201)),
		"authorize":                     authorizeWith(passing()),
		"pause":                         command(EventPause),
		"resume":                        resumeWith(passing()),
		"an unknown command":            command("frobnicate"),
	}
	for name, ev := range rejections {
		t.Run(name+" is rejected and stays active", func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, "lead/active")

			b.mustReject(t, s, ev)
		})
	}
}

func TestApply_LeadRejectsCRMCommands(t *testing.T) {
	t.Parallel()

	var cases []rejected
	for _, fixture := range []string{"lead/awaiting_test_lead", "lead/awaiting_setup_completion", "lead/active"} {
		for _, ev := range []Event{authorizeWith(passing()), command(EventPause), resumeWith(passing())} {
			cases = append(cases, rejected{
				name: fmt.Sprintf("%s from %s", ev.Type, fixture), given: fixture, event: ev,
				mentions: []string{testLeadID, "only CRM integrations", "delete it"},
			})
		}
		cases = append(cases, rejected{
			name: "unknown command from " + fixture, given: fixture, event: command("frobnicate"),
			mentions: []string{`unknown command "frobnicate"`},
		})
	}
	runRejected(t, cases)
}

func TestApply_CRMSetup(t *testing.T) {
	t.Parallel()

	runAccepted(t, []accepted{
		{
			name: "authorize with passing checks awaits finish", given: "crm/awaiting_authorization",
			event:      authorizeWith(passing()),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingFinish, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepAuthorized, true, &tr.Change.At)
				requireStep(t, tr.State, StepFinished, false, nil)
				require.Equal(t, &Validation{Checks: passing(), At: &tr.Change.At}, tr.State.Validation)
			},
		},
		{
			name: "authorize with failing checks needs information and records the checks", given: "crm/awaiting_authorization",
			event:      authorizeWith(failing(ReasonExpiredCredentials, ReasonInsufficientPermissions)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonNeedsInformation, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepAuthorized, false, nil)
				requireStep(t, tr.State, StepFinished, false, nil)
				require.NotNil(t, tr.State.Validation)
				require.Equal(t, failing(ReasonExpiredCredentials, ReasonInsufficientPermissions), tr.State.Validation.Checks)
				require.Equal(t, tr.Change.At, *tr.State.Validation.At)
				require.Equal(t, []Check{catalogCheck(ReasonExpiredCredentials), catalogCheck(ReasonInsufficientPermissions)}, tr.State.Validation.Failed())
			},
		},
		{
			// Authorize during setup only moves setup; unlike a validated
			// event it emits nothing (no pause notification exists before
			// setup completes).
			name: "authorize again with passing checks after needing information awaits finish", given: "crm/needs_information",
			event:      authorizeWith(passing()),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingFinish, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepAuthorized, true, &tr.Change.At)
				require.Empty(t, tr.State.Validation.Failed())
			},
		},
		{
			name: "authorize again with the same failing checks is a no-op", given: "crm/needs_information",
			event:      authorizeWith(failing(ReasonExpiredCredentials)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonNeedsInformation, wantChanged: false,
		},
		{
			name: "authorize again with other failing checks records them", given: "crm/needs_information",
			event:      authorizeWith(failing(ReasonAPIDisabled)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonNeedsInformation, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, []Check{catalogCheck(ReasonAPIDisabled)}, tr.State.Validation.Failed())
			},
		},
		{
			name: "authorize with failing checks while awaiting finish needs information", given: "crm/awaiting_finish",
			event:      authorizeWith(failing(ReasonInsufficientPermissions)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonNeedsInformation, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepAuthorized, false, nil)
			},
		},
		{
			name: "authorize again with the same passing checks is a no-op", given: "crm/awaiting_finish",
			event:      authorizeWith(passing()),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingFinish, wantChanged: false,
		},
		{
			name: "complete-setup while awaiting finish activates", given: "crm/awaiting_finish",
			event:      command(EventCompleteSetup),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				requireStep(t, tr.State, StepAuthorized, true, nil)
				requireStep(t, tr.State, StepFinished, true, &tr.Change.At)
			},
		},
		{
			name: "a validation result during setup is recorded but does not move setup", given: "crm/awaiting_finish",
			event:      validation(failing(ReasonAPIDisabled)),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonAwaitingFinish, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, failing(ReasonAPIDisabled), tr.State.Validation.Checks)
				requireStep(t, tr.State, StepAuthorized, true, nil)
			},
		},
	})

	runRejected(t, []rejected{
		{
			name: "complete-setup before authorizing says to authorize", given: "crm/awaiting_authorization",
			event:    command(EventCompleteSetup),
			mentions: []string{testCRMID, "not authorized yet", "integrations authorize " + testCRMID},
		},
		{
			name: "complete-setup after failing checks names them and says to authorize again", given: "crm/needs_information",
			event:    command(EventCompleteSetup),
			mentions: []string{testCRMID, "validation failed", "token: refresh token was revoked", "authorize again"},
		},
		{
			name: "complete-setup when active is rejected", given: "crm/active",
			event:    command(EventCompleteSetup),
			mentions: []string{"already complete", "status active"},
		},
		{
			name: "complete-setup when failed_sync is rejected", given: "crm/failed_sync",
			event:    command(EventCompleteSetup),
			mentions: []string{"already complete", "status failed_sync"},
		},
		{
			name: "complete-setup when paused is rejected", given: "crm/paused manual",
			event:    command(EventCompleteSetup),
			mentions: []string{"already complete", "status paused"},
		},
		{
			name: "complete-setup when paused by validation is rejected", given: "crm/paused expired_credentials",
			event:    command(EventCompleteSetup),
			mentions: []string{"already complete", "status paused"},
		},
		{
			name: "a CRM integration does not receive leads", given: "crm/active",
			event:    leadFrom(testExpectedSource),
			mentions: []string{testCRMID, "does not receive leads"},
		},
		{
			name: "unknown command", given: "crm/active",
			event:    command("frobnicate"),
			mentions: []string{`unknown command "frobnicate"`, testCRMID},
		},
	})
}

func TestApply_CRMValidation(t *testing.T) {
	t.Parallel()

	var cases []accepted
	for _, reason := range []Reason{ReasonExpiredCredentials, ReasonInsufficientPermissions, ReasonAPIDisabled} {
		for _, from := range []string{"crm/active", "crm/failed_sync"} {
			cases = append(cases, accepted{
				name: fmt.Sprintf("periodic validation failing with %s pauses %s and notifies", reason, from), given: from,
				event:      validation(failing(reason)),
				wantStatus: StatusPaused, wantReason: reason, wantChanged: true,
				wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: reason, Checks: failing(reason)}},
				check: func(t *testing.T, _ State, tr Transition) {
					require.Equal(t, []Check{catalogCheck(reason)}, tr.State.Validation.Failed())
					require.True(t, tr.State.PausedByValidation())
				},
			})
		}
	}
	for fixture, reason := range pausedByValidation {
		cases = append(cases,
			accepted{
				name: "validation passing again reactivates " + fixture + " and resolves the notification", given: fixture,
				event:      validation(passing()),
				wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
				wantEffects: []Effect{{Type: EffectResolvePaused}},
			},
			accepted{
				name: "re-authorizing with passing checks reactivates " + fixture + " and resolves the notification", given: fixture,
				event:      authorizeWith(passing()),
				wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
				wantEffects: []Effect{{Type: EffectResolvePaused}},
				check: func(t *testing.T, _ State, tr Transition) {
					requireStep(t, tr.State, StepAuthorized, true, nil)
				},
			},
			accepted{
				name: "the same failing validation again leaves " + fixture + " alone and does not notify again", given: fixture,
				event:      validation(failing(reason)),
				wantStatus: StatusPaused, wantReason: reason, wantChanged: false,
			},
		)
	}
	cases = append(cases,
		accepted{
			name: "the most fundamental failure wins: expired credentials over everything", given: "crm/active",
			event:      validation(failing(ReasonInsufficientPermissions, ReasonAPIDisabled, ReasonExpiredCredentials)),
			wantStatus: StatusPaused, wantReason: ReasonExpiredCredentials, wantChanged: true,
			wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: ReasonExpiredCredentials, Checks: failing(ReasonInsufficientPermissions, ReasonAPIDisabled, ReasonExpiredCredentials)}},
		},
		accepted{
			name: "the most fundamental failure wins: API disabled over permissions", given: "crm/active",
			event:      validation(failing(ReasonInsufficientPermissions, ReasonAPIDisabled)),
			wantStatus: StatusPaused, wantReason: ReasonAPIDisabled, wantChanged: true,
			wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: ReasonAPIDisabled, Checks: failing(ReasonInsufficientPermissions, ReasonAPIDisabled)}},
		},
		accepted{
			name: "a failed check without a known code pauses as insufficient permissions", given: "crm/active",
			event:      validation([]Check{{Name: "webhooks", OK: false, Message: "webhook subscription missing"}}),
			wantStatus: StatusPaused, wantReason: ReasonInsufficientPermissions, wantChanged: true,
			wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: ReasonInsufficientPermissions, Checks: []Check{{Name: "webhooks", OK: false, Message: "webhook subscription missing"}}}},
		},
		accepted{
			name: "a different failure while paused by validation switches the reason and notifies", given: "crm/paused expired_credentials",
			event:      validation(failing(ReasonInsufficientPermissions)),
			wantStatus: StatusPaused, wantReason: ReasonInsufficientPermissions, wantChanged: true,
			wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: ReasonInsufficientPermissions, Checks: failing(ReasonInsufficientPermissions)}},
		},
		accepted{
			name: "the same passing validation again is a no-op", given: "crm/active",
			event:      validation(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: false,
		},
		accepted{
			name: "a different passing validation is recorded and stays active", given: "crm/active",
			event:      validation(append(passing(), Check{Name: "webhooks", OK: true})),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, append(passing(), Check{Name: "webhooks", OK: true}), tr.State.Validation.Checks)
				require.Equal(t, tr.Change.At, *tr.State.Validation.At)
			},
		},
		accepted{
			name: "passing validation does not clear failed_sync (syncs do)", given: "crm/failed_sync",
			event:      validation(passing()),
			wantStatus: StatusFailedSync, wantReason: ReasonSyncError, wantChanged: false,
		},
		accepted{
			name: "a manual pause never resumes on the same passing validation", given: "crm/paused manual",
			event:      validation(passing()),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: false,
		},
		accepted{
			name: "a manual pause never resumes on a new passing validation, which is recorded", given: "crm/paused manual",
			event:      validation(append(passing(), Check{Name: "webhooks", OK: true})),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Len(t, tr.State.Validation.Checks, len(checkCatalog)+1)
			},
		},
		accepted{
			name: "a manual pause never resumes after a validation pause either, but the fixed problem resolves the notification", given: "crm/paused manual after a validation pause",
			event:      validation(passing()),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
			check: func(t *testing.T, _ State, tr Transition) {
				require.Empty(t, tr.State.Validation.Failed())
				require.Equal(t, tr.Change.At, *tr.State.Validation.At)
			},
		},
		accepted{
			name: "after a validation pause turned manual, re-authorizing with passing checks resolves the notification and stays manual", given: "crm/paused manual after a validation pause",
			event:      authorizeWith(passing()),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
		},
		accepted{
			name: "after a validation pause turned manual, the same failing validation changes nothing", given: "crm/paused manual after a validation pause",
			event:      validation(failing(ReasonExpiredCredentials)),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: false,
		},
		accepted{
			name: "after a validation pause turned manual, a different failing validation is recorded, stays manual and does not notify", given: "crm/paused manual after a validation pause",
			event:      validation(failing(ReasonAPIDisabled)),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, []Check{catalogCheck(ReasonAPIDisabled)}, tr.State.Validation.Failed())
				require.Equal(t, tr.Change.At, *tr.State.Validation.At)
			},
		},
		accepted{
			name: "after a validation pause turned manual, a passing validation resolves only once", given: "crm/paused manual after a validation pause",
			then:       []Event{validation(passing())},
			event:      validation(passing()),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: false,
		},
		accepted{
			name: "a passing validation after a failing one during a manual pause resolves and stays manual", given: "crm/paused manual",
			then:       []Event{validation(failing(ReasonAPIDisabled))},
			event:      validation(passing()),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
		},
		accepted{
			name: "resume after a failing validation during a manual pause resolves when its validation passes", given: "crm/paused manual",
			then:       []Event{validation(failing(ReasonAPIDisabled))},
			event:      resumeWith(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
		},
		accepted{
			name: "a passing validation on an active integration whose last validation failed resolves", given: "crm/awaiting_finish",
			// A failing validation during setup is recorded but does not
			// stop complete-setup, so an active integration can carry one.
			then:       []Event{validation(failing(ReasonAPIDisabled)), command(EventCompleteSetup)},
			event:      validation(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
		},
		accepted{
			name: "a passing validation during setup after a failing one is recorded, does not move setup and resolves", given: "crm/needs_information",
			event:      validation(passing()),
			wantStatus: StatusSetupIncomplete, wantReason: ReasonNeedsInformation, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
			check: func(t *testing.T, _ State, tr Transition) {
				require.Empty(t, tr.State.Validation.Failed())
				requireStep(t, tr.State, StepAuthorized, false, nil)
			},
		},
		accepted{
			name: "a manual pause never resumes on re-authorizing", given: "crm/paused manual",
			event:      authorizeWith(append(passing(), Check{Name: "webhooks", OK: true})),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
		},
		accepted{
			name: "a failing validation keeps a manual pause manual and does not notify", given: "crm/paused manual",
			event:      validation(failing(ReasonAPIDisabled)),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, []Check{catalogCheck(ReasonAPIDisabled)}, tr.State.Validation.Failed())
			},
		},
	)
	runAccepted(t, cases)

	t.Run("the recorded checks are a copy of the event's", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "crm/active")
		checks := failing(ReasonAPIDisabled)

		tr := b.mustApply(t, s, validation(checks))
		checks[0].Name, checks[2].OK = "scribbled", true

		require.Equal(t, failing(ReasonAPIDisabled), tr.State.Validation.Checks)
	})
}

func TestApply_CRMPauseAndResume(t *testing.T) {
	t.Parallel()

	var cases []accepted
	for _, from := range []string{"crm/active", "crm/failed_sync"} {
		cases = append(cases, accepted{
			name: "pause from " + from + " is a manual pause", given: from,
			event:      command(EventPause),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
		})
	}
	for fixture, reason := range pausedByValidation {
		cases = append(cases, accepted{
			name: "pause from " + fixture + " turns it into a manual pause and leaves the notification open", given: fixture,
			event:      command(EventPause),
			wantStatus: StatusPaused, wantReason: ReasonManual, wantChanged: true,
			// The problem is not fixed yet: the notification is resolved
			// once a validation passes, whatever the pause.
			wantEffects: nil,
			check: func(t *testing.T, before State, tr Transition) {
				require.Equal(t, before.Validation, tr.State.Validation, "pausing keeps the failed validation on record")
			},
		})
		cases = append(cases, accepted{
			name: fmt.Sprintf("resume whose validation fails with %s stays paused with that reason and notifies", reason), given: "crm/paused manual",
			event:      resumeWith(failing(reason)),
			wantStatus: StatusPaused, wantReason: reason, wantChanged: true,
			wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: reason, Checks: failing(reason)}},
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, failing(reason), tr.State.Validation.Checks)
				require.True(t, tr.State.PausedByValidation())
			},
		})
	}
	cases = append(cases,
		accepted{
			name: "resume whose validation passes activates", given: "crm/paused manual",
			event:      resumeWith(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
		},
		accepted{
			name: "resume records a new passing validation", given: "crm/paused manual",
			event:      resumeWith(append(passing(), Check{Name: "webhooks", OK: true})),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, append(passing(), Check{Name: "webhooks", OK: true}), tr.State.Validation.Checks)
				require.Equal(t, tr.Change.At, *tr.State.Validation.At)
			},
		},
		accepted{
			name: "resume after a validation pause turned manual activates when validation passes and resolves the notification", given: "crm/paused manual after a validation pause",
			event:      resumeWith(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
			check: func(t *testing.T, _ State, tr Transition) {
				require.Equal(t, passing(), tr.State.Validation.Checks)
			},
		},
		accepted{
			name: "resume after a validation pause turned manual resolves once a passing validation already did, and not again", given: "crm/paused manual after a validation pause",
			then:       []Event{validation(passing())},
			event:      resumeWith(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
		},
		accepted{
			name: "resume after a validation pause turned manual that fails the same way pauses by validation and notifies", given: "crm/paused manual after a validation pause",
			event:      resumeWith(failing(ReasonExpiredCredentials)),
			wantStatus: StatusPaused, wantReason: ReasonExpiredCredentials, wantChanged: true,
			wantEffects: []Effect{{Type: EffectNotifyPaused, Reason: ReasonExpiredCredentials, Checks: failing(ReasonExpiredCredentials)}},
		},
		accepted{
			name: "validation passing after a failed resume reactivates and resolves", given: "crm/paused manual",
			then:       []Event{resumeWith(failing(ReasonExpiredCredentials))},
			event:      validation(passing()),
			wantStatus: StatusActive, wantReason: ReasonNone, wantChanged: true,
			wantEffects: []Effect{{Type: EffectResolvePaused}},
		},
	)
	runAccepted(t, cases)

	var refusals []rejected
	for _, fixture := range []string{"crm/awaiting_authorization", "crm/needs_information", "crm/awaiting_finish"} {
		refusals = append(refusals,
			rejected{
				name: "pause during setup from " + fixture, given: fixture,
				event:    command(EventPause),
				mentions: []string{testCRMID, "setup is incomplete", "finish setup first", "delete it"},
			},
			rejected{
				name: "resume during setup from " + fixture, given: fixture,
				event:    resumeWith(passing()),
				mentions: []string{testCRMID, "is not paused", "status setup_incomplete"},
			},
		)
	}
	for fixture, reason := range pausedByValidation {
		refusals = append(refusals, rejected{
			name: "resume when " + fixture + " says it resumes by itself and how to fix it", given: fixture,
			event:    resumeWith(passing()),
			mentions: []string{testCRMID, "paused by validation", string(reason), strings.TrimRight(catalogCheck(reason).Remediation, ". "), "resumes by itself", "authorizing it again validates at once"},
		})
	}
	refusals = append(refusals,
		rejected{
			name: "resume when paused by a check without remediation text says to authorize again", given: "crm/active",
			then:     []Event{validation([]Check{{Name: "webhooks", OK: false, Message: "webhook subscription missing"}})},
			event:    resumeWith(passing()),
			mentions: []string{"paused by validation", string(ReasonInsufficientPermissions), "authorize again", "it resumes by itself at the next validation that passes", "authorizing it again validates at once"},
		},
		rejected{
			name: "resume when the fix already says it resumes by itself says so once", given: "crm/active",
			then: []Event{validation([]Check{{Name: "token", Code: ReasonExpiredCredentials, Message: "rejected",
				Remediation: "Reconnect the CRM; the integration resumes by itself once validation passes."}})},
			event:    resumeWith(passing()),
			mentions: []string{"Reconnect the CRM; the integration resumes by itself once validation passes; authorizing it again validates at once"},
			omits:    []string{"it resumes by itself at the next validation that passes", ".;"},
		},
		rejected{
			name: "pause when already paused manually", given: "crm/paused manual",
			event:    command(EventPause),
			mentions: []string{testCRMID, "already paused"},
		},
		rejected{
			name: "resume when active", given: "crm/active",
			event:    resumeWith(passing()),
			mentions: []string{"is not paused", "status active"},
		},
		rejected{
			name: "resume when failed_sync", given: "crm/failed_sync",
			event:    resumeWith(passing()),
			mentions: []string{"is not paused", "status failed_sync"},
		},
	)
	runRejected(t, refusals)
}

// TestApply_PauseNotificationLifecycle follows one CRM integration through
// validation and manual pauses and checks that every pause notification is
// opened once and resolved once the problem is fixed, whatever the pause.
func TestApply_PauseNotificationLifecycle(t *testing.T) {
	t.Parallel()

	notify := func(r Reason) []Effect {
		return []Effect{{Type: EffectNotifyPaused, Reason: r, Checks: failing(r)}}
	}
	resolve := []Effect{{Type: EffectResolvePaused}}
	steps := []struct {
		event       Event
		wantStatus  Status
		wantReason  Reason
		wantEffects []Effect
	}{
		{validation(failing(ReasonExpiredCredentials)), StatusPaused, ReasonExpiredCredentials, notify(ReasonExpiredCredentials)},
		{command(EventPause), StatusPaused, ReasonManual, nil},
		{validation(failing(ReasonAPIDisabled)), StatusPaused, ReasonManual, nil}, // recorded; manual stays manual and is not notified
		{validation(passing()), StatusPaused, ReasonManual, resolve},              // fixed: the notice goes, the pause stays
		{validation(passing()), StatusPaused, ReasonManual, nil},                  // passed before too
		{resumeWith(passing()), StatusActive, ReasonNone, nil},                    // already resolved
		{validation(failing(ReasonInsufficientPermissions)), StatusPaused, ReasonInsufficientPermissions, notify(ReasonInsufficientPermissions)},
		{command(EventPause), StatusPaused, ReasonManual, nil},
		{resumeWith(passing()), StatusActive, ReasonNone, resolve},
		{validation(passing()), StatusActive, ReasonNone, nil},
		{command(EventDelete), StatusDeleted, ReasonNone, []Effect{{Type: EffectResolveAll}}},
	}
	b := setup(t)
	s := b.given(t, "crm/active")
	for i, step := range steps {
		tr := b.mustApply(t, s, step.event)
		require.Equal(t, step.wantStatus, tr.State.Status, "step %d: %s", i, step.event.Type)
		require.Equal(t, step.wantReason, tr.State.Reason, "step %d: %s", i, step.event.Type)
		require.Equal(t, step.wantEffects, tr.Effects, "step %d: %s", i, step.event.Type)
		s = tr.State
	}
}

func TestApply_Delete(t *testing.T) {
	t.Parallel()

	for _, fixture := range fixtureNames() {
		if strings.HasSuffix(fixture, "/deleted") {
			continue
		}
		t.Run("from "+fixture, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, fixture)

			tr := b.mustApply(t, s, command(EventDelete))

			require.True(t, tr.Changed)
			require.Equal(t, StatusDeleted, tr.State.Status)
			require.Equal(t, ReasonNone, tr.State.Reason)
			require.False(t, tr.State.ValidatesPeriodically())
			// Whatever notification or alert may be open is moot now,
			// whatever the state it was deleted from.
			require.Equal(t, []Effect{{Type: EffectResolveAll}}, tr.Effects)

			// Once deleted, everything is rejected.
			for _, ev := range eventCatalog() {
				rej := b.mustReject(t, tr.State, ev.event)
				require.Contains(t, rej.Message, s.ID+" is deleted")
				require.Contains(t, rej.Message, "create a new one")
			}
		})
	}
}

func TestApply_SetupReminderAndAbandon(t *testing.T) {
	t.Parallel()

	flags := []struct {
		event  EventType
		effect EffectType
		flag   func(State) bool
	}{
		{EventReminderDue, EffectSetupReminder, func(s State) bool { return s.ReminderSent }},
		{EventAbandonDue, EffectAbandoned, func(s State) bool { return s.Abandoned }},
	}
	for _, f := range flags {
		for _, fixture := range fixtureNames() {
			if strings.HasSuffix(fixture, "/deleted") {
				continue // covered by TestApply_Delete
			}
			t.Run(fmt.Sprintf("%s from %s", f.event, fixture), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				s := b.given(t, fixture)

				tr := b.mustApply(t, s, timer(f.event))

				if !slices.Contains(setupFixtures, fixture) {
					require.False(t, tr.Changed, "only an incomplete setup is reminded or abandoned")
					require.False(t, f.flag(tr.State))
					return
				}
				require.True(t, tr.Changed)
				require.True(t, f.flag(tr.State))
				require.Equal(t, s.Status, tr.State.Status, "flags do not change the status")
				require.Equal(t, s.Reason, tr.State.Reason)
				require.Equal(t, []Effect{{Type: f.effect, Reason: s.Reason}}, tr.Effects)

				again := b.mustApply(t, tr.State, timer(f.event))
				require.False(t, again.Changed, "%s fires once", f.event)
			})
		}
	}

	t.Run("reminder and abandon are independent and each fires once", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "crm/needs_information")

		s = b.replay(t, s, timer(EventReminderDue), timer(EventAbandonDue), timer(EventReminderDue), timer(EventAbandonDue))

		require.True(t, s.ReminderSent)
		require.True(t, s.Abandoned)
		require.Equal(t, int64(2+2), s.Version, "created, authorize, reminder, abandon")
	})

	for _, fixture := range []string{"lead/awaiting_setup_completion", "crm/awaiting_finish"} {
		t.Run("an abandoned setup that completes is no longer abandoned: "+fixture, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, fixture, timer(EventAbandonDue))
			require.True(t, s.Abandoned)

			tr := b.mustApply(t, s, command(EventCompleteSetup))

			require.Equal(t, StatusActive, tr.State.Status)
			require.False(t, tr.State.Abandoned)
		})
	}
}

func TestApply_VersionsFollowVisibleChanges(t *testing.T) {
	t.Parallel()

	steps := []struct {
		event       Event
		wantVersion int64
		wantStatus  Status
		wantReason  Reason
	}{
		{authorizeWith(failing(ReasonInsufficientPermissions)), 2, StatusSetupIncomplete, ReasonNeedsInformation},
		{authorizeWith(failing(ReasonInsufficientPermissions)), 2, StatusSetupIncomplete, ReasonNeedsInformation},
		{timer(EventReminderDue), 3, StatusSetupIncomplete, ReasonNeedsInformation},
		{timer(EventReminderDue), 3, StatusSetupIncomplete, ReasonNeedsInformation},
		{authorizeWith(passing()), 4, StatusSetupIncomplete, ReasonAwaitingFinish},
		{command(EventCompleteSetup), 5, StatusActive, ReasonNone},
		{validation(passing()), 5, StatusActive, ReasonNone},
		{timer(EventReminderDue), 5, StatusActive, ReasonNone},
		{validation(failing(ReasonExpiredCredentials)), 6, StatusPaused, ReasonExpiredCredentials},
		{validation(failing(ReasonExpiredCredentials)), 6, StatusPaused, ReasonExpiredCredentials},
		{validation(passing()), 7, StatusActive, ReasonNone},
		{command(EventPause), 8, StatusPaused, ReasonManual},
		{validation(passing()), 8, StatusPaused, ReasonManual},
		{resumeWith(failing(ReasonAPIDisabled)), 9, StatusPaused, ReasonAPIDisabled},
		{validation(failing(ReasonAPIDisabled)), 9, StatusPaused, ReasonAPIDisabled},
		{validation(passing()), 10, StatusActive, ReasonNone},
		{command(EventDelete), 11, StatusDeleted, ReasonNone},
	}
	b := setup(t)
	s := b.given(t, "crm/awaiting_authorization")
	require.Equal(t, int64(1), s.Version, "New starts at version 1")
	for i, step := range steps {
		tr := b.mustApply(t, s, step.event)
		require.Equal(t, step.wantVersion, tr.State.Version, "step %d: %s", i, step.event.Type)
		require.Equal(t, step.wantStatus, tr.State.Status, "step %d: %s", i, step.event.Type)
		require.Equal(t, step.wantReason, tr.State.Reason, "step %d: %s", i, step.event.Type)
		s = tr.State
	}

	t.Run("lead", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "lead/awaiting_test_lead")
		s = b.replay(t, s,
			leadFrom(testWrongSource), // 2
			leadFrom(testWrongSource), // no-op
			leadFrom(testExpectedSource),
			leadFrom(testExpectedSource), // no-op
			command(EventCompleteSetup),
			leadFrom(testWrongSource), // sticky: no-op
			timer(EventAbandonDue),    // not in setup: no-op
		)
		require.Equal(t, int64(4), s.Version)
	})
}

func TestApply_ChangeRecordsTheTransition(t *testing.T) {
	t.Parallel()

	b := setup(t)
	s := b.given(t, "crm/paused expired_credentials")
	at := time.Date(2025, 4, 2, 10, 30, 0, 0, time.UTC)

	tr := b.mustApply(t, s, Event{Type: EventPause, Actor: "bob@example.test", Note: "moving CRMs", At: at})

	require.Equal(t, Change{
		IntegrationID: testCRMID, Version: s.Version + 1, Event: EventPause,
		FromStatus: StatusPaused, FromReason: ReasonExpiredCredentials,
		ToStatus: StatusPaused, ToReason: ReasonManual,
		Actor: "bob@example.test", Note: "moving CRMs", At: at,
	}, tr.Change)
	require.Equal(t, at, tr.State.UpdatedAt)
	require.Equal(t, testStart, tr.State.CreatedAt)

	t.Run("timer events have no actor", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "crm/active")

		tr := b.mustApply(t, s, validation(failing(ReasonAPIDisabled)))

		require.Empty(t, tr.Change.Actor)
		require.Equal(t, EventValidated, tr.Change.Event)
		require.Equal(t, StatusActive, tr.Change.FromStatus)
		require.Equal(t, ReasonAPIDisabled, tr.Change.ToReason)
	})

	t.Run("Created records the initial state", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "lead/awaiting_test_lead")

		require.Equal(t, Change{
			IntegrationID: testLeadID, Version: 1, Event: EventCreated,
			ToStatus: StatusSetupIncomplete, ToReason: ReasonAwaitingTestLead,
			Actor: testActor, At: testStart,
		}, Created(s, testActor))
	})
}

func TestApply_NeverMutatesItsReceiver(t *testing.T) {
	t.Parallel()

	t.Run("branching from one state keeps both branches apart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Several revision requests, so the slice likely has spare capacity
		// an append could write into.
		s := b.given(t, "lead/source_mismatch", leadFrom("a"), leadFrom("b"))
		before := deepCopy(s)

		left := b.mustApply(t, s, leadFrom("left"))
		right := b.mustApply(t, s, leadFrom("right"))

		require.Equal(t, []string{testWrongSource, "a", "b", "left"}, left.State.RevisionRequested)
		require.Equal(t, []string{testWrongSource, "a", "b", "right"}, right.State.RevisionRequested)
		require.Equal(t, before, s)
	})

	t.Run("rewriting the new state's slices leaves the old one alone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "crm/needs_information")
		before := deepCopy(s)

		tr := b.mustApply(t, s, authorizeWith(passing()))
		scribble(&tr.State)

		require.Equal(t, before, s)
		require.Equal(t, failing(ReasonExpiredCredentials), s.Validation.Checks)
		requireStep(t, s, StepAuthorized, false, nil)
	})

	t.Run("the rejected and unchanged paths hand back the receiver's values", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.given(t, "crm/paused manual")

		_, err := b.apply(t, s, command(EventPause))
		require.True(t, IsRejection(err))
		tr := b.mustApply(t, s, validation(passing()))
		require.False(t, tr.Changed)
	})
}

// catalogEvent is one kind of input, named for subtest names.
type catalogEvent struct {
	name  string
	event Event
}

// eventCatalog returns one of every input the rules know, plus an unknown
// one.
func eventCatalog() []catalogEvent {
	return []catalogEvent{
		{"lead with the expected source", leadFrom(testExpectedSource)},
		{"lead with a wrong source", leadFrom(testWrongSource)},
		{"lead with an empty source", leadFrom("")},
		{"lead with a 201-byte source", leadFrom(strings.Repeat("z", 201))},
		{"complete-setup", command(EventCompleteSetup)},
		{"authorize passing", authorizeWith(passing())},
		{"authorize failing", authorizeWith(failing(ReasonExpiredCredentials))},
		{"validation passing", validation(passing())},
		{"validation expired credentials", validation(failing(ReasonExpiredCredentials))},
		{"validation insufficient permissions", validation(failing(ReasonInsufficientPermissions))},
		{"validation API disabled", validation(failing(ReasonAPIDisabled))},
		{"pause", command(EventPause)},
		{"resume passing", resumeWith(passing())},
		{"resume failing", resumeWith(failing(ReasonAPIDisabled))},
		{"delete", command(EventDelete)},
		{"setup reminder due", timer(EventReminderDue)},
		{"setup abandon due", timer(EventAbandonDue)},
		{"sync succeeded", syncSuccess()},
		{"sync failed", syncFailure()},
		{"created (not an input)", command(EventCreated)},
		{"unknown event", command("frobnicate")},
	}
}

// TestApply_EveryEventInEveryState applies every input to every state and
// checks the rules that hold across the tables: the transition invariants
// of apply, Active's stickiness, the end of everything after delete, that
// delete is always allowed before that, that a lead source outside 1-200
// bytes is always rejected, and when pause notifications are resolved.
func TestApply_EveryEventInEveryState(t *testing.T) {
	t.Parallel()

	for _, fixture := range fixtureNames() {
		for _, ce := range eventCatalog() {
			t.Run(fixture+"/"+ce.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				s := b.given(t, fixture)

				tr, err := b.apply(t, s, ce.event)

				switch {
				case s.Status == StatusDeleted:
					require.True(t, IsRejection(err), "a deleted integration rejects everything")
				case ce.event.Type == EventDelete:
					require.NoError(t, err, "delete is always allowed")
					require.Equal(t, StatusDeleted, tr.State.Status)
				case ce.event.Type == EventLeadReceived && (ce.event.Source == "" || len(ce.event.Source) > 200):
					require.True(t, IsRejection(err), "a lead source must be 1-200 bytes")
				case s.Kind == KindLead && s.Status == StatusActive:
					require.Equal(t, StatusActive, tr.State.Status, "Active is sticky")
					require.False(t, tr.Changed, "Active is sticky")
				}
				if err == nil {
					require.Equal(t, wantsResolve(s, ce.event), slices.ContainsFunc(tr.Effects, func(e Effect) bool {
						return e.Type == EffectResolvePaused
					}), "resolve-paused effect")
					require.Equal(t, ce.event.Type == EventDelete, slices.ContainsFunc(tr.Effects, func(e Effect) bool {
						return e.Type == EffectResolveAll
					}), "only delete resolves everything")
				}
				if err == nil && tr.State.Status == StatusActive && s.Status != StatusActive {
					// Only complete-setup, a resume, a passing validation or
					// a successful sync ever activate.
					require.Contains(t, []EventType{EventCompleteSetup, EventResume, EventValidated, EventAuthorize, EventSyncSucceeded}, ce.event.Type)
					if s.Status == StatusSetupIncomplete {
						require.Equal(t, EventCompleteSetup, ce.event.Type, "only complete-setup finishes setup")
					}
					if s.ConsecutiveFailures > 0 {
						require.Equal(t, EventSyncSucceeded, ce.event.Type, "only a successful sync clears a failing one")
					}
				}
				if err == nil && tr.State.Status == StatusFailedSync && s.Status != StatusFailedSync {
					// failed_sync comes from a failing sync, or from a pause
					// lifted while the last sync had failed.
					if ce.event.Type != EventSyncFailed {
						require.Contains(t, []EventType{EventResume, EventValidated, EventAuthorize}, ce.event.Type)
						require.Positive(t, s.ConsecutiveFailures)
					}
				}
				if err == nil && (ce.event.Type == EventSyncFailed || ce.event.Type == EventSyncSucceeded) && !s.Syncs() {
					require.False(t, tr.Changed, "a sync outcome means nothing to an integration that does not sync")
				}
			})
		}
	}
}

// wantsResolve states, independently of the rules, when an accepted event
// resolves pause notifications: deleting a CRM integration, or a validation
// (periodic, authorize once set up, or resume) that passes where the last
// recorded one failed, in whatever state.
func wantsResolve(s State, ev Event) bool {
	if s.Kind != KindCRM || ev.Type == EventDelete {
		// Delete resolves everything at once (EffectResolveAll).
		return false
	}
	switch {
	case ev.Type == EventValidated, ev.Type == EventResume:
	case ev.Type == EventAuthorize && s.Status != StatusSetupIncomplete:
	default:
		return false
	}
	if len(ev.Checks) == 0 || s.Validation == nil {
		return false
	}
	for _, c := range ev.Checks {
		if !c.OK {
			return false
		}
	}
	for _, c := range s.Validation.Checks {
		if !c.OK {
			return true
		}
	}
	return false
}

func TestApply_UnknownKindIsAnErrorNotARejection(t *testing.T) {
	t.Parallel()

	b := setup(t)
	s := b.given(t, "crm/active")
	s.Kind = "fax" // no event or constructor produces this; it stands for corrupt state

	tr, err := s.Apply(command(EventPause))

	require.Error(t, err)
	require.False(t, IsRejection(err))
	require.Contains(t, err.Error(), `unknown kind "fax"`)
	require.Equal(t, s, tr.State)
	require.False(t, tr.Changed)
}

func TestIsRejection(t *testing.T) {
	t.Parallel()

	rej := &Rejection{Command: EventPause, Message: "crm-1 is already paused"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"a rejection", rej, true},
		{"a wrapped rejection", fmt.Errorf("pause crm-1: %w", rej), true},
		{"a joined rejection", errors.Join(errors.New("other"), rej), true},
		{"a plain error", errors.New("crm-1 is already paused"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, IsRejection(tt.err))
		})
	}
	require.Equal(t, "crm-1 is already paused", rej.Error())
}
