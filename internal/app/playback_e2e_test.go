package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/smithy-go"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// pattern is an MKV test pattern of the given size, one fragment per second, producer times
// from start; with audio it carries an AAC track 2; codec is libx264 or libx265.
func pattern(t *testing.T, seconds int, start time.Time, size, codec string, audio bool) []byte {
	args := []string{"-f", "lavfi", "-i", "testsrc=size=" + size + ":rate=25"}
	if audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", strconv.Itoa(seconds), "-c:v", codec, "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0")
	if codec == "libx265" {
		args = append(args, "-x265-params", "keyint=25:min-keyint=25:scenecut=0:log-level=error")
	}
	if audio {
		args = append(args, "-c:a", "aac", "-ac", "2")
	}
	return kvstest.FFmpegMKV(t, append(args, "-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000),
		"-cluster_size_limit", "20000000", "-cluster_time_limit", "10000", "-f", "matroska", "-live", "1", "-")...)
}

// clock is the server's injected playback clock: real time plus an offset the test moves.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func startPlayback(t *testing.T) (*kvstest.Server, *clock) {
	clk := &clock{}
	return kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.Now = clk.now }}), clk
}

// gapAndChange stores 4 s at 320x240, then after a 2 s gap 3 s at 640x360 (new codec private
// data): 7 fragments of 25 frames. It returns the producer start.
func gapAndChange(t *testing.T, srv *kvstest.Server, name string) time.Time {
	srv.CreateStream(t, name, 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, name, bytes.NewReader(pattern(t, 4, start, "320x240", "libx264", false)))), 4)
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, name, bytes.NewReader(pattern(t, 3, start.Add(6*time.Second), "640x360", "libx264", false)))), 3)
	return start
}

func hlsURL(t *testing.T, srv *kvstest.Server, in *kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput) string {
	t.Helper()
	out, err := srv.ArchivedMedia(t, aws.ToString(in.StreamName), kvtypes.APINameGetHlsStreamingSessionUrl).GetHLSStreamingSessionURL(context.Background(), in)
	require.NoError(t, err)
	u := aws.ToString(out.HLSStreamingSessionURL)
	require.True(t, strings.HasPrefix(u, srv.URL+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="), u)
	return u
}

func dashURL(t *testing.T, srv *kvstest.Server, in *kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput) string {
	t.Helper()
	out, err := srv.ArchivedMedia(t, aws.ToString(in.StreamName), kvtypes.APINameGetDashStreamingSessionUrl).GetDASHStreamingSessionURL(context.Background(), in)
	require.NoError(t, err)
	u := aws.ToString(out.DASHStreamingSessionURL)
	require.True(t, strings.HasPrefix(u, srv.URL+"/dash/v1/getDASHManifest.mpd?SessionToken="), u)
	return u
}

func producerRange(from, to time.Time) *amtypes.HLSFragmentSelector {
	return &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeProducerTimestamp,
		TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(to)}}
}

// get fetches a playback URL (unsigned, as players do).
func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// resolve makes a playlist URI absolute against the playlist's URL.
func resolve(base, ref string) string {
	return base[:strings.LastIndex(base[:strings.Index(base, "?")], "/")+1] + ref
}

func mediaPlaylistAt(t *testing.T, url string) (*playlist.Media, []byte) {
	t.Helper()
	resp, body := get(t, url)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "application/vnd.apple.mpegurl", resp.Header.Get("Content-Type"))
	pl, err := playlist.Unmarshal(body)
	require.NoError(t, err, "%s", body)
	m, ok := pl.(*playlist.Media)
	require.True(t, ok)
	return m, body
}

// ffprobeFrames returns the pts of every frame of the first stream of kind v or a at url.
func ffprobeFrames(t *testing.T, url, kind string) []float64 {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-select_streams", kind+":0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "ffprobe %s: %s", url, stderr.String())
	var pts []float64
	for _, line := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.TrimSuffix(line, ","), 64)
		require.NoError(t, err, line)
		pts = append(pts, v)
	}
	return pts
}

