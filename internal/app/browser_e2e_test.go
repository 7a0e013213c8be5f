package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/browsertest"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/putmedia"
	"github.com/kvsd/kvsd/producer"
)

// Headless Chromium plays kvsd's sessions with the web players KVS users run (internal/browsertest):
// the page is served from another origin, so every request is a CORS request.

// withAudio stores seconds of H.264 + AAC (track 2), one fragment per second, and returns the
// producer start and the stored fragments' producer timestamps by fragment number.
func withAudio(t *testing.T, srv *kvstest.Server, name string, seconds int) (time.Time, map[string]time.Time) {
	t.Helper()
	srv.CreateStream(t, name, 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, name, bytes.NewReader(pattern(t, seconds, start, "320x240", "libx264", true)))), seconds)
	return start, producerTimes(t, srv, name, start)
}

// producerTimes lists the stream's fragments from a second before start, with ListFragments as
// a KVS client would.
func producerTimes(t *testing.T, srv *kvstest.Server, name string, start time.Time) map[string]time.Time {
	t.Helper()
	out, err := srv.ArchivedMedia(t, name, kvtypes.APINameListFragments).ListFragments(context.Background(),
		&kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(name), FragmentSelector: &amtypes.FragmentSelector{
			FragmentSelectorType: amtypes.FragmentSelectorTypeProducerTimestamp,
			TimestampRange:       &amtypes.TimestampRange{StartTimestamp: aws.Time(start.Add(-time.Second)), EndTimestamp: aws.Time(start.Add(time.Hour))}}})
	require.NoError(t, err)
	times := map[string]time.Time{}
	for _, f := range out.Fragments {
		times[aws.ToString(f.FragmentNumber)] = aws.ToTime(f.ProducerTimestamp)
	}
	return times
}

// fragmentNumber is the FragmentNumber parameter of a fragment's URL.
func fragmentNumber(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	n := u.Query().Get("FragmentNumber")
	require.NotEmpty(t, n, raw)
	return n
}

// requirePlayed fails unless the player advanced without a fatal error and decoded video.
func requirePlayed(t *testing.T, r browsertest.Result, minTime float64) {
	t.Helper()
	require.Empty(t, r.Fatal(), "%s", r)
	require.True(t, r.Advanced, "%s", r)
	require.Greater(t, r.DecodedFrames, 0, "%s", r)
	require.Equal(t, 320, r.VideoWidth, "%s", r)
	played := r.CurrentTime() - r.Samples[0].CurrentTime
	require.GreaterOrEqual(t, played, minTime, "%s", r)
}

func onDemand(start time.Time, container amtypes.ContainerFormat) *kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput {
	// ffmpeg's clusters start with the AAC priming frame, 21 ms before start: the range opens earlier.
	return &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, ContainerFormat: container,
		DisplayFragmentTimestamp: amtypes.HLSDisplayFragmentTimestampAlways,
		HLSFragmentSelector:      producerRange(start.Add(-time.Second), start.Add(time.Minute))}
}

// requireProgramDates fails unless hls.js loaded the stream's first fragments and dated each
// with the producer timestamp ListFragments gives for its fragment number.
func requireProgramDates(t *testing.T, r browsertest.Result, times map[string]time.Time, kind string, min int) {
	t.Helper()
	n := 0
	for _, f := range r.Fragments {
		if f.Type != kind {
			continue
		}
		n++
		want, ok := times[fragmentNumber(t, f.URL)]
		require.True(t, ok, "%s fragment %d: %s is not a stored fragment", kind, f.SN, f.URL)
		require.Equal(t, want.UnixMilli(), f.ProgramDateTime.UnixMilli(), "%s fragment %d (%s)", kind, f.SN, f.URL)
	}
	require.GreaterOrEqual(t, n, min, "%s fragments loaded: %s", kind, r)
}

// requirePlayheadDates fails unless the playhead's date (hls.playingDate, from the program date
// times) is the producer time of the frame at the playhead: start plus the media time played,
// within an AAC frame (the fragments' producer timestamps are their first audio frame's).
func requirePlayheadDates(t *testing.T, r browsertest.Result, start time.Time) {
	t.Helper()
	n := 0
	for _, s := range r.Samples {
		if s.PlayheadDate.IsZero() {
			continue
		}
		n++
		want := start.Add(time.Duration(s.CurrentTime * float64(time.Second)))
		require.InDelta(t, 0, s.PlayheadDate.Sub(want).Seconds(), 0.05, "currentTime %.3f: playhead date %s, producer time %s",
			s.CurrentTime, s.PlayheadDate.Format(time.StampMilli), want.Format(time.StampMilli))
	}
	require.Greater(t, n, 4, "samples with a playhead date: %s", r)
}

