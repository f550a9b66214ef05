package salesforce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/acme/integrations/crm"
)

// answer is a REST API answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// call makes one authenticated call to the org's instance and reads the
// answer, whatever its status; every answer's Sforce-Limit-Info is
// observed for the org of pacing key key ("": not observed). An error
// means there was no (whole) answer: a *crm.Error of class
// crm.ClassTransient that names op, never the URL.
func (c *Connector) call(ctx context.Context, creds credentials, key, op, method, endpoint string, body []byte) (answer, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, reader)
	if err != nil {
		// The instance URL was checked when the document was parsed; this is
		// a bug, and the URL stays out of the message all the same.
		return answer{}, &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("salesforce %s: the request could not be made", op)}
	}
	req.Header.Set("Authorization", "Bearer "+creds.AccessToken)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return answer{}, transportError(op, err)
	}
	defer resp.Body.Close()
	if key != "" {
		c.observe(key, resp.Header)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return answer{}, &crm.Error{Class: crm.ClassTransient, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("salesforce %s: the answer could not be read: %s", op, describeTransport(err))}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}