func ffprobeCodec(t *testing.T, url, kind string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", kind+":0", "-show_entries", "stream=codec_name", "-of", "csv=p=0", url).Output()
	require.NoError(t, err)
	return strings.Fields(string(out))[0] // HLS: once per program
}

func gstreamer(t *testing.T, pipeline string) {
	t.Helper()
	cmd := exec.Command("gst-launch-1.0", append([]string{"-q"}, strings.Fields(pipeline)...)...)
	cmd.Env = append(os.Environ(), "GST_DEBUG=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "gst-launch-1.0 %s: %s", pipeline, out)
}

// An ON_DEMAND fMP4 session of a stream with a gap and a codec-private change: KVS's playlist
// shape, and ffprobe and GStreamer play every frame at its producer time.
func TestHLSOnDemandPlaysEveryFrame(t *testing.T) {
	srv, _ := startPlayback(t)
	start := gapAndChange(t, srv, "cam")
	master := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start, start.Add(20*time.Second)),
		DiscontinuityMode: amtypes.HLSDiscontinuityModeOnDiscontinuity, DisplayFragmentTimestamp: amtypes.HLSDisplayFragmentTimestampAlways})

	resp, body := get(t, master)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	pl, err := playlist.Unmarshal(body)
	require.NoError(t, err)
	mv := pl.(*playlist.Multivariant)
	require.Len(t, mv.Variants, 1)
	require.Regexp(t, `^avc1\.[0-9a-f]{6}$`, mv.Variants[0].Codecs[0])
	require.Equal(t, "320x240", mv.Variants[0].Resolution)
	require.NotNil(t, mv.Variants[0].FrameRate)
	require.InDelta(t, 25, *mv.Variants[0].FrameRate, 0.5)

	mediaURL := resolve(master, mv.Variants[0].URI)
	m, raw := mediaPlaylistAt(t, mediaURL)
	require.True(t, m.Endlist)
	require.Len(t, m.Segments, 7)
	for i, seg := range m.Segments {
		at := start.Add(time.Duration(i) * time.Second)
		if i >= 4 {
			at = at.Add(2 * time.Second)
		}
		require.Equal(t, at.UTC(), seg.DateTime.UTC(), "PROGRAM-DATE-TIME of segment %d", i)
		require.Equal(t, i == 4, seg.Discontinuity, "segment %d", i)
		require.InDelta(t, 1.0, seg.Duration.Seconds(), 0.05)
	}
	require.Equal(t, 2, strings.Count(string(raw), "#EXT-X-MAP:"), "a second init segment for the new codec private data")
	require.Contains(t, string(raw), "SequenceNumber=1")
	require.True(t, strings.HasPrefix(string(raw), "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:"), "%s", raw)

	// MP4 resources: HEAD, and a Range request answered 206.
	initURL := resolve(mediaURL, m.Map.URI)
	resp, _ = get(t, initURL, "Range", "bytes=0-1")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))
	headResp, err := http.Head(initURL)
	require.NoError(t, err)
	headResp.Body.Close()
	require.Equal(t, http.StatusOK, headResp.StatusCode)
	require.NotEmpty(t, headResp.Header.Get("Content-Length"))

	pts := ffprobeFrames(t, master, "v")
	require.Len(t, pts, 7*25, "every frame the producer sent")
	require.InDelta(t, float64(start.UnixMilli())/1000, pts[0], 0.001, "tfdt is the producer time")
	require.InDelta(t, float64(start.Add(6*time.Second).UnixMilli())/1000, pts[100], 0.001, "after the gap")
	gstreamer(t, "souphttpsrc location="+master+" ! hlsdemux ! qtdemux ! h264parse ! fakesink")
}

