package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kvsd/kvsd/bench/internal/video"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/mkv"
)

// videoSpec is the test video: ffmpeg input and encoder arguments.
type videoSpec struct {
	Name     string
	FPS      int           // the frame rate in Args
	GOP      int           // frames from keyframe to keyframe in Args: one fragment each
	Interval time.Duration // the sampling interval: one image per this much video
	Args     []string
}

// fullHD is the video, encoded as image-pipeline.md measured it: 60 s of 1080p30
// testsrc2, x264 veryfast high profile, 2 Mbit/s, a keyframe every 30 frames and only there,
// no B-frames. Written to a pipe, as a live producer would, so the Segment has unknown size
// and there are no Cues; the two cluster options restore ffmpeg's file defaults, so only
// keyframes start Clusters (one Cluster = one 1-s fragment, as KVS producers cut them).
var fullHD = videoSpec{Name: "1080p30-2Mbps-g30-60s", FPS: 30, GOP: 30, Interval: time.Second, Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "60",
	"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0",
	"-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
	"-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
	"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000",
}}

// The seed user's workload: 1080p30 H.264 with a keyframe every 25 frames, cut by the producer
// (kvssink) into one fragment per keyframe (833 ms), sampled every 200 ms at 320×240, so every
// frame must be decoded. Two encodes of 60 s of testsrc2 at 1 Mbit/s: the seed's own settings
// (x264 ultrafast, zerolatency: CAVLC, no B-frames), and a CABAC encode with B-frames (x264
// faster, high profile, 3 B-frames), where a sample needs only the reference frames before
// it, not the B-frames no sample shows.
var (
	seedX264 = videoSpec{Name: "1080p30-1Mbps-g25-ultrafast-zerolatency-60s", FPS: 30, GOP: 25, Interval: 200 * time.Millisecond,
		Args: seedArgs("-preset", "ultrafast", "-tune", "zerolatency")}
	seedCABAC = videoSpec{Name: "1080p30-1Mbps-g25-faster-cabac-bf3-60s", FPS: 30, GOP: 25, Interval: 200 * time.Millisecond,
		Args: seedArgs("-preset", "faster", "-profile:v", "high", "-coder", "cabac", "-bf", "3")}
)

func seedArgs(encoder ...string) []string {
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "60", "-c:v", "libx264"}
	args = append(args, encoder...)
	return append(args, "-b:v", "1M", "-maxrate", "1M", "-bufsize", "2M",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000")
}

// imageSpec is what every contender makes: 320×240 JPEG at quality 80 (ffmpeg's mjpeg
// encoder takes -q:v 4 instead, as in the issue).
var imageSpec = imaging.Spec{Format: imaging.JPEG, Quality: 80, Width: 320, Height: 240}

// workload is the input every contender works on.
type workload struct {
	File     string // the whole MKV file
	FileSize int
	// Fragments are the file's fragments as kvsd stores them: the document header (EBML
	// header, Segment start, Info, Tracks) followed by one Cluster, in memory and, for
	// ffmpeg, as FragmentFiles (fragNNN.mkv).
	Fragments        [][]byte
	FragmentFiles    []string
	FragmentDuration time.Duration
	FrameStep        time.Duration // one frame's duration
	Track            mkv.Track
	Spec             imaging.Spec
	Interval         time.Duration // sampling interval: one image per this much video
	Duration         time.Duration // of the whole video
}

// Images is how many images every contender must make: one per multiple of the interval in
// the video (which starts at 0).
func (w *workload) Images() int { return int((w.Duration + w.Interval - 1) / w.Interval) }

// prepare makes (or loads from cacheDir) the video and splits it into fragment files in work.
func prepare(ctx context.Context, spec videoSpec, cacheDir, work string) (*workload, error) {
	file, err := makeVideo(ctx, spec, cacheDir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	wl := &workload{File: file, FileSize: len(data), Spec: imageSpec, Interval: spec.Interval}
	if err := wl.split(data, filepath.Join(work, "fragments"), spec.FPS, spec.GOP); err != nil {
		return nil, err
	}
	return wl, nil
}

// makeVideo returns the path of the spec's MKV in cacheDir, encoding it first if needed.
func makeVideo(ctx context.Context, spec videoSpec, cacheDir string) (string, error) {
	path := video.Path(cacheDir, spec.Name, spec.Args)
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path, nil
	}
	_, err := video.Encode(ctx, path, append(append([]string{}, spec.Args...), "-f", "matroska", "-"))
	return path, err
}

// split cuts the file into fragments, one per Cluster, each with the document header in
// front, and writes them to dir.
func (w *workload) split(data []byte, dir string, fps, gop int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := mkv.NewReader(bytes.NewReader(data), mkv.Limits{})
	var hdr *mkv.Header
	var first, last int64 = -1, -1
	var scale time.Duration
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", w.File, err)
		}
		switch ev.Kind {
		case mkv.KindHeader:
			if hdr != nil {
				return fmt.Errorf("%s: more than one document", w.File)
			}
			hdr = ev.Header
			if len(hdr.Tracks) != 1 {
				return fmt.Errorf("%s: %d tracks, want 1", w.File, len(hdr.Tracks))
			}
			w.Track = hdr.Tracks[0]
			scale = time.Duration(hdr.TimecodeScale)
		case mkv.KindBlock:
			tc := int64(ev.Timecode) + int64(ev.Block.RelTimecode)
			if first < 0 {
				first = tc
			}
			last = max(last, tc) // B-frames come after the later frames they reference
		case mkv.KindClusterEnd:
			frag := append(append([]byte{}, hdr.Raw...), ev.Raw...)
			path := filepath.Join(dir, fmt.Sprintf("frag%03d.mkv", len(w.Fragments)))
			if err := os.WriteFile(path, frag, 0o644); err != nil {
				return err
			}
			w.Fragments = append(w.Fragments, frag)
			w.FragmentFiles = append(w.FragmentFiles, path)
		}
	}
	if len(w.Fragments) == 0 {
		return fmt.Errorf("%s: no clusters", w.File)
	}
	frameStep := time.Second / time.Duration(fps)
	w.FrameStep = frameStep
	// Whole frames: timecodes are rounded to the ms, frame times are not.
	frames := (time.Duration(last-first)*scale + frameStep/2) / frameStep
	w.Duration = (frames + 1) * frameStep
	w.FragmentDuration = w.Duration / time.Duration(len(w.Fragments))
	if want := time.Duration(gop) * frameStep; w.FragmentDuration.Round(10*time.Millisecond) != want.Round(10*time.Millisecond) {
		return fmt.Errorf("%s: %d fragments of %s; want fragments of %s (one per keyframe, every %d frames)",
			w.File, len(w.Fragments), w.FragmentDuration, want, gop)
	}
	return nil
}
