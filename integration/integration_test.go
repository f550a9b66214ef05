package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	t.Parallel()

	t.Run("lead integration starts awaiting its test lead", func(t *testing.T) {
		t.Parallel()
		at := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)

		s, err := New(Spec{
			ID: "lead-1", OrgID: "org-1", Kind: KindLead, Provider: "zillow-partner",
			Name: "Zillow leads", ExpectedSource: "Zillow",
		}, at)

		require.NoError(t, err)
		require.Equal(t, State{
			ID: "lead-1", OrgID: "org-1", Kind: KindLead, Provider: "zillow-partner", Name: "Zillow leads",
			Status: StatusSetupIncomplete, Reason: ReasonAwaitingTestLead, Version: 1,
			Setup:          []SetupStep{{Name: StepTestLeadReceived}, {Name: StepSetupCompleted}},
			ExpectedSource: "Zillow",
			CreatedAt:      at, UpdatedAt: at,
		}, s)
	})

	t.Run("CRM integration starts awaiting authorization", func(t *testing.T) {
		t.Parallel()
		at := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)

		s, err := New(Spec{ID: "crm-1", OrgID: "org-1", Kind: KindCRM, Provider: "hubspot"}, at)

		require.NoError(t, err)
		require.Equal(t, State{
			ID: "crm-1", OrgID: "org-1", Kind: KindCRM, Provider: "hubspot",
			Status: StatusSetupIncomplete, Reason: ReasonAwaitingAuthorization, Version: 1,
			Setup:     []SetupStep{{Name: StepAuthorized}, {Name: StepFinished}},
			CreatedAt: at, UpdatedAt: at,
		}, s)
	})

	valid := func() Spec {
		return Spec{ID: "lead-1", OrgID: "org-1", Kind: KindLead, Provider: "zillow-partner", Name: "Zillow leads", ExpectedSource: "Zillow"}
	}
	validCRM := func() Spec {
		return Spec{ID: "crm-1", OrgID: "org-1", Kind: KindCRM, Provider: "hubspot", Name: "HubSpot"}
	}

	accepts := []struct {
		name string
		spec func() Spec
	}{
		{"one-character ID", func() Spec { s := valid(); s.ID = "a"; return s }},
		{"64-character ID", func() Spec { s := valid(); s.ID = strings.Repeat("a", 64); return s }},
		{"ID with every allowed character", func() Spec { s := valid(); s.ID = "0A.b_c-9"; return s }},
		{"64-byte provider", func() Spec { s := valid(); s.Provider = strings.Repeat("p", 64); return s }},
		{"empty name", func() Spec { s := valid(); s.Name = ""; return s }},
		{"200-byte name", func() Spec { s := valid(); s.Name = strings.Repeat("n", 200); return s }},
		{"200-byte expected source", func() Spec { s := valid(); s.ExpectedSource = strings.Repeat("s", MaxSourceLength); return s }},
		{"expected source of only a space", func() Spec { s := valid(); s.ExpectedSource = " "; return s }},
		{"CRM without expected source", validCRM},
	}
	for _, tt := range accepts {
		t.Run("accepts "+tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec()

			s, err := New(spec, testStart)

			require.NoError(t, err)
			require.Equal(t, spec.ID, s.ID)
			require.Equal(t, spec.Provider, s.Provider)
			require.Equal(t, spec.Name, s.Name)
			require.Equal(t, spec.ExpectedSource, s.ExpectedSource, "stored verbatim")
		})
	}

	rejects := []struct {
		name     string
		spec     func() Spec
		mentions string
	}{
		{"empty ID", func() Spec { s := valid(); s.ID = ""; return s }, "invalid integration id"},
		{"ID starting with a dash", func() Spec { s := valid(); s.ID = "-lead"; return s }, "starting with a letter or digit"},
		{"ID starting with a dot", func() Spec { s := valid(); s.ID = ".lead"; return s }, "invalid integration id"},
		{"ID starting with an underscore", func() Spec { s := valid(); s.ID = "_lead"; return s }, "invalid integration id"},
		{"ID with a space", func() Spec { s := valid(); s.ID = "lead 1"; return s }, "invalid integration id"},
		{"ID with a slash", func() Spec { s := valid(); s.ID = "lead/1"; return s }, "invalid integration id"},
		{"ID with a colon", func() Spec { s := valid(); s.ID = "lead:1"; return s }, "invalid integration id"},
		{"ID with a trailing newline", func() Spec { s := valid(); s.ID = "lead-1\n"; return s }, "invalid integration id"},
		{"ID with a non-ASCII letter", func() Spec { s := valid(); s.ID = "l\u00e9ad"; return s }, "invalid integration id"},
		{"65-character ID", func() Spec { s := valid(); s.ID = strings.Repeat("a", 65); return s }, "use 1-64"},
		{"empty org ID", func() Spec { s := valid(); s.OrgID = ""; return s }, "invalid org id"},
		{"org ID with a space", func() Spec { s := valid(); s.OrgID = "org 1"; return s }, "invalid org id"},
		{"65-character org ID", func() Spec { s := valid(); s.OrgID = strings.Repeat("o", 65); return s }, "invalid org id"},
		{"empty provider", func() Spec { s := valid(); s.Provider = ""; return s }, "give 1-64 characters"},
		{"blank provider", func() Spec { s := valid(); s.Provider = " \t "; return s }, "invalid provider"},
		{"65-byte provider", func() Spec { s := valid(); s.Provider = strings.Repeat("p", 65); return s }, "give 1-64 characters"},
		{"201-byte name", func() Spec { s := valid(); s.Name = strings.Repeat("n", 201); return s }, "keep it within 200"},
		{"lead without expected source", func() Spec { s := valid(); s.ExpectedSource = ""; return s }, "expected source must be 1-200 bytes"},
		{"lead with a 201-byte expected source", func() Spec { s := valid(); s.ExpectedSource = strings.Repeat("s", MaxSourceLength+1); return s }, "expected source must be 1-200 bytes"},
		{"CRM with an expected source", func() Spec { s := validCRM(); s.ExpectedSource = "Zillow"; return s }, "lead integrations only"},
		{"empty kind", func() Spec { s := valid(); s.Kind = ""; return s }, "use lead or crm"},
		{"upper-case kind", func() Spec { s := valid(); s.Kind = "LEAD"; return s }, `unknown kind "LEAD"`},
		{"unknown kind", func() Spec { s := valid(); s.Kind = "fax"; return s }, `unknown kind "fax"`},
	}
	for _, tt := range rejects {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			t.Parallel()

			s, err := New(tt.spec(), testStart)

			require.Error(t, err)
			require.Contains(t, err.Error(), tt.mentions)
			requireOneLine(t, err.Error())
			require.Zero(t, s, "a rejected spec yields no state")
		})
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()

	for _, k := range []Kind{KindLead, KindCRM} {
		got, err := ParseKind(string(k))
		require.NoError(t, err)
		require.Equal(t, k, got)
	}
	for _, bad := range []string{"", "Lead", "CRM", "lead ", "fax"} {
		_, err := ParseKind(bad)
		require.Error(t, err, "%q", bad)
		require.Contains(t, err.Error(), "use lead or crm")
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()

	require.Equal(t, []Status{"setup_incomplete", "active", "failed_sync", "paused", "deleted"}, Statuses,
		"the status strings are the contract of design §2")
	for _, st := range Statuses {
		got, err := ParseStatus(string(st))
		require.NoError(t, err)
		require.Equal(t, st, got)
	}
	for _, bad := range []string{"", "Active", "active ", "setup-incomplete", "needs_attention"} {
		_, err := ParseStatus(bad)
		require.Error(t, err, "%q", bad)
		require.Contains(t, err.Error(), "use one of setup_incomplete, active, failed_sync, paused, deleted")
	}
}