// hls.js plays an ON_DEMAND fMP4 session with its AAC rendition: the one audio track is the
// rendition and decodes; every fragment's program date is the producer timestamp ListFragments
// gives, and the playhead's date is producer time.
func TestBrowserHLSJSOnDemandFMP4(t *testing.T) {
	browsertest.Require(t, browsertest.HLSJS)
	srv, _ := startPlayback(t)
	start, times := withAudio(t, srv, "cam", 8)
	r := browsertest.Play(t, browsertest.Options{URL: hlsURL(t, srv, onDemand(start, amtypes.ContainerFormatFragmentedMp4)),
		Player: browsertest.HLSJS, Watch: 5 * time.Second})
	requirePlayed(t, r, 3)
	require.Positive(t, r.AudioDecodedBytes, "%s", r)
	require.Len(t, r.AudioTracks, 1, "%s", r)
	require.Equal(t, "mp4a.40.2", r.AudioTracks[0].Codec)
	require.Contains(t, r.AudioTracks[0].URL, "getHLSMediaPlaylist.m3u8?")
	require.Contains(t, r.AudioTracks[0].URL, "&TrackNumber=2")
	requireProgramDates(t, r, times, "main", 5)
	requireProgramDates(t, r, times, "audio", 5)
	requirePlayheadDates(t, r, start)
}

// hls.js plays an ON_DEMAND MPEG-TS session: the AAC track is muxed into the segments and
// decodes, and the program dates are the producer timestamps too.
func TestBrowserHLSJSOnDemandMPEGTS(t *testing.T) {
	browsertest.Require(t, browsertest.HLSJS)
	srv, _ := startPlayback(t)
	start, times := withAudio(t, srv, "cam", 8)
	r := browsertest.Play(t, browsertest.Options{URL: hlsURL(t, srv, onDemand(start, amtypes.ContainerFormatMpegTs)),
		Player: browsertest.HLSJS, Watch: 5 * time.Second})
	requirePlayed(t, r, 3)
	require.Positive(t, r.AudioDecodedBytes, "audio muxed in the TS segments: %s", r)
	for _, f := range r.Fragments {
		require.Equal(t, "main", f.Type, "no audio rendition: %s", r)
		require.Contains(t, f.URL, "getTSFragment.ts?")
	}
	requireProgramDates(t, r, times, "main", 5)
	requirePlayheadDates(t, r, start)
}

// Shaka Player, which the AWS sample viewer offers for HLS, plays the fMP4 session with its
// audio rendition.
func TestBrowserShakaHLS(t *testing.T) {
	browsertest.Require(t, browsertest.Shaka)
	srv, _ := startPlayback(t)
	start, _ := withAudio(t, srv, "cam", 8)
	r := browsertest.Play(t, browsertest.Options{URL: hlsURL(t, srv, onDemand(start, amtypes.ContainerFormatFragmentedMp4)),
		Player: browsertest.Shaka, Watch: 5 * time.Second})
	requirePlayed(t, r, 3)
	require.Positive(t, r.AudioDecodedBytes, "%s", r)
	require.Len(t, r.AudioTracks, 1, "%s", r)
}

// dash.js and Shaka play an ON_DEMAND DASH session with its AAC adaptation set.
func TestBrowserDASH(t *testing.T) {
	for _, p := range []browsertest.Player{browsertest.DashJS, browsertest.Shaka} {
		t.Run(string(p), func(t *testing.T) {
			browsertest.Require(t, p)
			srv, _ := startPlayback(t)
			start, _ := withAudio(t, srv, "cam", 8)
			mpd := dashURL(t, srv, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{StreamName: aws.String("cam"),
				PlaybackMode: amtypes.DASHPlaybackModeOnDemand, DisplayFragmentTimestamp: amtypes.DASHDisplayFragmentTimestampAlways,
				DASHFragmentSelector: &amtypes.DASHFragmentSelector{FragmentSelectorType: amtypes.DASHFragmentSelectorTypeProducerTimestamp,
					TimestampRange: &amtypes.DASHTimestampRange{StartTimestamp: aws.Time(start.Add(-time.Second)), EndTimestamp: aws.Time(start.Add(time.Minute))}}})
			r := browsertest.Play(t, browsertest.Options{URL: mpd, Player: p, Watch: 5 * time.Second})
			requirePlayed(t, r, 3)
			require.False(t, r.Live, "%s", r)
			require.Positive(t, r.AudioDecodedBytes, "%s", r)
			require.Len(t, r.AudioTracks, 1, "%s", r)
			require.Contains(t, r.AudioTracks[0].Codec, "mp4a.40.2", "%s", r)
		})
	}
}

