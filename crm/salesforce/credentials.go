package salesforce

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/acme/integrations/crm"
)

// The login environments a credentials document can name.
const (
	// EnvironmentProduction: the org logs in (and refreshes) at the login
	// URL, login.salesforce.com.
	EnvironmentProduction = "production"
	// EnvironmentSandbox: a sandbox org, which logs in at the test login
	// URL, test.salesforce.com.
	EnvironmentSandbox = "sandbox"
)

// credentialsExample is shown in every credentials error.
const credentialsExample = `{"access_token": "00D...!...", "refresh_token": "5Aep...", "instance_url": "https://yourdomain.my.salesforce.com", "environment": "production"}`

// credentialsFormat decodes the credentials document strictly, without
// quoting it in its errors.
var credentialsFormat = crm.CredentialsFormat{
	Product: "salesforce",
	Example: credentialsExample,
	IfEmpty: "connect Salesforce through its consent page, or provide " + credentialsExample,
}

// credentials is the Salesforce credentials document: the token response
// of the web-server flow (access token, refresh token, instance URL,
// identity URL, issue time) and the login environment that issued it,
// which is the one that refreshes it. The document names the environment,
// never a login URL: the login URLs come from configuration, so a document
// cannot send the client secret anywhere else.
type credentials struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	// InstanceURL is where the org's API lives (the token response's
	// instance_url).
	InstanceURL string `json:"instance_url"`
	// ID is the identity URL, .../id/{org ID}/{user ID}.
	ID string `json:"id,omitempty"`
	// IssuedAt is when Salesforce issued the access token, in milliseconds
	// since the epoch, as the token response says it.
	IssuedAt    string `json:"issued_at,omitempty"`
	Environment string `json:"environment"`
}

// sandbox reports whether the document is for a sandbox org.
func (c credentials) sandbox() bool { return c.Environment == EnvironmentSandbox }

// orgID returns the org's ID from the document's identity URL, or "". It
// is what the document says, for messages only: pacing and quotas follow
// the org Salesforce names (see account).
func (c credentials) orgID() string { return orgIDOf(c.ID) }

// orgIDOf returns the org's ID from an identity URL, .../id/{org ID}/{user
// ID}, or "".
func orgIDOf(identityURL string) string {
	u, err := url.Parse(identityURL)
	if err != nil {
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "id" && idPattern.MatchString(parts[i+1]) {
			return parts[i+1]
		}
	}
	return ""
}

// describeOrg names the org in messages: its ID, and "sandbox" for one.
func (c credentials) describeOrg() string {
	org := "the Salesforce org"
	if id := c.orgID(); id != "" {
		org = "Salesforce org " + id
	}
	if c.sandbox() {
		org += " (sandbox)"
	}
	return org
}

// parseCredentials checks a credentials document strictly. Its errors name
// the field at fault and never quote a value.
func (c *Connector) parseCredentials(raw []byte) (credentials, error) {
	var creds credentials
	if err := credentialsFormat.Decode(raw, &creds); err != nil {
		return credentials{}, err
	}
	for _, f := range []struct{ name, value string }{
		{"access_token", creds.AccessToken},
		{"refresh_token", creds.RefreshToken},
	} {
		if err := credentialsFormat.CheckSecret(f.name, f.value); err != nil {
			return credentials{}, err
		}
	}
	if err := c.checkInstanceURL(creds.InstanceURL); err != nil {
		return credentials{}, err
	}
	switch creds.Environment {
	case EnvironmentProduction, EnvironmentSandbox:
	case "":
		return credentials{}, fmt.Errorf("salesforce credentials: environment is missing: say %q or %q (the login that issued the tokens)", EnvironmentProduction, EnvironmentSandbox)
	default:
		return credentials{}, fmt.Errorf("salesforce credentials: environment must be %q or %q", EnvironmentProduction, EnvironmentSandbox)
	}
	return creds, nil
}

// salesforceDomains are the domains Salesforce serves orgs' APIs from:
// My Domain hosts (yourdomain.my.salesforce.com, and its sandbox.,
// develop. and scratch. forms), the older instance hosts (na1.salesforce.com,
// cs42.salesforce.com), force.com and cloudforce.com hosts, and Government
// Cloud Plus (yourdomain.my.salesforce.mil).
var salesforceDomains = []string{"salesforce.com", "force.com", "cloudforce.com", "salesforce.mil"}

// checkInstanceURL accepts the instance URL the access token is sent to: an
// absolute https URL on a Salesforce domain, or on the domain of a
// configured login (a login host's parent domain, e.g. example.com for
// sf-login.example.com), on the default port, without credentials, query or
// fragment. Only when a configured login is itself on a loopback address
// (the fake, the dev stack) may it be http, or any loopback address and
// port. Anything else would let a credentials document send our calls, and
// the token, to a server of its choosing.
func (c *Connector) checkInstanceURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("salesforce credentials: instance_url is missing: it is the instance_url of Salesforce's token response, e.g. https://yourdomain.my.salesforce.com")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errors.New("salesforce credentials: instance_url must be a plain URL such as https://yourdomain.my.salesforce.com")
	}
	host := strings.ToLower(u.Hostname())
	dev := c.loopbackLogin()
	switch {
	case dev && isLoopback(host) && (u.Scheme == "http" || u.Scheme == "https"):
		return nil
	case u.Scheme == "http" && dev:
		return errors.New("salesforce credentials: instance_url must use https (http only on a loopback address, for the fake Salesforce)")
	case u.Scheme == "http":
		return errors.New("salesforce credentials: instance_url must use https, e.g. https://yourdomain.my.salesforce.com")
	case u.Scheme != "https":
		return errors.New("salesforce credentials: instance_url must be an https URL such as https://yourdomain.my.salesforce.com")
	case !slices.ContainsFunc(c.instanceDomains(), func(d string) bool { return host == d || strings.HasSuffix(host, "."+d) }):
		return errors.New("salesforce credentials: instance_url must be on a Salesforce domain, such as https://yourdomain.my.salesforce.com: it is the instance_url of Salesforce's token response; connect Salesforce again")
	case u.Port() != "" && u.Port() != "443":
		return errors.New("salesforce credentials: instance_url must use the default https port, e.g. https://yourdomain.my.salesforce.com")
	}
	return nil
}

// instanceDomains are the domains an instance URL may be on: Salesforce's,
// and those of the configured logins.
func (c *Connector) instanceDomains() []string {
	domains := slices.Clone(salesforceDomains)
	for _, login := range []string{c.cfg.LoginURL, c.cfg.TestLoginURL} {
		u, err := url.Parse(login)
		if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
			continue
		}
		host := strings.ToLower(u.Hostname())
		// The login host's parent domain, when that is more than a
		// top-level domain: login.example.com gives example.com, and
		// example.com stays itself.
		if _, parent, ok := strings.Cut(host, "."); ok && strings.Contains(parent, ".") {
			host = parent
		}
		domains = append(domains, host)
	}
	return domains
}

// loopbackLogin reports whether a configured login is on a loopback
// address: the fake Salesforce, or the dev stack.
func (c *Connector) loopbackLogin() bool {
	for _, login := range []string{c.cfg.LoginURL, c.cfg.TestLoginURL} {
		if u, err := url.Parse(login); err == nil && isLoopback(strings.ToLower(u.Hostname())) {
			return true
		}
	}
	return false
}

// isLoopback reports whether host is this machine: localhost, a loopback
// address, or the unspecified address a dev server bound to all
// interfaces names itself by (0.0.0.0, ::).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}