// MPEG-TS sessions: no EXT-X-MAP, one playlist, every frame.
func TestHLSMPEGTSWithAudio(t *testing.T) {
	srv, _ := startPlayback(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	srv.PutMedia(t, "cam", bytes.NewReader(pattern(t, 3, start, "320x240", "libx264", true)))
	// ffmpeg's clusters start with the AAC priming frame, 21 ms before start: the range opens earlier.
	in := &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start.Add(-time.Second), start.Add(10*time.Second))}

	// fMP4: the AAC track is the audio rendition.
	master := hlsURL(t, srv, in)
	_, body := get(t, master)
	require.Contains(t, string(body), `#EXT-X-MEDIA:AUTOSELECT=YES,FORCED=NO,TYPE=AUDIO,URI="getHLSMediaPlaylist.m3u8?SessionToken=`)
	require.Contains(t, string(body), `mp4a.40.2"`)
	require.Equal(t, "aac", ffprobeCodec(t, master, "a"))

	in.ContainerFormat = amtypes.ContainerFormatMpegTs
	master = hlsURL(t, srv, in)
	_, body = get(t, master)
	require.NotContains(t, string(body), "EXT-X-MEDIA")
	pl, err := playlist.Unmarshal(body)
	require.NoError(t, err)
	m, raw := mediaPlaylistAt(t, resolve(master, pl.(*playlist.Multivariant).Variants[0].URI))
	require.NotEmpty(t, m.Segments)
	require.NotContains(t, string(raw), "EXT-X-MAP")
	require.Contains(t, m.Segments[0].URI, "getTSFragment.ts?FragmentNumber=")
	resp, _ := get(t, resolve(master, m.Segments[0].URI))
	require.Equal(t, "video/mp2t", resp.Header.Get("Content-Type"))
	require.Len(t, m.Segments, 3)
	require.Len(t, ffprobeFrames(t, master, "v"), 75, "every frame the producer sent")
	require.Equal(t, "aac", ffprobeCodec(t, master, "a"))
}

// H.265: hvc1 codec strings, decoded by ffprobe and GStreamer.
func TestHLSH265(t *testing.T) {
	srv, _ := startPlayback(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	srv.PutMedia(t, "cam", bytes.NewReader(pattern(t, 3, start, "320x240", "libx265", false)))
	master := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start, start.Add(10*time.Second))})
	_, body := get(t, master)
	require.Regexp(t, `CODECS="hvc1\.`, string(body))
	require.Equal(t, "hevc", ffprobeCodec(t, master, "v"))
	require.Len(t, ffprobeFrames(t, master, "v"), 75)
	gstreamer(t, "souphttpsrc location="+master+" ! hlsdemux ! qtdemux ! h265parse ! fakesink")
}

// Every connection of a producer sends its own Matroska header (ffmpeg: a new SegmentUID), but
// only a change of codec private data is a new initialization segment: a stream put by three
// connections with the same codec plays as one piece in HLS (one EXT-X-MAP, no discontinuity)
// and in DASH (one manifest holds all of it).
func TestReconnectsAreNotCodecChanges(t *testing.T) {
	srv, _ := startPlayback(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	var headers [][]byte
	for i := range 3 {
		mkv := pattern(t, 2, start.Add(time.Duration(2*i)*time.Second), "320x240", "libx264", false)
		headers = append(headers, mkv[:bytes.Index(mkv, []byte{0x1F, 0x43, 0xB6, 0x75})])
		require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(mkv))), 2)
	}
	require.NotEqual(t, headers[0], headers[1], "each connection has a header of its own")

	master := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, DiscontinuityMode: amtypes.HLSDiscontinuityModeOnDiscontinuity,
		HLSFragmentSelector: producerRange(start, start.Add(time.Minute))})
	_, body := get(t, master)
	pl, err := playlist.Unmarshal(body)
	require.NoError(t, err)
	m, raw := mediaPlaylistAt(t, resolve(master, pl.(*playlist.Multivariant).Variants[0].URI))
	require.Len(t, m.Segments, 6)
	require.Equal(t, 1, strings.Count(string(raw), "#EXT-X-MAP"), "%s", raw)
	require.NotContains(t, string(raw), "#EXT-X-DISCONTINUITY\n#EXTINF", "%s", raw)
	pts := ffprobeFrames(t, master, "v")
	require.Len(t, pts, 150)
	require.InDelta(t, float64(start.Add(4*time.Second).UnixMilli())/1000, pts[100], 0.001)

	mpd := dashURL(t, srv, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.DASHPlaybackModeOnDemand,
		DASHFragmentSelector: &amtypes.DASHFragmentSelector{FragmentSelectorType: amtypes.DASHFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &amtypes.DASHTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(start.Add(time.Minute))}}})
	_, body = get(t, mpd)
	require.Equal(t, 6, strings.Count(string(body), "<S "), "%s", body)
	require.Len(t, ffprobeFrames(t, mpd, "v"), 150)
}

