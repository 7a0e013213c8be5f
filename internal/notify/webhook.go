package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
)

// Webhook request headers.
const (
	HeaderEventID   = "X-Kvsd-Event-Id"
	HeaderEventType = "X-Kvsd-Event-Type"
	HeaderSignature = "X-Kvsd-Signature" // sha256=<hex HMAC-SHA256 of the body with the secret>
)

// webhook POSTs each event's JSON to a URL; any 2xx answer acknowledges it.
type webhook struct {
	url       string
	secret    []byte
	client    *http.Client
	transport *http.Transport
}

func newWebhook(uri string, secret []byte) *webhook {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	return &webhook{url: uri, secret: secret, transport: tr, client: &http.Client{
		Transport: tr,
		// A redirect would turn the POST into a GET (301/302) whose 2xx acknowledges nothing:
		// report the 3xx as the failure it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Sign returns the X-Kvsd-Signature value of body: receivers recompute it with the shared
// secret and compare in constant time.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *webhook) send(ctx context.Context, ev *event) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(ev.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kvsd-notify")
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderEventType, ev.Type)
	if len(w.secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.secret, ev.Body))
	}
	resp, err := w.client.Do(req) // the error names the URL with its password masked
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read what a small answer holds, so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func (w *webhook) close() { w.transport.CloseIdleConnections() }
