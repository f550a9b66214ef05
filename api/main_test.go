package api_test

import (
	"os"
	"testing"

	"github.com/acme/integrations/internal/testenv"
)

// TestMain stops the shared Temporal dev server after the tests.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