// DASH ON_DEMAND ends at the codec-private change; kvs:ts and kvs:fn when asked.
func TestDASHOnDemand(t *testing.T) {
	srv, _ := startPlayback(t)
	start := gapAndChange(t, srv, "cam")
	mpd := dashURL(t, srv, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.DASHPlaybackModeOnDemand, DisplayFragmentTimestamp: amtypes.DASHDisplayFragmentTimestampAlways,
		DisplayFragmentNumber: amtypes.DASHDisplayFragmentNumberAlways,
		DASHFragmentSelector: &amtypes.DASHFragmentSelector{FragmentSelectorType: amtypes.DASHFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &amtypes.DASHTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(start.Add(20 * time.Second))}}})
	resp, body := get(t, mpd)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "application/dash+xml", resp.Header.Get("Content-Type"))
	require.Contains(t, string(body), `type="static"`)
	require.Equal(t, 4, strings.Count(string(body), "<S "), "%s", body)
	require.Contains(t, string(body), fmt.Sprintf(`kvs:ts="%d"`, start.UnixMilli()))
	require.Contains(t, string(body), `kvs:fn="9`)
	require.Len(t, ffprobeFrames(t, mpd, "v"), 100)
	gstreamer(t, "souphttpsrc location="+mpd+" ! dashdemux ! qtdemux ! h264parse ! fakesink")
}

// GetClip: a progressive MP4 (moov before mdat) of the range up to the codec-private change.
func TestGetClip(t *testing.T) {
	srv, _ := startPlayback(t)
	start := gapAndChange(t, srv, "cam")
	out, err := srv.ArchivedMedia(t, "cam", kvtypes.APINameGetClip).GetClip(context.Background(), &kinesisvideoarchivedmedia.GetClipInput{
		StreamName: aws.String("cam"), ClipFragmentSelector: &amtypes.ClipFragmentSelector{FragmentSelectorType: amtypes.ClipFragmentSelectorTypeProducerTimestamp,
			TimestampRange: &amtypes.ClipTimestampRange{StartTimestamp: aws.Time(start.Add(time.Second)), EndTimestamp: aws.Time(start.Add(20 * time.Second))}}})
	require.NoError(t, err)
	require.Equal(t, "video/mp4", aws.ToString(out.ContentType))
	clip, err := io.ReadAll(out.Payload)
	require.NoError(t, err)
	out.Payload.Close()
	moov, mdat := bytes.Index(clip, []byte("moov")), bytes.Index(clip, []byte("mdat"))
	require.True(t, moov > 0 && moov < mdat, "moov before mdat")
	path := filepath.Join(t.TempDir(), "clip.mp4")
	require.NoError(t, os.WriteFile(path, clip, 0o600))
	pts := ffprobeFrames(t, path, "v")
	require.Len(t, pts, 75, "fragments 2-4: the clip stops at the codec change")
	require.InDelta(t, 0, pts[0], 0.001)
}

