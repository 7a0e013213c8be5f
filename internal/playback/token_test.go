package playback

import (
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
