package proc_test

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/internal/proc"
)

func TestStatOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	name, ppid, _, _, ok := proc.Stat(strconv.Itoa(os.Getpid()))
	require.True(t, ok)
	require.NotEmpty(t, name)
	require.Equal(t, os.Getppid(), ppid)

	_, _, _, _, ok = proc.Stat("not-a-pid")
	require.False(t, ok)
}

func TestMachineBusyGrows(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	before, ok := proc.MachineBusy()
	require.True(t, ok)
	require.Positive(t, before)
	// Spin long enough for a few clock ticks to be counted.
	for n := 0; ; n++ {
		after, ok := proc.MachineBusy()
		require.True(t, ok)
		require.GreaterOrEqual(t, after, before)
		if after > before {
			return
		}
		require.Less(t, n, 1_000_000_000, "/proc/stat never moved")
	}
}

func TestChildEnvDropsSettingsThatPointElsewhere(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://elsewhere")
	t.Setenv("TEMPORAL_ADDRESS", "elsewhere:7233")
	t.Setenv("INTEGRATIONS_TASK_QUEUE", "other")
	t.Setenv("PROC_TEST_KEEP", "kept")

	env := proc.ChildEnv(map[string]string{"INTEGRATIONS_TASK_QUEUE": "mine"})
	require.Contains(t, env, "PROC_TEST_KEEP=kept")
	require.Contains(t, env, "INTEGRATIONS_TASK_QUEUE=mine")
	for _, kv := range env {
		require.NotEqual(t, "DATABASE_URL=postgres://elsewhere", kv)
		require.NotEqual(t, "TEMPORAL_ADDRESS=elsewhere:7233", kv)
		require.NotEqual(t, "INTEGRATIONS_TASK_QUEUE=other", kv)
	}
	require.Equal(t, 1, len(slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return kv != "INTEGRATIONS_TASK_QUEUE=mine" })))
}