func TestReasonPausedByValidation(t *testing.T) {
	t.Parallel()

	want := map[Reason]bool{
		ReasonExpiredCredentials:      true,
		ReasonInsufficientPermissions: true,
		ReasonAPIDisabled:             true,
		ReasonManual:                  false,
		ReasonNone:                    false,
		ReasonAwaitingTestLead:        false,
		ReasonSourceMismatch:          false,
		ReasonAwaitingSetupCompletion: false,
		ReasonAwaitingAuthorization:   false,
		ReasonNeedsInformation:        false,
		ReasonAwaitingFinish:          false,
	}
	for r, w := range want {
		require.Equal(t, w, r.PausedByValidation(), "reason %q", r)
	}
}

func TestStateQueries(t *testing.T) {
	t.Parallel()

	// What each fixture answers to PausedByValidation and
	// ValidatesPeriodically.
	want := map[string]struct{ pausedByValidation, validates bool }{
		"lead/awaiting_test_lead":                         {false, false},
		"lead/source_mismatch":                            {false, false},
		"lead/awaiting_setup_completion":                  {false, false},
		"lead/awaiting_setup_completion after a mismatch": {false, false},
		"lead/active":                                     {false, false},
		"lead/deleted":                                    {false, false},
		"crm/awaiting_authorization":                      {false, false},
		"crm/needs_information":                           {false, false},
		"crm/awaiting_finish":                             {false, false},
		"crm/active":                                      {false, true},
		"crm/failed_sync":                                 {false, true},
		"crm/failed_sync needs_attention":                 {false, true},
		"crm/paused manual while failing":                 {false, true},
		"crm/paused expired_credentials while failing":    {true, true},
		"crm/paused expired_credentials":                  {true, true},
		"crm/paused insufficient_permissions":             {true, true},
		"crm/paused api_disabled":                         {true, true},
		"crm/paused manual":                               {false, true},
		"crm/paused manual after a validation pause":      {false, true},
		"crm/deleted":                                     {false, false},
	}
	for _, name := range fixtureNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w, ok := want[name]
			require.True(t, ok, "no expectation for fixture %s", name)
			b := setup(t)
			s := b.given(t, name)

			require.Equal(t, w.pausedByValidation, s.PausedByValidation())
			require.Equal(t, w.validates, s.ValidatesPeriodically())
		})
	}
}

