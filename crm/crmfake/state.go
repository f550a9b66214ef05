package crmfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateFile is the JSON file a persistent fake keeps what must survive a
// restart in (accounts, keys, grants), so `integrations dev` keeps them.
// The file holds keys and tokens: it is written 0600, atomically.
type StateFile struct {
	// Path is the file; "" keeps the fake in memory: Load finds nothing
	// and Save writes nothing.
	Path string
	// Name begins the messages about the file: "sandbox" gives "save
	// sandbox state: ...".
	Name string
	// Fresh is what a fake started without the file holds, for the advice
	// on a corrupt file: "no sandbox accounts".
	Fresh string
}

// Load decodes the file into state. A missing file (or no Path) leaves
// state alone and returns false; a file that is not JSON is Corrupt.
func (f StateFile) Load(state any) (bool, error) {
	if f.Path == "" {
		return false, nil
	}
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s state: %w", f.Name, err)
	}
	if err := json.Unmarshal(data, state); err != nil {
		return false, f.Corrupt(err.Error())
	}
	return true, nil
}

// Corrupt is the error for a state file that cannot be used, why saying
// what is wrong with it (never quoting a key).
func (f StateFile) Corrupt(why string) error {
	return fmt.Errorf("%s state %s is corrupt (%s): fix it, or delete it to start with %s", f.Name, f.Path, why, f.Fresh)
}

// Save writes state to the file as indented JSON, atomically (a temporary
// file, then a rename), so a crash never leaves a half-written file.
// Without a Path it does nothing.
func (f StateFile) Save(state any) error {
	if f.Path == "" {
		return nil
	}
	data, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s state: %w", f.Name, err)
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save %s state: %w", f.Name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+"-*")
	if err != nil {
		return fmt.Errorf("save %s state: %w", f.Name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s state: %w", f.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s state: %w", f.Name, err)
	}
	// CreateTemp made the file 0600, which the keys and tokens need.
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("save %s state: %w", f.Name, err)
	}
	return nil
}
