package workflows_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/workflows"
)

// TestReplayRecordedHistories replays every history kept in testdata/
// against the current workflow code: a change that is not gated with
// workflow.GetVersion fails here with a nondeterminism error.
func TestReplayRecordedHistories(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no histories in testdata/")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			finished := strings.Contains(string(raw), "WORKFLOW_EXECUTION_COMPLETED") || strings.Contains(string(raw), "WORKFLOW_EXECUTION_CONTINUED_AS_NEW")
			require.True(t, finished, "fixture is a whole run, completed or continued as new")
			replayer, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{
				Interceptors: []interceptor.WorkerInterceptor{workflows.NewRuntime(integration.DefaultPolicy())},
			})
			require.NoError(t, err)
			replayer.RegisterWorkflow(workflows.LeadIntegration)
			replayer.RegisterWorkflow(workflows.CRMIntegration)
			require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(testenv.QuietLogger(), file))
		})
	}
}

// TestReplayDetectsChange proves the replay test bites: a history whose
// recorded activity was swapped for another no longer replays.
func TestReplayDetectsChange(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "crm_lifecycle.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), `"name":"Validate"`)
	tampered := strings.Replace(string(raw), `"name":"Validate"`, `"name":"Notify"`, 1)
	path := filepath.Join(t.TempDir(), "tampered.json")
	require.NoError(t, os.WriteFile(path, []byte(tampered), 0o600))
	replayer, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{
		Interceptors: []interceptor.WorkerInterceptor{workflows.NewRuntime(integration.DefaultPolicy())},
	})
	require.NoError(t, err)
	replayer.RegisterWorkflow(workflows.CRMIntegration)
	require.Error(t, replayer.ReplayWorkflowHistoryFromJSONFile(testenv.DiscardLogger(), path))
}