func TestStateStep(t *testing.T) {
	t.Parallel()

	b := setup(t)
	s := b.given(t, "crm/awaiting_finish")

	step, ok := s.Step(StepAuthorized)
	require.True(t, ok)
	require.Equal(t, StepAuthorized, step.Name)
	require.True(t, step.Done)

	_, ok = s.Step(StepTestLeadReceived)
	require.False(t, ok, "a CRM integration has no lead setup steps")
}

func TestValidationFailed(t *testing.T) {
	t.Parallel()

	require.Empty(t, Validation{}.Failed())
	require.Empty(t, Validation{Checks: passing()}.Failed())
	require.Equal(t,
		[]Check{catalogCheck(ReasonExpiredCredentials), catalogCheck(ReasonAPIDisabled)},
		Validation{Checks: failing(ReasonAPIDisabled, ReasonExpiredCredentials)}.Failed(),
		"failed checks in their original order")
}

func TestValidateID(t *testing.T) {
	t.Parallel()

	require.NoError(t, ValidateID("org id", "org-1"))
	err := ValidateID("org id", "org 1")
	require.Error(t, err)
	require.Equal(t, `invalid org id "org 1": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`, err.Error())
}

func TestWorkflowID(t *testing.T) {
	t.Parallel()

	require.Equal(t, "lead:lead-1", WorkflowID(KindLead, "lead-1"))
	require.Equal(t, "crm:crm-1", WorkflowID(KindCRM, "crm-1"))
}

func TestStateJSONUsesTheContractStrings(t *testing.T) {
	t.Parallel()

	b := setup(t)
	s := b.given(t, "crm/paused expired_credentials")

	raw, err := json.Marshal(s)
	require.NoError(t, err)

	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, "crm", got["kind"])
	require.Equal(t, "paused", got["status"])
	require.Equal(t, "expired_credentials", got["reason"])

	var back State
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, s.Status, back.Status)
	require.Equal(t, s.Reason, back.Reason)
	require.Equal(t, s.Validation.Checks, back.Validation.Checks)
}
