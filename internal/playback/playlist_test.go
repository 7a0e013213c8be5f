package playback

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
)

var update = flag.Bool("update", false, "rewrite the golden playlists in testdata/")

// goldenStream is six 2 s fragments: a 5 s gap before the fourth, a new header (codec private
// data) from the fifth, and server times 600 ms after the producer's.
func goldenStream() []*fragment.Fragment {
	t0 := time.Date(2023, 5, 17, 13, 48, 35, 994e6, time.UTC)
	var out []*fragment.Fragment
	at := t0
	for seq := uint64(1); seq <= 6; seq++ {
		if seq == 4 {
			at = at.Add(5 * time.Second)
		}
		hdr := "h1"
		if seq >= 5 {
			hdr = "h2"
		}
		dur := 2*time.Second + 663*time.Millisecond
		if seq%2 == 0 {
			dur = 2680 * time.Millisecond
		}
		out = append(out, &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(1684330000000, seq), ProducerTime: at,
			ServerTime: at.Add(600 * time.Millisecond), Duration: dur, Size: 700_000, HeaderID: hdr})
		at = at.Add(dur)
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

func testSession(mode, disc, format string, kind fragstore.TimeKind, showTime bool) *Session {
	return &Session{Protocol: HLS, Mode: mode, Kind: kind, Disc: disc, Format: format, ShowTime: showTime, Max: 1000, token: "TOKEN"}
}

// parseMedia checks a media playlist with gohlslib's parser and returns it.
func parseMedia(t *testing.T, b []byte) *playlist.Media {
	t.Helper()
	pl, err := playlist.Unmarshal(b)
	require.NoError(t, err, "gohlslib rejects:\n%s", b)
	m, ok := pl.(*playlist.Media)
	require.True(t, ok, "not a media playlist")
	return m
}

func TestMediaPlaylistGolden(t *testing.T) {
	frags := goldenStream()
	for _, tc := range []struct {
		file string
		sess *Session
	}{
		// §14's ON_DEMAND capture: DISCONTINUITY before every fragment, MAP after the first one,
		// millisecond PROGRAM-DATE-TIME, trailing DISCONTINUITY before ENDLIST.
		{"ondemand_always_fmp4.m3u8", testSession(OnDemand, DiscAlways, FragmentedMP4, fragstore.ServerTime, true)},
		{"ondemand_ondiscontinuity_fmp4.m3u8", testSession(OnDemand, DiscOnDiscontinuty, FragmentedMP4, fragstore.ProducerTime, true)},
		{"ondemand_never_ts.m3u8", testSession(OnDemand, DiscNever, MPEGTS, fragstore.ProducerTime, false)},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := mediaPlaylist(tc.sess, rangeSelection(tc.sess, frags, true), 1)
			golden(t, tc.file, got)
			m := parseMedia(t, got)
			require.True(t, m.Endlist)
			require.Len(t, m.Segments, len(frags))
			for i, seg := range m.Segments {
				require.InDelta(t, frags[i].Duration.Seconds(), seg.Duration.Seconds(), 1e-9)
				if tc.sess.ShowTime {
					require.Equal(t, startOf(frags[i], tc.sess.Kind), seg.DateTime.UTC())
				}
			}
		})
	}
}

// A LIVE_REPLAY window in the middle of the stream: numbered from the range's start, with the
// discontinuities that scrolled out counted in DISCONTINUITY-SEQUENCE.
func TestLiveReplayWindowGolden(t *testing.T) {
	sess := testSession(LiveReplay, DiscOnDiscontinuty, FragmentedMP4, fragstore.ProducerTime, true)
	sess.Max = 2
	got := mediaPlaylist(sess, rangeSelection(sess, goldenStream(), false), 1)
	golden(t, "livereplay_window.m3u8", got)
	m := parseMedia(t, got)
	require.False(t, m.Endlist)
	require.Equal(t, 4, m.MediaSequence)
	require.NotNil(t, m.DiscontinuitySequence)
	require.Equal(t, 1, *m.DiscontinuitySequence) // the gap before 4; the header change at 5 is listed
}

func TestMasterPlaylistGolden(t *testing.T) {
	video := Track{Number: 1, Video: true, Codec: "avc1.42c032", Width: 2592, Height: 1944}
	audio := &Track{Number: 2, Codec: "mp4a.40.2", SampleRate: 48000, Channels: 2}
	info := streamInfo{video: video, audio: audio, bandwidth: 2583047, frameRate: 15.0099}
	fmp4 := masterPlaylist(testSession(Live, DiscAlways, FragmentedMP4, fragstore.ServerTime, false), info)
	golden(t, "master_audio_fmp4.m3u8", fmp4)
	ts := masterPlaylist(testSession(Live, DiscAlways, MPEGTS, fragstore.ServerTime, false), info)
	golden(t, "master_audio_ts.m3u8", ts)
	for _, b := range [][]byte{fmp4, ts} {
		pl, err := playlist.Unmarshal(b)
		require.NoError(t, err)
		mp := pl.(*playlist.Multivariant)
		require.Len(t, mp.Variants, 1)
		require.Equal(t, []string{"avc1.42c032", "mp4a.40.2"}, mp.Variants[0].Codecs)
	}
	require.Contains(t, string(fmp4), `AUDIO="audio"`)
	require.NotContains(t, string(ts), "EXT-X-MEDIA")
}

func TestManifestGolden(t *testing.T) {
	frags := goldenStream()[:4] // DASH sessions end at a header change
	info := streamInfo{video: Track{Number: 1, Video: true, Codec: "avc1.42c01e", Width: 320, Height: 240}, bandwidth: 2_000_000, frameRate: 25}
	sess := &Session{Protocol: DASH, Mode: OnDemand, Kind: fragstore.ProducerTime, ShowTime: true, ShowNumber: true, Max: 1000, token: "TOKEN"}
	now := time.Date(2023, 5, 17, 14, 0, 0, 0, time.UTC)
	static := manifest(sess, rangeSelection(sess, frags, true), info, now)
	golden(t, "ondemand.mpd", static)
	sess.Mode = Live
	dynamic := manifest(sess, &selection{frags: frags[2:], msn: 3, disc: make([]bool, 2), mapK: make([]uint64, 2)}, info, now)
	golden(t, "live.mpd", dynamic)
	for _, b := range [][]byte{static, dynamic} {
		var doc struct {
			XMLName xml.Name
			Type    string `xml:"type,attr"`
		}
		require.NoError(t, xml.NewDecoder(bytes.NewReader(b)).Decode(&doc))
		require.Equal(t, "MPD", doc.XMLName.Local)
	}
	require.True(t, strings.Contains(string(static), `type="static"`) && strings.Contains(string(dynamic), `type="dynamic"`))
}

// TARGETDURATION is the longest EXTINF rounded to the nearest second (RFC 8216 §4.3.3.1), so
// 1.02-s fragments of a stream with audio announce 1 s, not 2.
func TestTargetDuration(t *testing.T) {
	for _, c := range []struct {
		ms   []int64
		want int64
	}{{[]int64{1020, 980}, 1}, {[]int64{400}, 1}, {[]int64{2663, 2000}, 3}, {[]int64{1500}, 2}, {nil, 1}} {
		var frags []*fragment.Fragment
		for _, ms := range c.ms {
			frags = append(frags, &fragment.Fragment{Duration: time.Duration(ms) * time.Millisecond})
		}
		require.Equal(t, c.want, targetDuration(frags), "%v", c.ms)
	}
}
