package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	HeaderEventID   = "X-Kvsd-Event-Id"
	HeaderEventType = "X-Kvsd-Event-Type"
	HeaderTimestamp = "X-Kvsd-Timestamp" // when this attempt was signed, Unix seconds
	HeaderSignature = "X-Kvsd-Signature" // v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>
)

// A webhook URI names its secret in its fragment, which HTTP clients never send:
// https://host/path#secret=<name>. The secret itself is KVSD_WEBHOOK_SECRET_<NAME> in kvsd's
// environment, so DescribeNotificationConfiguration shows only the name.
var secretRefPattern = regexp.MustCompile(`^secret=([A-Za-z0-9_]{1,64})$`)

// SecretEnv is the variable that holds the webhook secret called name.
func SecretEnv(name string) string { return "KVSD_WEBHOOK_SECRET_" + strings.ToUpper(name) }

// webhookSecretRef returns the secret name a webhook URI refers to ("" when none), or an error
// for a fragment that is not a secret reference.
func webhookSecretRef(u *url.URL) (string, error) {
	if u.Fragment == "" {
		return "", nil
	}
	m := secretRefPattern.FindStringSubmatch(u.Fragment)
	if m == nil {
		return "", fmt.Errorf("the part after '#' must be secret=<name> (letters, digits and _, at most 64), naming the secret in %s", SecretEnv("<name>"))
	}
	return m[1], nil
}

// webhook POSTs each event's JSON to a URL; any 2xx answer acknowledges it.
type webhook struct {
	url       string
	secret    []byte
	now       func() time.Time
	client    *http.Client
	transport *http.Transport
}

func newWebhook(cfg *Config, uri string) (*webhook, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	secret := cfg.WebhookSecret
	name, err := webhookSecretRef(u)
	if err != nil {
		return nil, err
	}
	if name != "" {
		if secret = cfg.WebhookSecrets(name); len(secret) == 0 {
			// Never unsigned: the receiver would refuse it, or worse, accept it.
			return nil, fmt.Errorf("the webhook's secret %q is not configured: set %s in kvsd serve's environment", name, SecretEnv(name))
		}
	}
	u.Fragment, u.RawFragment = "", ""
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	// Direct connections only: through a proxy the address check would see the proxy, not
	// the destination.
	tr.Proxy = nil
	tr.DialContext = cfg.Egress.Dialer(30 * time.Second).DialContext
	return &webhook{url: u.String(), secret: secret, now: cfg.Now, transport: tr, client: &http.Client{
		Transport: tr,
		// A redirect would turn the POST into a GET (301/302) whose 2xx acknowledges nothing:
		// report the 3xx as the failure it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Sign returns the X-Kvsd-Signature value of body sent at timestamp (the X-Kvsd-Timestamp
// value): receivers recompute it with the shared secret, compare in constant time, and refuse
// a timestamp too old (a replay).
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify is the receiver's check of a webhook request: the signature matches, and the
// timestamp is within maxAge of now. Receivers drop repeated X-Kvsd-Event-Id values as well.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, maxAge time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("no valid " + HeaderTimestamp)
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return errors.New(HeaderSignature + " does not match")
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("signed %s ago: too old (a replay?)", age.Round(time.Second))
	}
	return nil
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
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(w.secret, ts, ev.Body))
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