// ffmpegLive runs ffmpeg -re on a test pattern (with AAC when audio is set), 25 fps with a
// keyframe every second, producer timestamps on the wall clock, writing Matroska to stdout with
// extra output arguments; it ends when the test does.
func ffmpegLive(t *testing.T, seconds int, audio bool, out ...string) io.Reader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"}
	if audio {
		args = append(args, "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-ac", "2")
	}
	start := time.Now()
	args = append(args, "-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000))
	cmd := exec.CommandContext(ctx, "ffmpeg", append(append(args, out...), "-f", "matroska", "-live", "1", "-")...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return stdout
}

// liveSDK streams a live test pattern as a camera with the KVS producer SDK does (the producer
// package, which kvsd put runs): every frame is sent the moment it is encoded, in 1-s fragments
// timed by the wall clock. It returns once the first fragment is persisted.
func liveSDK(t *testing.T, srv *kvstest.Server, name string, seconds int) {
	t.Helper()
	// One frame per Matroska cluster, so that ffmpeg writes each frame as soon as it is encoded.
	kvstest.Produce(t, srv, name, producer.NewMKVSource(ffmpegLive(t, seconds, false, "-cluster_size_limit", "1"), true))
}

// liveFFmpeg streams ffmpeg's own Matroska (H.264 and AAC, a cluster per second) into PutMedia as
// ffmpeg writes it. ffmpeg writes a cluster only once it is complete, and kvsd ends a fragment
// when the next cluster starts, so each fragment is stored two seconds after its first frame.
func liveFFmpeg(t *testing.T, srv *kvstest.Server, name string, seconds int) {
	t.Helper()
	body := ffmpegLive(t, seconds, true, "-cluster_size_limit", "20000000", "-cluster_time_limit", "10000")
	first := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.PutMediaClient().Put(ctx, putmedia.Request{StreamName: name, Body: body}, func(a putmedia.Ack) {
			if a.EventType == "PERSISTED" {
				once.Do(func() { close(first) })
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFirst(t, first, done)
}

func waitFirst(t *testing.T, first <-chan struct{}, done <-chan error) {
	t.Helper()
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("the live producer ended before a fragment was persisted: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no fragment persisted in 10 s")
	}
}

// hls.js with the README's low-latency settings plays a LIVE session of a real-time producer
// for longer than ten seconds, across many playlist reloads, with a discontinuity before every
// fragment (DiscontinuityMode ALWAYS: hls.js needs EXT-X-DISCONTINUITY-SEQUENCE for it, issue
// hls.js#7163), and keeps the picture within a few seconds of the camera. The program dates are
// producer timestamps, so the playhead's date gives the glass-to-glass latency: "sdk" streams
// frames as a camera with the KVS producer SDK does, "ffmpeg" is ffmpeg's Matroska with AAC
// (whole clusters, a second later; the audio rendition live).
func TestBrowserHLSJSLive(t *testing.T) {
	browsertest.Require(t, browsertest.HLSJS)
	for _, tc := range []struct {
		name  string
		start func(*testing.T, *kvstest.Server, string, int)
		audio bool
	}{{"sdk", liveSDK, false}, {"ffmpeg", liveFFmpeg, true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := startPlayback(t)
			srv.CreateStream(t, "cam", 24)
			tc.start(t, srv, "cam", 30)
			master := hlsURL(t, srv, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("cam"),
				PlaybackMode: amtypes.HLSPlaybackModeLive, DiscontinuityMode: amtypes.HLSDiscontinuityModeAlways,
				DisplayFragmentTimestamp: amtypes.HLSDisplayFragmentTimestampAlways,
				HLSFragmentSelector:      &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeProducerTimestamp}})
			r := browsertest.Play(t, browsertest.Options{URL: master, Player: browsertest.HLSJS, Watch: 13 * time.Second,
				Config: readmeHLSJS(t)})
			require.True(t, r.Live, "%s", r)
			requirePlayed(t, r, 10)
			// Non-fatal errors may come: a busy machine (-race, two cores) can let the playhead
			// fall further behind than liveMaxLatencyDurationCount allows; hls.js then jumps
			// ahead and aborts the loads in flight.
			if tc.audio {
				require.Positive(t, r.AudioDecodedBytes, "%s", r)
				require.Len(t, r.AudioTracks, 1, "%s", r)
			}
			// A live playlist lists 5 fragments: the later ones came from reloads.
			last := 0
			for _, f := range r.Fragments {
				if f.Type == "main" {
					last = max(last, f.SN)
				}
			}
			require.GreaterOrEqual(t, last, 10, "%s", r)
			requireProgramDates(t, r, producerTimes(t, srv, "cam", time.Now().Add(-time.Minute)), "main", 10)
			require.True(t, r.HasLatency, "%s", r)
			t.Logf("glass-to-glass latency, hls.js with the README's settings, 1-s fragments, %s producer: %v",
				tc.name, r.Latency.Round(10*time.Millisecond))
			require.Less(t, r.Latency, 6*time.Second)
		})
	}
}

