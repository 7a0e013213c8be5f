package browsertest

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The reference media: 8 s of a 320x240 test pattern at 25 fps, a keyframe every 2 s, with a
// 440 Hz tone in AAC, cut into 2-s segments by ffmpeg's own muxers.
const (
	mediaSeconds = 8
	width        = 320
	height       = 240
	watch        = 5 * time.Second
	minPlayed    = 3.0 // seconds of media a test wants played within watch
)

var mediaRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvsd-browsertest-media-")
	if err != nil {
		panic(err)
	}
	mediaRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// media is one generated rendition set: its directory, and the wall clock just before and
// after ffmpeg ran (ffmpeg's HLS muxer dates the first segment with the clock at its start).
type media struct {
	dir           string
	before, after time.Time
	err           error
}

var (
	mediaMu   sync.Mutex
	mediaMade = map[string]*media{}
)

var ffmpegInput = []string{
	"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
	"-t", "8", "-map", "0:v", "-map", "1:a",
	"-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
	"-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
	"-c:a", "aac", "-b:a", "64k",
}

// outputs are the ffmpeg output arguments of each kind of media, run in its directory.
var outputs = map[string][]string{
	// fMP4 HLS, audio as an alternate rendition (EXT-X-MEDIA TYPE=AUDIO) as KVS serves it.
	"fmp4": {"-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
		"-hls_flags", "program_date_time+independent_segments",
		"-var_stream_map", "v:0,agroup:aud a:0,agroup:aud,name:audio",
		"-master_pl_name", "master.m3u8", "-hls_fmp4_init_filename", "init.mp4",
		"-hls_segment_filename", "stream_%v/seg%d.m4s", "stream_%v/index.m3u8"},
	// MPEG-TS HLS, audio and video in the same segments as KVS's MPEG_TS container.
	"ts": {"-f", "hls", "-hls_time", "2", "-hls_segment_type", "mpegts", "-hls_playlist_type", "vod",
		"-hls_flags", "program_date_time", "-hls_segment_filename", "seg%d.ts", "index.m3u8"},
	"dash": {"-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1",
		"-adaptation_sets", "id=0,streams=v id=1,streams=a", "manifest.mpd"},
}

// makeMedia generates the media of kind once per test binary.
func makeMedia(t *testing.T, kind string) *media {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make setup installs it)")
	}
	mediaMu.Lock()
	defer mediaMu.Unlock()
	m := mediaMade[kind]
	if m == nil {
		m = &media{dir: filepath.Join(mediaRoot, kind)}
		mediaMade[kind] = m
		args := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, ffmpegInput...)
		cmd := exec.Command("ffmpeg", append(args, outputs[kind]...)...)
		cmd.Dir = m.dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if m.err = os.MkdirAll(m.dir, 0o755); m.err == nil {
			m.before = time.Now()
			if m.err = cmd.Run(); m.err != nil {
				m.err = &ffmpegError{args: cmd.Args, err: m.err, stderr: stderr.String()}
			}
			m.after = time.Now()
		}
	}
	require.NoError(t, m.err)
	return m
}

type ffmpegError struct {
	args   []string
	err    error
	stderr string
}

func (e *ffmpegError) Error() string {
	return strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.stderr
}

