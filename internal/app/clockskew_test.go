package app_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// TestProducerClockSkewIsRefused: a producer whose ABSOLUTE timecodes are years behind or ahead
// of the server clock gets ERROR 4007 INVALID_PRODUCER_TIMESTAMP and nothing is stored; kvsd
// doctor names the problem and the flag; a producer within the bound is stored as usual.
func TestProducerClockSkewIsRefused(t *testing.T) {
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.MaxClockSkew = 24 * time.Hour }})
	srv.CreateStream(t, "cam", 24)

	for _, start := range []time.Time{time.Now().AddDate(-3, 0, 0), time.Now().AddDate(2, 0, 0)} {
		acks := srv.PutMedia(t, "cam", bytes.NewReader(kvstest.TestPattern(t, 2, start)))
		require.NotEmpty(t, acks)
		last := acks[len(acks)-1]
		require.Equal(t, "ERROR", last.EventType, "%+v", acks)
		require.Equal(t, 4007, last.ErrorID)
		require.Equal(t, "INVALID_PRODUCER_TIMESTAMP", last.ErrorCode)
	}
	require.Empty(t, srv.ListFragments(t, "cam"), "no fragment of a wrong clock is stored")

	// kvsd put of a recording stamped years back (--start-time) is refused the same way.
	clip := kvstest.SourceFile(t, "clip.mkv", kvstest.X264...)
	out, _ := kvstest.Put(t, srv.URL, "", nil, false, "--stream", "cam", "--fast", "--start-time", "2019-06-01T00:00:00Z", clip)
	require.Contains(t, out, "4007", out)
	require.Empty(t, srv.ListFragments(t, "cam"))

	doctor, _ := kvstest.Doctor(t, srv.URL, "cam")
	require.Contains(t, doctor, "INVALID_PRODUCER_TIMESTAMP", doctor)
	require.Contains(t, doctor, "behind the server clock", doctor)
	require.Contains(t, doctor, "--max-clock-skew", doctor)

	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(kvstest.TestPattern(t, 2, time.Now().Add(-time.Hour)))))
	require.Len(t, numbers, 2, "an hour behind is within the bound")
}
