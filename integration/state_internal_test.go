package integration

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSameAsCoversEveryField changes each field of a State in turn and
// requires sameAs to notice, except for the version bookkeeping it ignores
// on purpose. A field added to State without updating sameAs fails here.
func TestSameAsCoversEveryField(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := State{
		ID: "a", OrgID: "o", Kind: KindCRM, Provider: "p", Name: "n", Status: StatusActive, Reason: ReasonNone,
		Version: 3, Setup: []SetupStep{{Name: StepAuthorized, Done: true, At: &at}},
		ExpectedSource: "x", LastReceivedSource: "y", RevisionRequested: []string{"z"},
		Validation:          &Validation{Checks: []Check{{Name: "c", OK: true}}, At: &at},
		ConsecutiveFailures: 2, FailingSince: &at, LastSyncError: "e", NextAttemptAt: &at,
		CreatedAt: at, UpdatedAt: at,
	}
	ignored := map[string]bool{"Version": true, "UpdatedAt": true}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		t.Run(name, func(t *testing.T) {
			changed := base.clone()
			f := reflect.ValueOf(&changed).Elem().Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString(f.String() + "!")
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Int, reflect.Int64:
				f.SetInt(f.Int() + 1)
			case reflect.Slice:
				f.Set(reflect.Zero(f.Type()))
			case reflect.Pointer:
				f.Set(reflect.Zero(f.Type()))
			case reflect.Struct: // time.Time
				f.Set(reflect.ValueOf(at.Add(time.Hour)))
			default:
				t.Fatalf("field %s has kind %s: teach this test to change it", name, f.Kind())
			}
			require.Equal(t, ignored[name], base.sameAs(changed), "sameAs and field %s", name)
		})
	}
}