// LIVE lists the newest fragments the moment they are persisted; LIVE_REPLAY paces with the
// (injected) clock and ends at EndTimestamp.
func TestLiveAndLiveReplay(t *testing.T) {
	srv, clk := startPlayback(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(pattern(t, 3, start, "320x240", "libx264", false))))
	master := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam")})
	mediaURL := strings.Replace(master, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?", 1) + "&TrackNumber=1"
	m, raw := mediaPlaylistAt(t, mediaURL)
	require.False(t, m.Endlist)
	require.Len(t, m.Segments, 3)
	require.Equal(t, 0, m.MediaSequence, "numbered from the session's first fragment")
	require.Contains(t, string(raw), "#EXT-X-DISCONTINUITY-SEQUENCE:0\n")
	resp, _ := get(t, mediaURL)
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))

	more := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(pattern(t, 4, start.Add(3*time.Second), "320x240", "libx264", false))))
	m, raw = mediaPlaylistAt(t, mediaURL) // no wait: listed once PERSISTED
	require.Len(t, m.Segments, 5)
	require.Equal(t, 2, m.MediaSequence, "two fragments scrolled out")
	require.Contains(t, m.Segments[4].URI, "FragmentNumber="+more[3])
	require.Contains(t, string(raw), "#EXT-X-DISCONTINUITY-SEQUENCE:2\n", "ALWAYS: one tag per fragment scrolled out")
	resp, _ = get(t, resolve(mediaURL, m.Segments[4].URI))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "video/mp4", resp.Header.Get("Content-Type"))

	replay := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeLiveReplay, HLSFragmentSelector: producerRange(start, start.Add(5500*time.Millisecond))})
	replayMedia := strings.Replace(replay, "getHLSMasterPlaylist.m3u8?", "getHLSMediaPlaylist.m3u8?", 1) + "&TrackNumber=1"
	m, _ = mediaPlaylistAt(t, replayMedia)
	require.Len(t, m.Segments, 1)
	require.Contains(t, m.Segments[0].URI, numbers[0])
	clk.advance(2 * time.Second)
	m, _ = mediaPlaylistAt(t, replayMedia)
	require.Len(t, m.Segments, 3)
	require.False(t, m.Endlist)
	clk.advance(4 * time.Second)
	m, _ = mediaPlaylistAt(t, replayMedia)
	require.True(t, m.Endlist)
	require.Len(t, m.Segments, 5) // the newest 5 of fragments 0-5
	require.Equal(t, 1, m.MediaSequence)

	// DASH LIVE on producer time (this test's fast uploads give fragments one server ms, which a
	// SegmentTimeline cannot tell apart).
	dash := dashURL(t, srv, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{StreamName: aws.String("cam"),
		DASHFragmentSelector: &amtypes.DASHFragmentSelector{FragmentSelectorType: amtypes.DASHFragmentSelectorTypeProducerTimestamp}})
	_, body := get(t, dash)
	require.Contains(t, string(body), `type="dynamic"`)
	// The two uploads' Matroska headers differ (ffmpeg writes a new SegmentUID) but their codecs
	// do not: the manifest, which allows no codec change, spans both (the newest 5 fragments).
	require.Equal(t, 5, strings.Count(string(body), "<S "), "%s", body)
}

// Session tokens: expiry (403, KVS's message) with the injected clock, altered tokens, a
// recreated stream; tokens survive a restart.
func TestSessionTokens(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{}
	srv := kvstest.Start(t, kvstest.Options{DataDir: dir, Configure: func(c *app.Config) { c.Now = clk.now }})
	start := gapAndChange(t, srv, "cam")
	master := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start, start.Add(20*time.Second)), Expires: aws.Int32(600)})

	srv.Stop(t)
	srv = kvstest.Start(t, kvstest.Options{DataDir: dir, Configure: func(c *app.Config) { c.Now = clk.now }})
	master = strings.Replace(master, master[:strings.Index(master, "/hls/")], srv.URL, 1)
	resp, body := get(t, master)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a session survives a restart: %s", body)

	altered := strings.Replace(master, "SessionToken=1", "SessionToken=1A", 1)
	resp, body = get(t, altered)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, string(body), "Streaming session token")
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), "errors carry CORS too")

	clk.advance(601 * time.Second)
	resp, body = get(t, master)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	var msg struct{ Message string }
	require.NoError(t, json.Unmarshal(body, &msg))
	require.Equal(t, "Streaming session token is expired", msg.Message)
}

