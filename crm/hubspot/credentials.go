package hubspot

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/acme/integrations/crm"
)

// credentialsExample is shown in every credentials error.
const credentialsExample = `{"access_token": "pat-na1-..."} (a private app or service key token), or connect with OAuth`

// credentialsFormat decodes the credentials document strictly, without
// quoting it in its errors.
var credentialsFormat = crm.CredentialsFormat{Product: "hubspot", Example: credentialsExample}

// credentialsDoc is the credentials document as stored.
type credentialsDoc struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// ExpiresAt is RFC 3339; a string so a malformed value is reported
	// by us, without quoting it.
	ExpiresAt string `json:"expires_at,omitempty"`
	HubID     int64  `json:"hub_id,omitempty"`
}

// credentials is a parsed credentials document.
type credentials struct {
	accessToken  string
	refreshToken string
	expiresAt    time.Time
	// hubID is the document's: what Exchange or Refresh wrote, or what the
	// sender of the document claims. It is stored back, never trusted:
	// pacing and quotas follow the account HubSpot names (see paceKey).
	hubID int64
	// pace is the account the calls are paced as, once Push resolved it.
	pace string
}

// oauth reports whether the credentials are an OAuth connection (refreshable)
// rather than a static token.
func (c credentials) oauth() bool { return c.refreshToken != "" }

// document returns the credentials as the JSON document.
func (c credentials) document() []byte {
	doc := credentialsDoc{AccessToken: c.accessToken, RefreshToken: c.refreshToken, HubID: c.hubID}
	if !c.expiresAt.IsZero() {
		doc.ExpiresAt = c.expiresAt.UTC().Format(time.RFC3339)
	}
	data, _ := json.Marshal(doc)
	return data
}

// ParseCredentials checks that raw is a HubSpot credentials document (see
// the package documentation). Its errors name the field at fault and never
// echo a value.
//
// It accepts an OAuth document from anyone, not only the ones Exchange
// writes: the OAuth callback hands Exchange's document to the same
// authorize as a credentials file, so it cannot tell them apart. Such a
// document's hub_id is never trusted (see paceKey): a document naming
// another customer's account paces and reports its calls as its own
// token's, and its refresh token works only if HubSpot issued it.
func (c *Connector) ParseCredentials(raw []byte) error {
	_, err := parseCredentials(raw)
	return err
}

func parseCredentials(raw []byte) (credentials, error) {
	var doc credentialsDoc
	if err := credentialsFormat.Decode(raw, &doc); err != nil {
		return credentials{}, err
	}
	if err := checkToken("access_token", doc.AccessToken); err != nil {
		return credentials{}, err
	}
	creds := credentials{accessToken: doc.AccessToken, refreshToken: doc.RefreshToken, hubID: doc.HubID}
	oauthFields := doc.ExpiresAt != "" || doc.HubID != 0
	if doc.RefreshToken == "" && !oauthFields {
		// A static token: nothing else belongs in the document.
		return creds, nil
	}
	// An OAuth document: every field must be there.
	if err := checkToken("refresh_token", doc.RefreshToken); err != nil {
		return credentials{}, fmt.Errorf("%w (an OAuth document has access_token, refresh_token, expires_at and hub_id; reconnect with OAuth)", err)
	}
	if doc.ExpiresAt == "" {
		return credentials{}, errors.New("hubspot credentials: expires_at is missing: an OAuth document has access_token, refresh_token, expires_at and hub_id; reconnect with OAuth")
	}
	at, err := time.Parse(time.RFC3339, doc.ExpiresAt)
	if err != nil {
		return credentials{}, errors.New("hubspot credentials: expires_at is not an RFC 3339 time such as 2026-12-01T12:30:00Z")
	}
	if doc.HubID <= 0 {
		return credentials{}, errors.New("hubspot credentials: hub_id is missing or not a positive number: an OAuth document has the account's hub ID; reconnect with OAuth")
	}
	creds.expiresAt = at
	return creds, nil
}

// checkToken checks a token field (see crm.CredentialsFormat.CheckSecret).
func checkToken(field, value string) error {
	return credentialsFormat.CheckSecret(field, value)
}

// ExpiresAt returns when the OAuth access token in raw expires; a static
// token (or an unreadable document) has no known expiry.
func (c *Connector) ExpiresAt(raw []byte) (time.Time, bool) {
	creds, err := parseCredentials(raw)
	if err != nil || !creds.oauth() {
		return time.Time{}, false
	}
	return creds.expiresAt, true
}
