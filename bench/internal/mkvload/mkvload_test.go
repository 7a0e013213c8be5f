package mkvload

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"
)

// tinyVideo is small enough for ffmpeg to make in well under a second; 2-second clusters like
// the real one.
var tinyVideo = Spec{Name: "test-240p-g60-8s", Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "8",
	"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "500k",
	"-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
	"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000",
}}

func TestParseMKVAndPacing(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("needs ffmpeg (make setup installs it)")
	}
	raw, _, err := Make(context.Background(), tinyVideo, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Clusters) != 4 || m.FragmentDuration() != 2*time.Second {
		t.Fatalf("%d clusters of %s; want 4 of 2s", len(m.Clusters), m.FragmentDuration())
	}
	// Two loops, sent without waiting (start in the past), must parse as one stream whose
	// timecodes keep increasing, with each fragment reported done exactly once.
	var done []uint64
	body := NewPaced(context.Background(), m, time.Now().Add(-time.Hour), 2*len(m.Clusters), func(tc uint64, _ time.Time) {
		done = append(done, tc)
	})
	var sent bytes.Buffer
	if _, err := sent.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	again, err := Parse(sent.Bytes())
	if err != nil {
		t.Fatalf("paced body: %v", err)
	}
	if len(again.Clusters) != 8 || len(done) != 7 {
		t.Fatalf("%d clusters, %d done; want 8 and 7", len(again.Clusters), len(done))
	}
	for i, c := range again.Clusters {
		want := m.Clusters[i%4].TC + uint64(i/4)*m.LoopTicks
		if c.TC != want || c.crcAt < 0 {
			t.Errorf("cluster %d: timecode %d (want %d), CRC valid %v", i, c.TC, want, c.crcAt >= 0)
		}
		if i < 7 && done[i] != c.TC {
			t.Errorf("done[%d] = %d, want %d", i, done[i], c.TC)
		}
	}
}