// Browsers: preflights answered before authentication, CORS on every response.
func TestPlaybackCORS(t *testing.T) {
	srv, _ := startPlayback(t)
	for _, path := range []string{"/getHLSStreamingSessionURL", "/getClip", "/describeStream"} {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL+path, nil)
		req.Header.Set("Origin", "https://viewer.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,authorization,amz-sdk-invocation-id,x-amz-user-agent")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
		require.Equal(t, "POST", resp.Header.Get("Access-Control-Allow-Methods"))
		require.Equal(t, "content-type,authorization,amz-sdk-invocation-id,x-amz-user-agent", resp.Header.Get("Access-Control-Allow-Headers"))
		require.Equal(t, "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date", resp.Header.Get("Access-Control-Expose-Headers"))
		require.Equal(t, "172800", resp.Header.Get("Access-Control-Max-Age"))
	}
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/hls/v1/getMP4MediaFragment.mp4", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "GET, HEAD, OPTIONS", resp.Header.Get("Access-Control-Allow-Methods"))
	require.Equal(t, "Range", resp.Header.Get("Access-Control-Allow-Headers"))
	require.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "Content-Range")
}

// Every validation rule and error of §4.5/§4.6, through the SDK.
func TestPlaybackErrors(t *testing.T) {
	srv, clk := startPlayback(t)
	ctx := context.Background()
	start := gapAndChange(t, srv, "cam")
	srv.CreateStream(t, "nodata", 0)
	srv.CreateStream(t, "empty", 24)
	srv.CreateStream(t, "vp8", 24)
	vp8 := kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2", "-c:v", "libvpx", "-g", "25",
		"-output_ts_offset", fmt.Sprintf("%d", start.Unix()), "-f", "matroska", "-live", "1", "-")
	srv.PutMedia(t, "vp8", bytes.NewReader(vp8))
	client := srv.ArchivedMedia(t, "cam", kvtypes.APINameGetHlsStreamingSessionUrl)
	hour := 25 * time.Hour
	for _, tc := range []struct {
		name string
		in   kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput
		code string
		msg  string
	}{
		{"bad mode", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{PlaybackMode: "SOMETIMES"}, "InvalidArgumentException", "PlaybackMode"},
		{"range in LIVE", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{HLSFragmentSelector: producerRange(start, start.Add(time.Second))}, "InvalidArgumentException", "LIVE"},
		{"ON_DEMAND without range", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{PlaybackMode: amtypes.HLSPlaybackModeOnDemand}, "InvalidArgumentException", "TimestampRange"},
		{"end before start", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start, start)}, "InvalidArgumentException", "after"},
		{"over 24 h", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start, start.Add(hour))}, "InvalidArgumentException", "24 hours"},
		{"server end in the future", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{PlaybackMode: amtypes.HLSPlaybackModeOnDemand,
			HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp,
				TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(time.Now().Add(time.Hour))}}}, "InvalidArgumentException", "past"},
		{"expires too short", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{Expires: aws.Int32(299)}, "InvalidArgumentException", "Expires"},
		{"expires too long", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{Expires: aws.Int32(43201)}, "InvalidArgumentException", "Expires"},
		{"max results", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{MaxMediaPlaylistFragmentResults: aws.Int64(5001)}, "InvalidArgumentException", "MaxMediaPlaylistFragmentResults"},
		{"container", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{ContainerFormat: "MKV"}, "InvalidArgumentException", "ContainerFormat"},
		{"discontinuity", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{DiscontinuityMode: "SOMETIMES"}, "InvalidArgumentException", "DiscontinuityMode"},
		{"no fragment in range", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start.Add(-time.Hour), start.Add(-time.Minute))}, "ResourceNotFoundException", "No fragments found in the stream for the streaming request."},
		{"LIVE of an empty stream", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("empty")}, "ResourceNotFoundException", "No fragments found"},
		{"no stream", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("nope")}, "ResourceNotFoundException", ""},
		{"no retention", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("nodata")}, "NoDataRetentionException", ""},
		{"VP8", kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("vp8"), PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: producerRange(start, start.Add(time.Minute))}, "UnsupportedStreamMediaTypeException", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.StreamName == nil {
				in.StreamName = aws.String("cam")
			}
			_, err := client.GetHLSStreamingSessionURL(ctx, &in)
			var ae smithy.APIError
			require.True(t, errors.As(err, &ae), "%v", err)
			require.Equal(t, tc.code, ae.ErrorCode())
			require.Contains(t, ae.ErrorMessage(), tc.msg)
		})
	}
	// LIVE needs a fragment persisted in the last 30 s (server time, the injected clock).
	_, err := client.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	clk.advance(31 * time.Second)
	_, err = client.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam")})
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, "ResourceNotFoundException", ae.ErrorCode())
	require.Equal(t, "No fragments found in the stream for the streaming request.", ae.ErrorMessage())
	clk.advance(-31 * time.Second)

	_, err = srv.ArchivedMedia(t, "cam", kvtypes.APINameGetDashStreamingSessionUrl).GetDASHStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("cam"), MaxManifestFragmentResults: aws.Int64(0)})
	require.True(t, errors.As(err, &ae))
	require.Equal(t, "InvalidArgumentException", ae.ErrorCode())

	clips := srv.ArchivedMedia(t, "cam", kvtypes.APINameGetClip)
	_, err = clips.GetClip(ctx, &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("cam"), ClipFragmentSelector: &amtypes.ClipFragmentSelector{
		FragmentSelectorType: amtypes.ClipFragmentSelectorTypeProducerTimestamp,
		TimestampRange:       &amtypes.ClipTimestampRange{StartTimestamp: aws.Time(start.Add(-time.Hour)), EndTimestamp: aws.Time(start.Add(-time.Minute))}}})
	require.True(t, errors.As(err, &ae))
	require.Equal(t, "ResourceNotFoundException", ae.ErrorCode())
	_, err = clips.GetClip(ctx, &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("nodata"), ClipFragmentSelector: &amtypes.ClipFragmentSelector{
		FragmentSelectorType: amtypes.ClipFragmentSelectorTypeProducerTimestamp,
		TimestampRange:       &amtypes.ClipTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(start.Add(time.Minute))}}})
	require.True(t, errors.As(err, &ae))
	require.Equal(t, "NoDataRetentionException", ae.ErrorCode())
}

// The aws CLI v2: a session URL and a clip.
func TestPlaybackAWSCLI(t *testing.T) {
	t.Parallel() // Independent: its own server; the aws CLI runs in a clean environment.
	srv, _ := startPlayback(t)
	start := gapAndChange(t, srv, "cam")
	dir := t.TempDir()
	out, err := srv.AWSCLI(t, dir, "", "kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", "cam",
		"--playback-mode", "ON_DEMAND", "--hls-fragment-selector",
		fmt.Sprintf("FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp=%d,EndTimestamp=%d}", start.Unix(), start.Unix()+20))
	require.NoError(t, err)
	var res struct{ HLSStreamingSessionURL string }
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, ffprobeFrames(t, res.HLSStreamingSessionURL, "v"), 175)

	_, err = srv.AWSCLI(t, dir, "", "kinesis-video-archived-media", "get-clip", "--stream-name", "cam", "--clip-fragment-selector",
		fmt.Sprintf("FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp=%d,EndTimestamp=%d}", start.Unix(), start.Unix()+20), "clip.mp4")
	require.NoError(t, err)
	require.Len(t, ffprobeFrames(t, filepath.Join(dir, "clip.mp4"), "v"), 100)
}