// readmeHLSJS is the hls.js configuration the README gives for live viewing: the object
// literal of its new Hls({...}).
func readmeHLSJS(t *testing.T) map[string]any {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "new Hls({")
	require.True(t, ok, "README: no new Hls({")
	literal, _, ok := strings.Cut(rest, "})")
	require.True(t, ok)
	cfg := map[string]any{}
	for _, field := range strings.Split(literal, ",") {
		k, v, ok := strings.Cut(field, ":")
		require.True(t, ok, "README hls.js setting %q", field)
		var value any
		require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(v)), &value), "README hls.js setting %q", field)
		cfg[strings.TrimSpace(k)] = value
	}
	require.Contains(t, cfg, "liveSyncDurationCount")
	return cfg
}

// The AWS sample viewer's way: the page itself calls GetDataEndpoint and
// GetHLSStreamingSessionURL with the AWS SDK for JavaScript v3 (SigV4 with static credentials,
// from another origin: CORS preflights with the SDK's real headers), then plays the URL with
// hls.js. An error reaches the page's SDK as KVS's typed exception (CORS on error responses too).
func TestBrowserAWSSDKForJavaScript(t *testing.T) {
	browsertest.RequireSDK(t, browsertest.HLSJS)
	srv, _ := startPlayback(t)
	start, _ := withAudio(t, srv, "cam", 6)
	session := func(stream string) *browsertest.SDKSession {
		return &browsertest.SDKSession{Endpoint: srv.URL, Region: kvstest.Region, Protocol: "HLS",
			AccessKeyID: kvstest.AccessKeyID, SecretAccessKey: kvstest.SecretAccessKey,
			Input: map[string]any{"StreamName": stream, "PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": map[string]any{
				"FragmentSelectorType": "PRODUCER_TIMESTAMP",
				"TimestampRange": map[string]any{"StartTimestamp": start.Add(-time.Second).UnixMilli(),
					"EndTimestamp": start.Add(time.Minute).UnixMilli()}}}}
	}
	r := browsertest.Play(t, browsertest.Options{Player: browsertest.HLSJS, Watch: 4 * time.Second, SDK: session("cam")})
	require.True(t, strings.HasPrefix(r.SessionURL, srv.URL+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="), "%s\n%s", r.SessionURL, r)
	requirePlayed(t, r, 2)
	require.Positive(t, r.AudioDecodedBytes, "%s", r)

	r = browsertest.Play(t, browsertest.Options{Player: browsertest.HLSJS, Watch: 4 * time.Second, SDK: session("nope")})
	require.Len(t, r.Errors, 1, "%s", r)
	require.Equal(t, "sdk", r.Errors[0].Type)
	require.Equal(t, "ResourceNotFoundException", r.Errors[0].Details, "%s", r)
	require.Equal(t, 404, r.Errors[0].Code, "%s", r)
}
