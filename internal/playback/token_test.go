package playback

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTokens(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	key := SessionKey([]string{"secret-b", "secret-a"})
	require.Equal(t, key, SessionKey([]string{"secret-a", "secret-b"}), "every node with the same credentials agrees")
	tokens := NewTokens(key)
	sess := &Session{Protocol: HLS, Stream: "cam", CreatedMs: 1, Mode: Live, Max: 5, StartMs: now.UnixMilli(), ExpiresMs: now.Add(300 * time.Second).UnixMilli()}
	tok := tokens.Sign(sess)
	require.Regexp(t, `^[A-Za-z0-9_.-]+$`, tok, "URL-safe without escaping")
	require.NotContains(t, tok, "secret")

	got, err := tokens.Open(tok, now.Add(299*time.Second))
	require.NoError(t, err)
	require.Equal(t, "cam", got.Stream)
	require.Equal(t, tok, got.Token())

	_, err = tokens.Open(tok, now.Add(300*time.Second))
	require.ErrorIs(t, err, ErrSessionExpired)

	_, err = NewTokens(SessionKey([]string{"other"})).Open(tok, now)
	require.ErrorIs(t, err, ErrSessionInvalid, "another key")
	payload, sig, _ := strings.Cut(tok, ".")
	altered := payload[:len(payload)-2] + "x" + payload[len(payload)-1:] + "." + sig
	_, err = tokens.Open(altered, now)
	require.ErrorIs(t, err, ErrSessionInvalid)
	for _, bad := range []string{"", "garbage", ".", "1.", tok + "x"} {
		_, err = tokens.Open(bad, now)
		require.ErrorIs(t, err, ErrSessionInvalid, bad)
	}
}

// FuzzToken: no token a player sends can crash Open or open without the key's signature, and
// whatever a signed payload holds (a key shared with a buggy or hostile node), Open answers an
// error or a session that signs back to a token opening to the same session.
func FuzzToken(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	tokens := NewTokens(SessionKey([]string{"fuzz"}))
	good := tokens.Sign(&Session{Protocol: HLS, Stream: "cam", CreatedMs: 1, Mode: Live, Max: 5, StartMs: now.UnixMilli(), ExpiresMs: now.Add(time.Hour).UnixMilli()})
	payload, _, _ := strings.Cut(good, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload[1:])
	require.NoError(f, err)
	f.Add(good, raw)
	f.Add("", []byte(`{}`))
	f.Add("1.", []byte(`{"x":"2026-12-07T00:00:00Z","m":-1}`))
	f.Fuzz(func(t *testing.T, token string, json []byte) {
		if s, err := tokens.Open(token, now); err == nil {
			// Only a token the key signed opens.
			p, sig, _ := strings.Cut(token, ".")
			require.Equal(t, tokens.mac(p), sig)
			require.Equal(t, token, s.Token())
		}
		p := tokenVersion + base64.RawURLEncoding.EncodeToString(json)
		s, err := tokens.Open(p+"."+tokens.mac(p), now)
		if err != nil {
			require.True(t, errors.Is(err, ErrSessionInvalid) || errors.Is(err, ErrSessionExpired), "%v", err)
			return
		}
		again, err := tokens.Open(tokens.Sign(s), now)
		require.NoError(t, err)
		again.token, s.token = "", ""
		require.Equal(t, s, again)
	})
}
