package store_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// sealAs is a SealFunc that "seals" every version as ciphertext, sealed
// with key keyID.
func sealAs(ciphertext []byte, keyID string) store.SealFunc {
	return func(int) ([]byte, string, error) { return ciphertext, keyID, nil }
}

// sealVersion is a SealFunc whose ciphertext names the version it was
// sealed for, as a real one is bound to it.
func sealVersion(tag string) store.SealFunc {
	return func(v int) ([]byte, string, error) {
		// Bytes that are not valid UTF-8 and contain NUL, as sealed data does.
		return fmt.Appendf([]byte{0x00, 0xff}, "%s-v%d", tag, v), "key-a", nil
	}
}

// countCredentials counts the rows of crm_credentials for an integration.
func countCredentials(t *testing.T, b *testBundle, id string) int {
	t.Helper()
	var n int
	require.NoError(t, b.store.DB().GetContext(b.ctx, &n, b.store.DB().Rebind(
		`SELECT COUNT(*) FROM crm_credentials WHERE integration_id = ?`), id))
	return n
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		t.Run("CandidateUntilPromoted", func(t *testing.T) {
			t.Parallel()
			const id = "cand-1"
			_, err := b.store.CurrentCredential(b.ctx, id)
			require.ErrorIs(t, err, store.ErrNotFound)

			v1, err := b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
			require.NoError(t, err)
			require.Equal(t, store.Credential{
				IntegrationID: id, Version: 1, GrantVersion: 1, KeyID: "key-a",
				Ciphertext: []byte("\x00\xffcand-1-v1"), CreatedAt: t0,
			}, v1)
			require.True(t, v1.Candidate())

			// A candidate is stored, but it is not what anyone uses.
			_, err = b.store.CurrentCredential(b.ctx, id)
			require.ErrorIs(t, err, store.ErrNotFound)
			got, err := b.store.CredentialVersion(b.ctx, id, 1)
			require.NoError(t, err)
			require.Equal(t, v1, got)

			current, err := b.store.PromoteCredential(b.ctx, id, 1, t0.Add(time.Minute))
			require.NoError(t, err)
			require.True(t, current)
			promoted := t0.Add(time.Minute)
			v1.PromotedAt = &promoted
			got, err = b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, v1, got)
			require.False(t, got.Candidate())

			// A re-authorization leaves the current one in use until it
			// is promoted itself.
			v2, err := b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0.Add(2*time.Minute))
			require.NoError(t, err)
			require.Equal(t, 2, v2.Version)
			got, err = b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, 1, got.Version)

			current, err = b.store.PromoteCredential(b.ctx, id, 2, t0.Add(3*time.Minute))
			require.NoError(t, err)
			require.True(t, current)
			got, err = b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, 2, got.Version)
			require.Equal(t, []byte("\x00\xffcand-1-v2"), got.Ciphertext)

			// Idempotent: promoting again keeps the first promotion time.
			current, err = b.store.PromoteCredential(b.ctx, id, 2, t0.Add(time.Hour))
			require.NoError(t, err)
			require.True(t, current)
			again, err := b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, got, again)

			// Versions count per integration.
			other, err := b.store.AddCandidateCredential(b.ctx, "cand-other", sealVersion("x"), t0)
			require.NoError(t, err)
			require.Equal(t, 1, other.Version)
		})

		t.Run("PromoteNeverDemotesANewerGrant", func(t *testing.T) {
			t.Parallel()
			const id = "cand-order"
			for range 2 {
				_, err := b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
				require.NoError(t, err)
			}
			current, err := b.store.PromoteCredential(b.ctx, id, 2, t0.Add(time.Minute))
			require.NoError(t, err)
			require.True(t, current)
			// The older authorization passes its validation later: it is
			// marked validated, but the newer one stays in use.
			current, err = b.store.PromoteCredential(b.ctx, id, 1, t0.Add(2*time.Minute))
			require.NoError(t, err)
			require.False(t, current)
			got, err := b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, 2, got.Version)
			v1, err := b.store.CredentialVersion(b.ctx, id, 1)
			require.NoError(t, err)
			require.False(t, v1.Candidate())

			_, err = b.store.PromoteCredential(b.ctx, id, 9, t0)
			require.ErrorIs(t, err, store.ErrNotFound)
			require.Equal(t, 2, countCredentials(t, b, id))
		})

		t.Run("DiscardOnlyCandidates", func(t *testing.T) {
			t.Parallel()
			const id = "cand-discard"
			_, err := b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
			require.NoError(t, err)
			_, err = b.store.PromoteCredential(b.ctx, id, 1, t0)
			require.NoError(t, err)
			_, err = b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
			require.NoError(t, err)

			discarded, err := b.store.DiscardCandidateCredential(b.ctx, id, 2, t0)
			require.NoError(t, err)
			require.True(t, discarded)
			_, err = b.store.CredentialVersion(b.ctx, id, 2)
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = b.store.PromoteCredential(b.ctx, id, 2, t0)
			require.ErrorIs(t, err, store.ErrNotFound, "a discarded candidate cannot be promoted")
			// Its secret is gone from the table, not just hidden.
			var left []byte
			require.NoError(t, b.store.DB().GetContext(b.ctx, &left, b.store.DB().Rebind(
				`SELECT ciphertext FROM crm_credentials WHERE integration_id = ? AND version = 2`), id))
			require.Empty(t, left)
			listed, err := b.store.ListCredentials(b.ctx, store.CredentialKey{IntegrationID: id}, 10)
			require.NoError(t, err)
			for _, c := range listed {
				require.False(t, c.IntegrationID == id && c.Version == 2, "a discarded version is not listed")
			}

			// Again, or for a promoted or unknown version: nothing happens.
			for _, v := range []int{2, 1, 7} {
				discarded, err = b.store.DiscardCandidateCredential(b.ctx, id, v, t0)
				require.NoError(t, err)
				require.False(t, discarded, "version %d", v)
			}
			got, err := b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, 1, got.Version)

			// Versions are never reused: the next one is 3, so a stale
			// reference to version 2 cannot reach other credentials.
			v3, err := b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
			require.NoError(t, err)
			require.Equal(t, 3, v3.Version)
		})

		t.Run("RefreshRenewsTheCurrentGrant", func(t *testing.T) {
			t.Parallel()
			const id = "cand-refresh"
			_, err := b.store.AddCurrentCredential(b.ctx, id, 1, sealVersion(id), t0)
			require.ErrorIs(t, err, store.ErrNotFound, "nothing to renew")
			_, err = b.store.AddCurrentCredential(b.ctx, id, 0, sealVersion(id), t0)
			require.ErrorContains(t, err, "not positive")
			require.Equal(t, 0, countCredentials(t, b, id))

			_, err = b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
			require.NoError(t, err)
			_, err = b.store.AddCurrentCredential(b.ctx, id, 1, sealVersion(id), t0)
			require.ErrorIs(t, err, store.ErrNotFound, "a candidate is not current, so not renewable")
			_, err = b.store.PromoteCredential(b.ctx, id, 1, t0)
			require.NoError(t, err)

			refreshedAt := t0.Add(time.Minute)
			v2, err := b.store.AddCurrentCredential(b.ctx, id, 1, sealVersion(id), refreshedAt)
			require.NoError(t, err)
			require.Equal(t, store.Credential{
				IntegrationID: id, Version: 2, GrantVersion: 1, KeyID: "key-a",
				Ciphertext: []byte("\x00\xffcand-refresh-v2"), CreatedAt: refreshedAt, PromotedAt: &refreshedAt,
			}, v2)
			got, err := b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, v2, got)
			_, err = b.store.CredentialVersion(b.ctx, id, 1)
			require.ErrorIs(t, err, store.ErrNotFound, "the renewed token is wiped")
			require.Equal(t, 2, countCredentials(t, b, id), "its row stays, so its number is never reused")

			// A second refresh of version 1 lost the race: refused, nothing stored.
			_, err = b.store.AddCurrentCredential(b.ctx, id, 1, sealVersion(id), t0)
			require.ErrorIs(t, err, store.ErrSuperseded)
			require.Equal(t, 2, countCredentials(t, b, id))

			// A re-authorization stored before a refresh of the old grant,
			// and validated after it, still replaces the old grant.
			_, err = b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
			require.NoError(t, err)
			v4, err := b.store.AddCurrentCredential(b.ctx, id, 2, sealVersion(id), t0)
			require.NoError(t, err)
			require.Equal(t, 4, v4.Version)
			require.Equal(t, 1, v4.GrantVersion)
			_, err = b.store.CredentialVersion(b.ctx, id, 2)
			require.ErrorIs(t, err, store.ErrNotFound, "the grant's earlier token is wiped")
			_, err = b.store.CredentialVersion(b.ctx, id, 3)
			require.NoError(t, err, "another grant's candidate is not")
			current, err := b.store.PromoteCredential(b.ctx, id, 3, t0)
			require.NoError(t, err)
			require.True(t, current)
			got, err = b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, 3, got.Version)
			_, err = b.store.AddCurrentCredential(b.ctx, id, 4, sealVersion(id), t0)
			require.ErrorIs(t, err, store.ErrSuperseded, "the old grant's refresh is superseded")
		})

		t.Run("SealIsBoundToTheAllocatedVersion", func(t *testing.T) {
			t.Parallel()
			const id = "cand-bound"
			for want := 1; want <= 3; want++ {
				var asked int
				cred, err := b.store.AddCandidateCredential(b.ctx, id, func(v int) ([]byte, string, error) {
					asked = v
					return []byte{byte(v)}, "k", nil
				}, t0)
				require.NoError(t, err)
				require.Equal(t, want, asked)
				require.Equal(t, want, cred.Version)
				require.Equal(t, []byte{byte(want)}, cred.Ciphertext)
			}
		})

		t.Run("ConcurrentAddsGetDistinctVersions", func(t *testing.T) {
			t.Parallel()
			const writers = 8
			_, err := b.store.AddCandidateCredential(b.ctx, "cand-race", sealVersion("r"), t0)
			require.NoError(t, err)
			_, err = b.store.PromoteCredential(b.ctx, "cand-race", 1, t0)
			require.NoError(t, err)
			versions := make(chan int, writers)
			refreshed := make(chan int, writers)
			errs := make(chan error, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					add := func() (store.Credential, error) {
						return b.store.AddCandidateCredential(b.ctx, "cand-race", sealVersion("r"), t0)
					}
					if i%2 == 1 {
						// Refreshes of version 1 may lose to each other;
						// the winners still get distinct versions.
						add = func() (store.Credential, error) {
							return b.store.AddCurrentCredential(b.ctx, "cand-race", 1, sealVersion("r"), t0)
						}
					}
					cred, err := add()
					if errors.Is(err, store.ErrSuperseded) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					versions <- cred.Version
					if i%2 == 1 {
						refreshed <- cred.Version
					}
				})
			}
			wg.Wait()
			close(versions)
			close(refreshed)
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			var got []int
			for v := range versions {
				got = append(got, v)
			}
			sort.Ints(got)
			// Every candidate, and exactly one of the refreshes of version 1.
			require.Len(t, got, writers/2+1)
			for i, v := range got {
				require.Equal(t, i+2, v)
			}
			require.Len(t, refreshed, 1)
			current, err := b.store.CurrentCredential(b.ctx, "cand-race")
			require.NoError(t, err)
			require.Equal(t, <-refreshed, current.Version)
		})

		t.Run("RejectsBadInputStoringNothing", func(t *testing.T) {
			t.Parallel()
			const id = "cand-bad"
			_, err := b.store.AddCandidateCredential(b.ctx, "", sealVersion(id), t0)
			require.ErrorContains(t, err, "no integration ID")
			_, err = b.store.AddCandidateCredential(b.ctx, id, nil, t0)
			require.ErrorContains(t, err, "no seal function")
			_, err = b.store.AddCandidateCredential(b.ctx, id, sealAs(nil, "k"), t0)
			require.ErrorContains(t, err, "ciphertext is empty")
			_, err = b.store.AddCandidateCredential(b.ctx, id, func(int) ([]byte, string, error) {
				return nil, "", errors.New("no key")
			}, t0)
			require.ErrorContains(t, err, "seal version 1: no key")
			require.Equal(t, 0, countCredentials(t, b, id))
		})

		t.Run("ListPagesThroughEveryVersion", func(t *testing.T) {
			t.Parallel()
			// An integration of its own prefix, so parallel subtests'
			// rows sort elsewhere.
			var want []store.CredentialKey
			for _, id := range []string{"~list-a", "~list-b", "~list-c"} {
				for range 3 {
					cred, err := b.store.AddCandidateCredential(b.ctx, id, sealVersion(id), t0)
					require.NoError(t, err)
					want = append(want, store.CredentialKey{IntegrationID: id, Version: cred.Version})
				}
			}
			_, err := b.store.PromoteCredential(b.ctx, "~list-b", 2, t0)
			require.NoError(t, err)

			var got []store.CredentialKey
			after := store.CredentialKey{IntegrationID: "~list-"}
			for {
				page, err := b.store.ListCredentials(b.ctx, after, 2)
				require.NoError(t, err)
				for _, c := range page {
					if !strings.HasPrefix(c.IntegrationID, "~list-") {
						// Another subtest's rows, where the collation puts them.
						continue
					}
					require.Equal(t, fmt.Appendf([]byte{0x00, 0xff}, "%s-v%d", c.IntegrationID, c.Version), c.Ciphertext)
					got = append(got, store.CredentialKey{IntegrationID: c.IntegrationID, Version: c.Version})
				}
				if len(page) < 2 {
					break
				}
				last := page[len(page)-1]
				after = store.CredentialKey{IntegrationID: last.IntegrationID, Version: last.Version}
			}
			require.Equal(t, want, got, "candidates and promoted versions, in order, each once")

			for _, limit := range []int{0, -1, store.MaxCredentialPage + 1} {
				_, err := b.store.ListCredentials(b.ctx, store.CredentialKey{}, limit)
				require.ErrorContains(t, err, "out of range")
			}
		})

		t.Run("ResealOnlyWhatIsStillStored", func(t *testing.T) {
			t.Parallel()
			const id = "cand-reseal"
			old, err := b.store.AddCandidateCredential(b.ctx, id, sealAs([]byte("old"), ""), t0)
			require.NoError(t, err)
			_, err = b.store.PromoteCredential(b.ctx, id, 1, t0)
			require.NoError(t, err)

			done, err := b.store.ResealCredential(b.ctx, old, []byte("new"), "key-b")
			require.NoError(t, err)
			require.True(t, done)
			got, err := b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, []byte("new"), got.Ciphertext)
			require.Equal(t, "key-b", got.KeyID)
			require.Equal(t, old.CreatedAt, got.CreatedAt)
			require.NotNil(t, got.PromotedAt, "a rewrap keeps the promotion")

			// A second rewrap from the stale row changes nothing.
			done, err = b.store.ResealCredential(b.ctx, old, []byte("other"), "key-c")
			require.NoError(t, err)
			require.False(t, done)
			got, err = b.store.CurrentCredential(b.ctx, id)
			require.NoError(t, err)
			require.Equal(t, []byte("new"), got.Ciphertext)

			_, err = b.store.ResealCredential(b.ctx, got, nil, "")
			require.ErrorContains(t, err, "ciphertext is empty")
		})
	})
}

