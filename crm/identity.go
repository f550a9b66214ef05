package crm

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Pacing keys and the accounts behind them.
//
// A connector paces its calls, and reports quotas, per CRM account. Which
// account a token belongs to must come from the CRM, never from the
// credentials document: a document is whatever the caller of authorize
// sent, and an account ID in it could name another customer's account,
// whose pacing the caller's rate limits would then hold. TokenAccounts
// keeps what the CRM said per token; TokenKey paces a token the CRM named
// no account for as its own.

// tokenAccountsSweepAt is how many tokens a TokenAccounts holds before it
// drops the entries that have expired.
const tokenAccountsSweepAt = 1024

// TokenAccounts remembers, per token (by a hash of it, never the token),
// the account the CRM said the token belongs to, until a time the caller
// chooses (the token's lifetime, or a short while for "the CRM named
// none"). Its zero value is ready to use; it is safe for concurrent use.
type TokenAccounts struct {
	mu      sync.Mutex
	entries map[string]tokenAccount
}

type tokenAccount struct {
	account string
	until   time.Time
}

// Remember records that the CRM named account for token ("" for none),
// believed until until. A "" does not replace an account still believed:
// a later question the CRM could not answer (an outage) unlearns nothing.
// now is the caller's clock, by which expired entries are dropped.
func (t *TokenAccounts) Remember(token, account string, until, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[string]tokenAccount{}
	}
	hash := tokenHash(token)
	if e, ok := t.entries[hash]; ok && account == "" && e.account != "" && now.Before(e.until) {
		return
	}
	if len(t.entries) >= tokenAccountsSweepAt {
		for k, e := range t.entries {
			if !now.Before(e.until) {
				delete(t.entries, k)
			}
		}
	}
	t.entries[hash] = tokenAccount{account: account, until: until}
}

// Lookup returns the account the CRM named for token ("" when it named
// none) and whether that is known at now (recorded and not expired).
func (t *TokenAccounts) Lookup(token string, now time.Time) (account string, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[tokenHash(token)]
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.account, true
}

// TokenKey is the pacing key of a token's own calls, "token:" and a hash
// of it: only the token's holder can share it.
func TokenKey(token string) string { return "token:" + tokenHash(token)[:32] }

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
