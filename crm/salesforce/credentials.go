package salesforce

import (
	"errors"
	"fmt"
	"net"
	"net/url"
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

// orgID returns the org's ID from the identity URL, or "".
func (c credentials) orgID() string {
	u, err := url.Parse(c.ID)
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

// account names the org for pacing and quota: its ID when the document
// knows it, else its instance.
func (c credentials) account() string {
	if id := c.orgID(); id != "" {
		return id
	}
	return c.InstanceURL
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
func parseCredentials(raw []byte) (credentials, error) {
	var creds credentials
	if err := credentialsFormat.Decode(raw, &creds); err != nil {
		return credentials{}, err
	}
	for _, f := range []struct{ name, value string }{
		{"access_token", creds.AccessToken},
		{"refresh_token", creds.RefreshToken},
	} {
		switch {
		case f.value == "":
			return credentials{}, fmt.Errorf("salesforce credentials: %s is missing or empty: connect Salesforce again, or provide %s", f.name, credentialsExample)
		case crm.HasSpaceOrControl(f.value):
			// Tokens go into headers and forms, where whitespace and control
			// characters break them; usually a copy-paste accident.
			return credentials{}, fmt.Errorf("salesforce credentials: %s contains whitespace or control characters: copy it again without spaces or line breaks", f.name)
		}
	}
	if err := checkInstanceURL(creds.InstanceURL); err != nil {
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

// checkInstanceURL accepts an absolute https URL (or http on a loopback
// address, where the fake and dev stacks run) without credentials, query
// or fragment: the access token is sent there.
func checkInstanceURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("salesforce credentials: instance_url is missing: it is the instance_url of Salesforce's token response, e.g. https://yourdomain.my.salesforce.com")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errors.New("salesforce credentials: instance_url must be a plain URL such as https://yourdomain.my.salesforce.com")
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return errors.New("salesforce credentials: instance_url must use https (http only on a loopback address, for the fake Salesforce)")
		}
	default:
		return errors.New("salesforce credentials: instance_url must be an https URL such as https://yourdomain.my.salesforce.com")
	}
	return nil
}
