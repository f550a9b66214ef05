// Package crmfake is the HTTP plumbing every fake CRM shares: the sandbox
// CRM and the HubSpot, Salesforce and Follow Up Boss fakes each speak
// their CRM's API in their own package, and take from here what is the
// same in all of them.
//
//   - Client is the core of a fake's control API client: JSON in, a
//     bounded JSON answer out, error answers as *APIError, and no URL in
//     any error (control paths hold API keys, consent URLs codes).
//   - Fake.WriteJSON, Fake.WriteError and DecodeBody are the server side of
//     the control API: JSON answers, the {"error", "code"} error answer of
//     an *Error, and strict, bounded request bodies.
//   - Fake.Fallback answers unknown routes in JSON instead of the mux's
//     plain text.
//   - StateFile is the JSON file a persistent fake keeps its accounts in,
//     written atomically and 0600.
//   - CallLog is the ring of an account's last calls.
//
// Nothing here speaks a CRM's documented API: paths, bodies and status
// codes of the CRMs stay in the fakes, where the connector tests and the
// crm/crmtest contract suite check them.
package crmfake

import (
	"crypto/rand"
	"encoding/hex"
)

// Fake names one fake CRM to the plumbing.
type Fake struct {
	// Name is what messages call the fake: "sandbox CRM", "fake
	// Salesforce".
	Name string
	// DevURL is where `integrations dev` serves the fake, the example a
	// client gives for a base URL it cannot use.
	DevURL string
	// ContentType is the Content-Type of the fake's JSON answers; ""
	// means application/json.
	ContentType string
}

// RandomHex returns n random bytes, hex-encoded: account IDs, keys and
// tokens of the fakes.
func RandomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
