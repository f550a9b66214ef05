package workflows_test

import (
	"os"
	"testing"

	"github.com/acme/integrations/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
