package producer_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/producer"
)

// createStream makes a stream on srv.
func createStream(t testing.TB, srv *kvstest.Server, name string, retentionHours int32) {
	t.Helper()
	_, err := srv.KinesisVideo().CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{
		StreamName: aws.String(name), DataRetentionInHours: aws.Int32(retentionHours)})
	require.NoError(t, err)
}

// baseConfig is a producer configuration for srv with short retries.
func baseConfig(srv *kvstest.Server, stream string) producer.Config {
	return producer.Config{
		Endpoint: srv.URL, Region: kvstest.Region, StreamName: stream,
		Credentials: credentials.NewStaticCredentialsProvider(kvstest.AccessKeyID, kvstest.SecretAccessKey, ""),
		RetryMin:    20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	}
}

// clip makes an H.264 Matroska clip with ffmpeg: 25 fps, a keyframe every
// gop frames, frame times from 0.
func clip(t testing.TB, seconds float64, gop int) []byte {
	t.Helper()
	return kvstest.FFmpegMKV(t, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", strconv.FormatFloat(seconds, 'f', -1, 64),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0",
		"-bf", "0", "-f", "matroska", "-")
}

// sourceFrames lists a clip's frames (times in ms from its start).
func sourceFrames(t testing.TB, data []byte) []mkv.Frame {
	t.Helper()
	_, frames, err := mkv.ReadFrames(data, mkv.Limits{})
	require.NoError(t, err)
	return frames
}

// storedFragment is a fragment as kvsd answers it.
type storedFragment struct {
	kvstest.FragmentInfo // Server: when it started arriving at kvsd
	Media                []byte
	Frames               []mkv.Frame
}

// storedFragments reads every fragment of the stream back, in fragment
// number order, each with GetMediaForFragmentList.
func storedFragments(t testing.TB, srv *kvstest.Server, name string) []storedFragment {
	t.Helper()
	var out []storedFragment
	for _, f := range srv.ListFragments(t, name) {
		status, _, media := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": name, "Fragments": []string{f.Number}})
		require.Equal(t, 200, status, string(media))
		_, frames, err := mkv.ReadFrames(media, mkv.Limits{})
		require.NoError(t, err)
		out = append(out, storedFragment{FragmentInfo: f, Media: media, Frames: frames})
	}
	return out
}

// requireAllFrames checks that every source frame is in the stream, with
// its data, key flag and time (start + its own time), and that duplicates
// (resends across connections) are exact copies.
func requireAllFrames(t testing.TB, src []mkv.Frame, stored []storedFragment, start time.Time) {
	t.Helper()
	got := map[int64]mkv.Frame{}
	for _, f := range stored {
		for _, fr := range f.Frames {
			if prev, ok := got[fr.Timecode]; ok {
				require.Equal(t, prev.Data, fr.Data, "a resent frame at %d differs", fr.Timecode)
			}
			got[fr.Timecode] = fr
		}
	}
	for i, s := range src {
		ts := start.UnixMilli() + s.Timecode
		g, ok := got[ts]
		require.True(t, ok, "source frame %d (at %d ms) is missing from the stream", i, s.Timecode)
		require.True(t, bytes.Equal(s.Data, g.Data), "frame %d data", i)
		require.Equal(t, s.Keyframe, g.Keyframe, "frame %d key flag", i)
	}
	require.Equal(t, len(src), len(got), "no frames beyond the source's")
}

// events collects a producer's events.
type events struct {
	mu  sync.Mutex
	evs []producer.Event
}

func (e *events) add(ev producer.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) count(k producer.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

func (e *events) first(k producer.EventKind) producer.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		if ev.Kind == k {
			return ev
		}
	}
	return producer.Event{}
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.evs {
		fmt.Fprintf(&b, "%s %v %v; ", ev.Kind, ev.Timecode.UnixMilli(), ev.Err)
	}
	return b.String()
}
