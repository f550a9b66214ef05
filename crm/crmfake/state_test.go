package crmfake

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// testState is what the test fake keeps.
type testState struct {
	Things []thing `json:"things"`
}

type stateBundle struct {
	file StateFile
}

func setupState(t *testing.T) *stateBundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acme", "state.json")
	return &stateBundle{file: StateFile{Path: path, Name: "fake Acme", Fresh: "no accounts"}}
}

func TestStateFile(t *testing.T) {
	t.Parallel()

	t.Run("SavesAndLoads", func(t *testing.T) {
		t.Parallel()
		b := setupState(t)
		var state testState
		found, err := b.file.Load(&state)
		require.NoError(t, err)
		require.False(t, found, "no file yet")

		saved := testState{Things: []thing{{Key: secret, Count: 1}}}
		require.NoError(t, b.file.Save(saved))
		info, err := os.Stat(b.file.Path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the file holds keys")
		data, err := os.ReadFile(b.file.Path)
		require.NoError(t, err)
		require.Equal(t, "{\n  \"things\": [\n    {\n      \"key\": \""+secret+"\",\n      \"count\": 1\n    }\n  ]\n}\n", string(data))
		entries, err := os.ReadDir(filepath.Dir(b.file.Path))
		require.NoError(t, err)
		require.Len(t, entries, 1, "no temporary file is left behind")

		found, err = b.file.Load(&state)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, saved, state)
	})

	t.Run("InMemory", func(t *testing.T) {
		t.Parallel()
		file := StateFile{Name: "fake Acme", Fresh: "no accounts"}
		require.NoError(t, file.Save(testState{Things: []thing{{Key: secret}}}))
		state := testState{Things: []thing{{Key: "kept"}}}
		found, err := file.Load(&state)
		require.NoError(t, err)
		require.False(t, found)
		require.Equal(t, testState{Things: []thing{{Key: "kept"}}}, state, "nothing was read")
	})

	t.Run("Corrupt", func(t *testing.T) {
		t.Parallel()
		b := setupState(t)
		require.NoError(t, os.MkdirAll(filepath.Dir(b.file.Path), 0o700))
		require.NoError(t, os.WriteFile(b.file.Path, []byte(`{"things": [`), 0o600))
		_, err := b.file.Load(&testState{})
		require.EqualError(t, err, "fake Acme state "+b.file.Path+" is corrupt (unexpected end of JSON input): fix it, or delete it to start with no accounts")
		require.EqualError(t, b.file.Corrupt("thing 2 has no key"), "fake Acme state "+b.file.Path+" is corrupt (thing 2 has no key): fix it, or delete it to start with no accounts")
	})

	t.Run("FailedSaveKeepsTheFile", func(t *testing.T) {
		t.Parallel()
		b := setupState(t)
		require.NoError(t, b.file.Save(testState{Things: []thing{}}))
		require.NoError(t, os.Remove(b.file.Path))
		// A directory where the file should be makes the rename fail.
		require.NoError(t, os.MkdirAll(filepath.Join(b.file.Path, "blocker"), 0o700))
		err := b.file.Save(testState{Things: []thing{{Key: secret}}})
		require.ErrorContains(t, err, "save fake Acme state: ")
		require.NotContains(t, err.Error(), secret)
		entries, err := os.ReadDir(filepath.Dir(b.file.Path))
		require.NoError(t, err)
		require.Len(t, entries, 1, "the temporary file is removed")
	})
}

func TestCallLog(t *testing.T) {
	t.Parallel()
	var log CallLog[int]
	require.Empty(t, log.List())
	for i := range 3 {
		log.Add(i)
	}
	require.Equal(t, []int{0, 1, 2}, log.List())
	for i := 3; i < CallLogSize+5; i++ {
		log.Add(i)
	}
	calls := log.List()
	require.Len(t, calls, CallLogSize, "the oldest calls are dropped")
	require.Equal(t, 5, calls[0])
	require.Equal(t, CallLogSize+4, calls[len(calls)-1])
}

func TestRandomHex(t *testing.T) {
	t.Parallel()
	a, b := RandomHex(8), RandomHex(8)
	require.Len(t, a, 16)
	require.Regexp(t, `^[0-9a-f]{16}$`, a)
	require.NotEqual(t, a, b)
}