// serve serves dir over HTTP on its own origin, with Access-Control-Allow-Origin: * when cors.
func serve(t *testing.T, dir string, cors bool) string {
	files := http.FileServer(http.Dir(dir))
	types := map[string]string{".m3u8": "application/vnd.apple.mpegurl", ".mpd": "application/dash+xml",
		".m4s": "video/mp4", ".mp4": "video/mp4", ".ts": "video/mp2t"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct, ok := types[filepath.Ext(r.URL.Path)]; ok {
			w.Header().Set("Content-Type", ct)
		}
		if cors {
			w.Header().Set("Access-Control-Allow-Origin", "*")
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// requirePlayed checks what every test of real media wants: played past minPlayed without a
// fatal error, frames decoded at the media's size, and Chromium gone.
func requirePlayed(t *testing.T, r Result) {
	t.Helper()
	require.Empty(t, r.Fatal(), "fatal player errors")
	require.True(t, r.Advanced, "the playhead advanced")
	require.Greater(t, r.CurrentTime(), minPlayed, "seconds played within %v", watch)
	require.Positive(t, r.DecodedFrames, "decoded frames")
	require.Equal(t, width, r.VideoWidth)
	require.Equal(t, height, r.VideoHeight)
	require.NotEmpty(t, r.Buffered)
	require.Positive(t, r.AudioDecodedBytes, "audio decoded")
	require.Empty(t, profilePIDs(r.profile), "Chromium processes left running")
}

// playlistDates reads the EXT-X-PROGRAM-DATE-TIME of each segment of a media playlist, in order.
func playlistDates(t *testing.T, path string) []time.Time {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var dates []time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "#EXT-X-PROGRAM-DATE-TIME:"); ok {
			d, err := time.Parse("2006-01-02T15:04:05.000-0700", v)
			require.NoError(t, err)
			dates = append(dates, d)
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, len(dates), mediaSeconds/2, "a date per segment (2 s, audio's last one short)")
	return dates
}

// requireDates checks hls.js's program date times against the playlist's: each loaded fragment
// of typ carries its segment's date, the first one the clock ffmpeg ran at; dates map onto the
// playhead's timeline by one offset (date - start), and each sample's playhead date agrees.
func requireDates(t *testing.T, m *media, r Result, typ string, want []time.Time) {
	t.Helper()
	require.False(t, want[0].Before(m.before.Truncate(time.Millisecond)), "ffmpeg dated its first segment %v, before it ran (%v)", want[0], m.before)
	require.False(t, want[0].After(m.after), "ffmpeg dated its first segment %v, after it ran (%v)", want[0], m.after)
	origin := want[0] // the date of playhead time 0: ffmpeg's segments start at 0
	var n int
	for _, f := range r.Fragments {
		if f.Type != typ {
			continue
		}
		n++
		require.Less(t, f.SN, len(want), "fragment %d", f.SN)
		require.True(t, f.ProgramDateTime.Equal(want[f.SN]), "fragment %d: hls.js dates it %v, the playlist %v", f.SN, f.ProgramDateTime, want[f.SN])
		at := f.ProgramDateTime.Add(-time.Duration(f.Start * float64(time.Second)))
		require.WithinDuration(t, origin, at, 50*time.Millisecond, "fragment %d starts at %.3f s", f.SN, f.Start)
	}
	require.GreaterOrEqual(t, n, 2, "%s fragments loaded", typ)
	var dated int
	for _, s := range r.Samples {
		if s.PlayheadDate.IsZero() || s.CurrentTime == 0 {
			continue
		}
		dated++
		at := s.PlayheadDate.Add(-time.Duration(s.CurrentTime * float64(time.Second)))
		require.WithinDuration(t, origin, at, 50*time.Millisecond, "playhead at %.3f s dated %v", s.CurrentTime, s.PlayheadDate)
	}
	require.Positive(t, dated, "samples with a playhead date")
	require.True(t, r.HasLatency)
	last := r.Samples[len(r.Samples)-1]
	require.InDelta(t, last.Wall.Sub(origin).Seconds()-last.CurrentTime, r.Latency.Seconds(), 0.05,
		"latency is the wall clock minus the playhead's date")
}

func TestHLSJSPlaysFMP4WithAlternateAudio(t *testing.T) {
	Require(t, HLSJS)
	m := makeMedia(t, "fmp4")
	base := serve(t, m.dir, true)
	r := Play(t, Options{URL: base + "/master.m3u8", Player: HLSJS, Watch: watch})
	requirePlayed(t, r)
	require.Len(t, r.AudioTracks, 1)
	require.Equal(t, "group_aud", r.AudioTracks[0].GroupID, "ffmpeg names agroup:aud so")
	require.Equal(t, base+"/stream_audio/index.m3u8", r.AudioTracks[0].URL)
	requireDates(t, m, r, "main", playlistDates(t, filepath.Join(m.dir, "stream_0", "index.m3u8")))
	requireDates(t, m, r, "audio", playlistDates(t, filepath.Join(m.dir, "stream_audio", "index.m3u8")))
}

func TestHLSJSPlaysMPEGTS(t *testing.T) {
	Require(t, HLSJS)
	m := makeMedia(t, "ts")
	r := Play(t, Options{URL: serve(t, m.dir, true) + "/index.m3u8", Player: HLSJS, Watch: watch})
	requirePlayed(t, r) // audio decoded: muxed in the segments, no rendition of its own
	require.Empty(t, r.AudioTracks, "no EXT-X-MEDIA, no alternate audio")
	requireDates(t, m, r, "main", playlistDates(t, filepath.Join(m.dir, "index.m3u8")))
}

func TestDashJSPlaysDASH(t *testing.T) {
	Require(t, DashJS)
	m := makeMedia(t, "dash")
	r := Play(t, Options{URL: serve(t, m.dir, true) + "/manifest.mpd", Player: DashJS, Watch: watch})
	requirePlayed(t, r)
	require.Len(t, r.AudioTracks, 1)
	require.Contains(t, r.AudioTracks[0].Codec, "mp4a.40.2")
}

func TestShakaPlaysDASH(t *testing.T) {
	Require(t, Shaka)
	m := makeMedia(t, "dash")
	r := Play(t, Options{URL: serve(t, m.dir, true) + "/manifest.mpd", Player: Shaka, Watch: watch})
	requirePlayed(t, r)
	require.Len(t, r.AudioTracks, 1)
	require.Equal(t, "mp4a.40.2", r.AudioTracks[0].Codec)
}

func TestShakaPlaysHLS(t *testing.T) {
	Require(t, Shaka)
	m := makeMedia(t, "fmp4")
	r := Play(t, Options{URL: serve(t, m.dir, true) + "/master.m3u8", Player: Shaka, Watch: watch})
	requirePlayed(t, r)
	require.Len(t, r.AudioTracks, 1)
}

// Without Access-Control-Allow-Origin the browser refuses the player the playlist: the
// harness must report that as the fatal network error it is, as it would for kvsd.
func TestMissingCORSIsAFatalNetworkError(t *testing.T) {
	Require(t, HLSJS)
	m := makeMedia(t, "fmp4")
	url := serve(t, m.dir, false) + "/master.m3u8"
	r := Play(t, Options{URL: url, Player: HLSJS, Watch: watch})
	fatal := r.Fatal()
	require.NotEmpty(t, fatal)
	require.Equal(t, "networkError", fatal[0].Type)
	require.Equal(t, "manifestLoadError", fatal[0].Details)
	require.Equal(t, url, fatal[0].URL)
	require.Zero(t, fatal[0].Code, "no HTTP status reaches the page")
	require.False(t, r.Advanced)
	require.Zero(t, r.DecodedFrames)
	require.True(t, consoleHas(r, "blocked by CORS policy"), "the console says why:\n%s", r)
	require.Empty(t, profilePIDs(r.profile), "Chromium processes left running")
}

func consoleHas(r Result, s string) bool {
	for _, l := range r.Console {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