// TestDeleteDestroysSecrets checks that projecting a deleted integration
// removes its credentials and intake token in the same write, and that no
// secret can be added to it afterwards.
func TestDeleteDestroysSecrets(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		rows := func(t *testing.T, table, id string) int {
			t.Helper()
			var n int
			require.NoError(t, b.store.DB().GetContext(b.ctx, &n, b.store.DB().Rebind(
				`SELECT COUNT(*) FROM `+table+` WHERE integration_id = ?`), id))
			return n
		}
		tokenHash := func(i byte) []byte { h := sha256.Sum256([]byte{i}); return h[:] }

		t.Run("CRMIntegration", func(t *testing.T) {
			t.Parallel()
			crm := newCRM(t, "del-crm", "org-del")
			require.True(t, project(t, b, crm, integration.Created(crm, "tester")))
			for range 2 {
				_, err := b.store.AddCandidateCredential(b.ctx, crm.ID, sealVersion("d"), t0)
				require.NoError(t, err)
			}
			_, err := b.store.PromoteCredential(b.ctx, crm.ID, 1, t0)
			require.NoError(t, err)
			// Another integration's secrets stay.
			_, err = b.store.AddCandidateCredential(b.ctx, "del-crm-other", sealVersion("o"), t0)
			require.NoError(t, err)

			deleted, ch := at(crm, 2, integration.StatusDeleted, "")
			require.True(t, project(t, b, deleted, ch))
			require.Equal(t, 0, rows(t, "crm_credentials", crm.ID))
			require.Equal(t, 1, rows(t, "crm_credentials", "del-crm-other"))
			_, err = b.store.CurrentCredential(b.ctx, crm.ID)
			require.ErrorIs(t, err, store.ErrNotFound)

			// From now on nothing is added, and nothing is stored trying.
			_, err = b.store.AddCandidateCredential(b.ctx, crm.ID, sealVersion("d"), t0)
			require.ErrorIs(t, err, store.ErrDeleted)
			require.Equal(t, 0, rows(t, "crm_credentials", crm.ID))

			// A replayed (stale) projection of the delete is harmless.
			applied, err := b.store.Project(b.ctx, deleted, ch)
			require.NoError(t, err)
			require.False(t, applied)
			require.Equal(t, 0, rows(t, "crm_credentials", crm.ID))
			got, err := b.store.Get(b.ctx, crm.ID)
			require.NoError(t, err)
			require.Equal(t, integration.StatusDeleted, got.Status)
		})

		t.Run("LeadIntegration", func(t *testing.T) {
			t.Parallel()
			lead := leadIntegration(t, b, "del-lead", "org-del", integration.StatusActive)
			require.NoError(t, b.store.SetIntakeToken(b.ctx, lead.ID, tokenHash(1), t0))
			require.NoError(t, b.store.SetIntakeToken(b.ctx, "del-lead-other", tokenHash(2), t0))

			deleted, ch := at(lead, 3, integration.StatusDeleted, "")
			require.True(t, project(t, b, deleted, ch))
			require.Equal(t, 0, rows(t, "intake_tokens", lead.ID))
			require.Equal(t, 1, rows(t, "intake_tokens", "del-lead-other"))
			_, err := b.store.IntakeTokenHash(b.ctx, lead.ID)
			require.ErrorIs(t, err, store.ErrNotFound)

			require.ErrorIs(t, b.store.SetIntakeToken(b.ctx, lead.ID, tokenHash(3), t0), store.ErrDeleted)
			require.Equal(t, 0, rows(t, "intake_tokens", lead.ID))
		})

		t.Run("AddsRacingTheDeleteLeaveNothing", func(t *testing.T) {
			t.Parallel()
			crm := newCRM(t, "del-race", "org-del")
			require.True(t, project(t, b, crm, integration.Created(crm, "tester")))
			const adders = 6
			var wg sync.WaitGroup
			errs := make(chan error, adders+1)
			for range adders {
				wg.Go(func() {
					for range 5 {
						_, err := b.store.AddCandidateCredential(b.ctx, crm.ID, sealVersion("r"), t0)
						if errors.Is(err, store.ErrDeleted) {
							return
						}
						if err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Go(func() {
				deleted, ch := at(crm, 2, integration.StatusDeleted, "")
				if _, err := b.store.Project(b.ctx, deleted, ch); err != nil {
					errs <- err
				}
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, 0, rows(t, "crm_credentials", crm.ID), "every add either came before the delete or was refused")
		})
	})
}
