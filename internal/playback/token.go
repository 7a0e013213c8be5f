package playback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// Session token errors; kvsapi answers both with 403, as KVS does.
var (
	ErrSessionExpired = errors.New("Streaming session token is expired")   //nolint:staticcheck // KVS's message, verbatim
	ErrSessionInvalid = errors.New("Streaming session token is not valid") //nolint:staticcheck // KVS-shaped wording
)

// tokenVersion leads every token, so that a later layout can tell old tokens apart.
const tokenVersion = "1"

// Tokens signs and opens session tokens. A token is "1" + base64url(JSON of the Session) + "."
// + base64url(HMAC-SHA256): opaque to players, URL-safe without escaping, and verifiable by
// any kvsd holding the same key, so sessions survive restarts and work on every node that shares
// the configuration. Tokens carry no credentials and no key ids.
type Tokens struct{ key []byte }

// SessionKey derives the token key from the server's secret access keys: every node configured
// with the same credentials derives the same key, and the secrets cannot be recovered from it.
func SessionKey(secrets []string) []byte {
	s := slices.Clone(secrets)
	slices.Sort(s)
	m := hmac.New(sha256.New, []byte("kvsd playback session token v1"))
	for _, v := range s {
		m.Write([]byte(v))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// NewTokens returns a Tokens signing with key (SessionKey).
func NewTokens(key []byte) *Tokens { return &Tokens{key: slices.Clone(key)} }

func (t *Tokens) mac(payload string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Sign returns the token of s.
func (t *Tokens) Sign(s *Session) string {
	b, _ := json.Marshal(s) // a Session always marshals
	payload := tokenVersion + base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + t.mac(payload)
}

// Open verifies a token and returns its session; ErrSessionExpired once now is past its expiry.
func (t *Tokens) Open(token string, now time.Time) (*Session, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || !strings.HasPrefix(payload, tokenVersion) || !hmac.Equal([]byte(sig), []byte(t.mac(payload))) {
		return nil, ErrSessionInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload[len(tokenVersion):])
	if err != nil {
		return nil, ErrSessionInvalid
	}
	s := new(Session)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, ErrSessionInvalid
	}
	if !now.Before(s.expires()) {
		return nil, ErrSessionExpired
	}
	s.token = token
	return s, nil
}
