//go:build cgo

// Package sourcee2e_test streams every kind of producer source (MP4 and
// raw Annex-B files, the test pattern, an RTSP camera) through the
// producer into kvsd in process, and reads the stream back.
package sourcee2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/producer"
)

// recorder passes a source through and keeps a copy of every frame the
// producer read; after limit frames (when > 0) it ends the source.
type recorder struct {
	producer.Source
	limit int

	mu     sync.Mutex
	track  producer.Track
	frames []producer.Frame
}

func (r *recorder) Track(ctx context.Context) (producer.Track, error) {
	t, err := r.Source.Track(ctx)
	r.mu.Lock()
	r.track = t
	r.mu.Unlock()
	return t, err
}

func (r *recorder) ReadFrame(ctx context.Context) (producer.Frame, error) {
	r.mu.Lock()
	n := len(r.frames)
	r.mu.Unlock()
	if r.limit > 0 && n >= r.limit {
		return producer.Frame{}, io.EOF
	}
	f, err := r.Source.ReadFrame(ctx)
	if err != nil {
		return f, err
	}
	c := f
	c.Data = bytes.Clone(f.Data)
	r.mu.Lock()
	r.frames = append(r.frames, c)
	r.mu.Unlock()
	return f, nil
}

// put streams src into a new stream of a kvsd started for the test, as
// `kvsd put` does (files as fast as kvsd takes them, from start).
func put(t *testing.T, src producer.Source, start time.Time) (*kvstest.Server, *recorder, producer.Stats) {
	t.Helper()
	srv := kvstest.Start(t)
	_, err := srv.KinesisVideo().CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{
		StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := producer.New(producer.Config{
		Endpoint: srv.URL, Region: kvstest.Region, StreamName: "cam",
		Credentials: credentials.NewStaticCredentialsProvider(kvstest.AccessKeyID, kvstest.SecretAccessKey, ""),
		RetryMin:    20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Fast: true, StartTime: start,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := src.(*recorder)
	if !ok {
		rec = &recorder{Source: src}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := p.Run(ctx, rec)
	if err != nil {
		t.Fatalf("Run: %v (%+v)", err, st)
	}
	return srv, rec, st
}

// stored reads the whole stream back, fragment by fragment: ListFragments,
// then GetMediaForFragmentList for each. It checks that every fragment
// starts with a keyframe and carries the source's track, and returns the
// frames in time order (resends across connections counted once).
func stored(t *testing.T, srv *kvstest.Server, track producer.Track) []mkv.Frame {
	t.Helper()
	var page struct {
		Fragments []struct {
			FragmentNumber    string
			ProducerTimestamp float64
		}
	}
	status, _, body := srv.Call(t, "listFragments", map[string]any{"StreamName": "cam", "MaxResults": 1000, "FragmentSelector": map[string]any{
		"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": map[string]any{"StartTimestamp": 0, "EndTimestamp": time.Now().Unix() + 60}}})
	if status != 200 {
		t.Fatalf("ListFragments: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Fragments) == 0 {
		t.Fatal("no fragments in the stream")
	}
	byTime := map[int64]mkv.Frame{}
	for _, f := range page.Fragments {
		status, _, media := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": []string{f.FragmentNumber}})
		if status != 200 {
			t.Fatalf("GetMediaForFragmentList: %d %s", status, media)
		}
		hdr, frames, err := mkv.ReadFrames(media, mkv.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		tr := hdr.Tracks[0]
		if tr.CodecID != track.CodecID || !bytes.Equal(tr.CodecPrivate, track.CodecPrivate) || int(tr.Width) != track.Width || int(tr.Height) != track.Height {
			t.Fatalf("fragment %s: track %s %d×%d, codec private %x; want %s %d×%d, %x", f.FragmentNumber,
				tr.CodecID, tr.Width, tr.Height, tr.CodecPrivate, track.CodecID, track.Width, track.Height, track.CodecPrivate)
		}
		if len(frames) == 0 || !frames[0].Keyframe {
			t.Fatalf("fragment %s does not start with a keyframe", f.FragmentNumber)
		}
		if p := int64(math.Round(f.ProducerTimestamp * 1000)); p != frames[0].Timecode {
			t.Errorf("fragment %s: producer timestamp %d, first frame at %d", f.FragmentNumber, p, frames[0].Timecode)
		}
		for _, fr := range frames {
			if prev, ok := byTime[fr.Timecode]; ok && !bytes.Equal(prev.Data, fr.Data) {
				t.Fatalf("two different frames at %d ms", fr.Timecode)
			}
			byTime[fr.Timecode] = fr
		}
	}
	out := make([]mkv.Frame, 0, len(byTime))
	for _, f := range byTime {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b mkv.Frame) int { return int(a.Timecode - b.Timecode) })
	return out
}

// requireEveryFrame checks that the stream holds exactly the source's
// frames, in order, byte for byte, with their key flags; with start set
// (files), each at start + its PTS.
func requireEveryFrame(t *testing.T, src []producer.Frame, got []mkv.Frame, start time.Time) {
	t.Helper()
	if len(got) != len(src) {
		t.Fatalf("the stream holds %d frames, the source gave %d", len(got), len(src))
	}
	for i := range src {
		if !bytes.Equal(src[i].Data, got[i].Data) || src[i].Keyframe != got[i].Keyframe {
			t.Fatalf("frame %d differs (key %v, %d bytes; stored key %v, %d bytes)", i, src[i].Keyframe, len(src[i].Data), got[i].Keyframe, len(got[i].Data))
		}
		if !start.IsZero() {
			if want := start.Add(src[i].PTS).UnixMilli(); got[i].Timecode != want {
				t.Fatalf("frame %d at %d ms, want %d", i, got[i].Timecode, want)
			}
		}
	}
}

// ffmpeg writes a 25 fps test clip of frames frames (a keyframe every
// second) in the format the name's extension says, and returns its path.
func ffmpeg(t *testing.T, codec, name string, frames int) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make setup installs it)")
	}
	path := filepath.Join(t.TempDir(), name)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-frames:v", fmt.Sprint(frames)}
	if codec == producer.CodecH264 {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0", "-bf", "0")
	} else {
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error")
	}
	switch {
	case strings.HasSuffix(name, ".h264"):
		args = append(args, "-f", "h264")
	case strings.HasSuffix(name, ".hevc"):
		args = append(args, "-f", "hevc")
	}
	if out, err := exec.Command("ffmpeg", append(args, path)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}
