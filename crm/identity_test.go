package crm

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTokenAccounts(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

	t.Run("RemembersUntilTheEntryExpires", func(t *testing.T) {
		t.Parallel()
		var accounts TokenAccounts
		_, known := accounts.Lookup("tok-a", now)
		require.False(t, known, "nothing before the CRM said")
		accounts.Remember("tok-a", "hub:1", now.Add(time.Minute), now)
		accounts.Remember("tok-b", "", now.Add(time.Minute), now)
		account, known := accounts.Lookup("tok-a", now)
		require.True(t, known)
		require.Equal(t, "hub:1", account)
		account, known = accounts.Lookup("tok-b", now)
		require.True(t, known, "the CRM named no account: known too")
		require.Empty(t, account)
		_, known = accounts.Lookup("tok-a", now.Add(time.Minute))
		require.False(t, known, "expired")

		accounts.Remember("tok-a", "", now.Add(time.Minute), now)
		account, _ = accounts.Lookup("tok-a", now)
		require.Equal(t, "hub:1", account, "a question the CRM could not answer unlearns nothing")
		accounts.Remember("tok-a", "", now.Add(2*time.Minute), now.Add(time.Minute))
		account, known = accounts.Lookup("tok-a", now.Add(time.Minute))
		require.True(t, known)
		require.Empty(t, account, "once the account is no longer believed, none")
	})

	t.Run("DropsExpiredEntries", func(t *testing.T) {
		t.Parallel()
		var accounts TokenAccounts
		for i := range tokenAccountsSweepAt {
			accounts.Remember("tok-"+strconv.Itoa(i), "a", now.Add(time.Minute), now)
		}
		accounts.Remember("kept", "b", now.Add(time.Hour), now)
		require.Equal(t, tokenAccountsSweepAt+1, len(accounts.entries), "nothing has expired yet")
		accounts.Remember("new", "c", now.Add(2*time.Hour), now.Add(time.Minute))
		require.Equal(t, 2, len(accounts.entries))
	})

	t.Run("TokenKey", func(t *testing.T) {
		t.Parallel()
		require.NotEqual(t, TokenKey("a"), TokenKey("b"))
		require.Equal(t, TokenKey("a"), TokenKey("a"))
		require.NotContains(t, TokenKey("pat-na1-secret"), "secret")
		require.Len(t, TokenKey("a"), len("token:")+32)
	})
}
