package starter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// OAuthStateTTL is how long a consent URL stays usable.
const OAuthStateTTL = 10 * time.Minute

// ErrOAuthState is wrapped by FinishOAuth's error for a callback whose
// state is unknown, forged, used already, expired, or for another
// integration: nothing is stored for it.
var ErrOAuthState = errors.New("this authorization link is invalid, already used or expired")

// ErrOAuthDenied is wrapped by FinishOAuth's error (a rejection) for a
// callback that says the customer did not grant access on the CRM's
// consent page: the state is spent, nothing else happens.
var ErrOAuthDenied = errors.New("the CRM did not grant access")

// deniedError is the rejection of a denied consent, which errors.Is also
// finds as ErrOAuthDenied.
type deniedError struct{ rejection *integration.Rejection }

func (e *deniedError) Error() string   { return e.rejection.Error() }
func (e *deniedError) Unwrap() []error { return []error{e.rejection, ErrOAuthDenied} }

// Consent is a consent URL handed out for an integration.
type Consent struct {
	IntegrationID string    `json:"id"`
	URL           string    `json:"consent_url"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// StartOAuth begins an OAuth connect of a CRM integration: it stores a
// random, single-use state bound to the integration (only its hash) and
// returns the CRM's consent URL for it. sandbox asks for the CRM's test
// environment (Salesforce sandbox orgs). The customer consents there; the
// CRM redirects to the callback, which FinishOAuth completes, recording
// the authorize as by's, with the claim WithClaimedBy put in ctx (an HTTP
// request's "by") beside it.
func (s *Starter) StartOAuth(ctx context.Context, id, by string, sandbox bool) (Consent, error) {
	current, err := s.current(ctx, id)
	if err != nil {
		return Consent{}, err
	}
	switch {
	case current.Kind != integration.KindCRM:
		return Consent{}, &integration.Rejection{Command: integration.EventAuthorize,
			Message: fmt.Sprintf("%s is a lead integration: only CRM integrations connect to a CRM", id)}
	case current.Status == integration.StatusDeleted:
		return Consent{}, &integration.Rejection{Command: integration.EventAuthorize,
			Message: fmt.Sprintf("integration %s is deleted: create a new one", id)}
	case s.OAuthRedirectURL == "":
		return Consent{}, errors.New("OAuth connect is not configured here: set INTEGRATIONS_PUBLIC_URL to the address the CRM redirects browsers to")
	}
	if err := checkActor(by, ""); err != nil {
		return Consent{}, err
	}
	connector, err := s.Connectors.Get(current.Provider)
	if err != nil {
		return Consent{}, invalid(err)
	}
	oauth, ok := connector.(crm.OAuth)
	if !ok {
		return Consent{}, invalid(fmt.Errorf("%s connects with credentials, not OAuth: run `integrations authorize %s --credentials-file FILE`", current.Provider, id))
	}
	state, hash, err := newOAuthState(id)
	if err != nil {
		return Consent{}, err
	}
	consentURL, err := oauth.AuthCodeURL(crm.AuthRequest{State: state, RedirectURL: s.OAuthRedirectURL, Sandbox: sandbox})
	if err != nil {
		return Consent{}, invalid(fmt.Errorf("connect %s with %s: %w", id, current.Provider, err))
	}
	now := s.now()
	if err := s.Store.AddOAuthState(ctx, store.OAuthState{
		StateHash: hash, IntegrationID: id, Provider: current.Provider, Sandbox: sandbox,
		RedirectURL: s.OAuthRedirectURL, RequestedBy: by, ClaimedBy: claimedBy(ctx), CreatedAt: now, ExpiresAt: now.Add(OAuthStateTTL),
	}); err != nil {
		return Consent{}, fmt.Errorf("connect %s: %w", id, err)
	}
	return Consent{IntegrationID: id, URL: consentURL, ExpiresAt: now.Add(OAuthStateTTL).Truncate(time.Microsecond)}, nil
}

// newOAuthState returns a state value for integration id and its hash.
// The value names the integration before its last dot, so a callback can
// say which one it is about (an ID may hold dots, base64url never does);
// the 256 random bits after it are what makes it unguessable, and the
// stored hash covers both, so a state moved to another integration is
// unknown.
func newOAuthState(id string) (state string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate OAuth state: %w", err)
	}
	state = id + "." + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(state))
	return state, sum[:], nil
}

// FinishOAuth completes the OAuth connect a callback brings: it consumes
// the state (unknown, used, expired or another integration's: refused,
// nothing stored), exchanges the code with the CRM for credentials, and
// authorizes the integration with them exactly as Authorize does with a
// credentials file (sealed, stored as a candidate, validated, promoted if
// it passes). denied is the CRM's error parameter when the customer did
// not consent: the state is spent, nothing else happens (a rejection that
// wraps ErrOAuthDenied). The errors say what an operator does next; a
// customer's browser is shown words of its own (package api).
func (s *Starter) FinishOAuth(ctx context.Context, state, code, denied string) (integration.State, error) {
	// The random part is base64url, which has no dot: the ID, which may
	// have dots (acme.hubspot), is everything before the last one.
	dot := strings.LastIndexByte(state, '.')
	id := ""
	if dot >= 0 {
		id = state[:dot]
	}
	if dot < 0 || integration.ValidateID("integration id", id) != nil {
		return integration.State{}, invalid(fmt.Errorf("%w: start again with `integrations authorize ID --oauth`", ErrOAuthState))
	}
	sum := sha256.Sum256([]byte(state))
	pending, err := s.Store.ConsumeOAuthState(ctx, sum[:], s.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && pending.IntegrationID != id) {
		return integration.State{}, invalid(fmt.Errorf("%w: start again with `integrations authorize %s --oauth`", ErrOAuthState, id))
	}
	if err != nil {
		return integration.State{}, fmt.Errorf("finish OAuth connect of %s: %w", id, err)
	}
	if denied != "" {
		return integration.State{}, &deniedError{&integration.Rejection{Command: integration.EventAuthorize,
			Message: fmt.Sprintf("the CRM did not grant access to %s (%s): nothing changed; start again with `integrations authorize %s --oauth` and allow access", id, cleanParam(denied), id)}}
	}
	if code == "" {
		return integration.State{}, invalid(fmt.Errorf("the callback for %s carries no code: start again with `integrations authorize %s --oauth`", id, id))
	}
	connector, err := s.Connectors.Get(pending.Provider)
	if err != nil {
		return integration.State{}, invalid(err)
	}
	oauth, ok := connector.(crm.OAuth)
	if !ok {
		return integration.State{}, invalid(fmt.Errorf("%s no longer connects with OAuth", pending.Provider))
	}
	raw, err := oauth.Exchange(ctx, crm.ExchangeRequest{Code: code, RedirectURL: pending.RedirectURL, Sandbox: pending.Sandbox})
	if err != nil {
		if crm.ClassOf(err) == crm.ClassTransient || crm.ClassOf(err) == crm.ClassRateLimited {
			return integration.State{}, fmt.Errorf("connect %s: the CRM could not be reached to finish the connect; start again with `integrations authorize %s --oauth`: %w", id, id, err)
		}
		return integration.State{}, invalid(fmt.Errorf("connect %s: the CRM did not accept the authorization: %w; start again with `integrations authorize %s --oauth`", id, err, id))
	}
	by := pending.RequestedBy
	if by == "" {
		by = "oauth"
	}
	// The claim of whoever asked for the consent URL, not of the browser
	// that brings the callback: the authorize is theirs.
	ctx, err = WithClaimedBy(ctx, pending.ClaimedBy)
	if err != nil {
		return integration.State{}, fmt.Errorf("finish OAuth connect of %s: %w", id, err)
	}
	return s.Authorize(ctx, id, raw, by)
}

// cleanParam keeps a CRM's error parameter printable and short: it is
// shown back to the customer.
func cleanParam(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, v)
	if len(v) > 64 {
		v = strings.ToValidUTF8(v[:64], "")
	}
	return v
}
