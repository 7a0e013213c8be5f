package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kvsd/kvsd/bench/internal/video"
	"github.com/kvsd/kvsd/internal/mkv"
)

// mediaSpec describes the test video: ffmpeg input and encoder arguments for one pass, which
// makeMedia then repeats (-stream_loop, no re-encoding) into the stream the benchmark puts.
type mediaSpec struct {
	Name      string   // for the cache files and the report
	Fragments int      // in one pass: 2-second fragments (30 fps, -g 60)
	Args      []string // ffmpeg arguments between -hide_banner… and the muxer
}

// fullHD is bench/ingest's video: 1080p 2 Mbit/s H.264 with a key frame every 2 s (30 fps, -g
// 60), 20 s, one Cluster per key frame, so 10 fragments of 2 s. Writing to a pipe, ffmpeg's
// Matroska muxer would also cut a Cluster every 32 KiB or 1 s; the two cluster options make
// key frames the only Cluster starts, as in what the KVS producer SDKs send. Its timecodes
// start at 0: the benchmark sends them as RELATIVE, so a cached file never gets old.
var fullHD = mediaSpec{Name: "1080p30-2Mbps-g60-20s", Fragments: 10, Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "20",
	"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
	"-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
}}

// clusterArgs keep one Cluster per key frame (see fullHD).
var clusterArgs = []string{"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000"}

// makeMedia returns spec's video repeated loops times as one Matroska stream with increasing
// timecodes, from cacheDir when it was made before.
func makeMedia(ctx context.Context, spec mediaSpec, loops int, cacheDir string) (data []byte, cached bool, err error) {
	base := video.Path(cacheDir, spec.Name+"-rel", append(spec.Args, clusterArgs...))
	looped := strings.TrimSuffix(base, ".mkv") + fmt.Sprintf("-x%d.mkv", loops)
	if b, err := os.ReadFile(looped); err == nil && len(b) > 0 {
		return b, true, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(base); err != nil {
		args := append(append(append([]string{}, spec.Args...), clusterArgs...), "-f", "matroska", "-live", "1")
		if err := ffmpegTo(ctx, base, args); err != nil {
			return nil, false, err
		}
	}
	args := append(append([]string{"-stream_loop", fmt.Sprint(loops - 1), "-i", base, "-c", "copy"}, clusterArgs...),
		"-f", "matroska", "-live", "1")
	if err := ffmpegTo(ctx, looped, args); err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(looped)
	return b, false, err
}

// ffmpegTo runs ffmpeg with args and the output path, writing through a temporary file.
func ffmpegTo(ctx context.Context, path string, args []string) error {
	tmp := path + ".tmp"
	all := append(append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...), tmp)
	cmd := exec.CommandContext(ctx, "ffmpeg", all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(all, " "), err, stderr.String())
	}
	return os.Rename(tmp, path)
}

// mkvFile is the test stream split for real-time sending: the bytes before the first Cluster,
// then one piece per Cluster head and per block, each with its presentation time.
type mkvFile struct {
	Raw       []byte
	HeaderEnd int
	Clusters  int
	FragDur   time.Duration // mean Cluster duration
	Pieces    []piece       // after the header, in order; together they are Raw[HeaderEnd:]
}

type piece struct {
	Off, End int
	At       time.Duration // presentation time from the first block
	Cluster  int           // which Cluster it belongs to
}

func (m *mkvFile) duration() time.Duration { return m.FragDur * time.Duration(m.Clusters) }

// parseMKV splits raw with kvsd's own streaming reader.
func parseMKV(raw []byte) (*mkvFile, error) {
	m := &mkvFile{Raw: raw, HeaderEnd: -1}
	var scale uint64
	var starts []int
	var first, last int64 = -1, 0
	r := mkv.NewReader(bytes.NewReader(raw), mkv.Limits{})
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse media: %w", err)
		}
		switch ev.Kind {
		case mkv.KindHeader:
			if scale != 0 {
				return nil, errors.New("parse media: more than one EBML document")
			}
			scale = ev.Header.TimecodeScale
		case mkv.KindClusterStart:
			if m.HeaderEnd < 0 {
				m.HeaderEnd = int(ev.Offset)
			}
			starts = append(starts, len(m.Pieces))
			m.Pieces = append(m.Pieces, piece{Off: int(ev.Offset), At: -1, Cluster: m.Clusters})
			m.Clusters++
		case mkv.KindBlock:
			ticks := int64(ev.Timecode) + int64(ev.Block.RelTimecode)
			if first < 0 {
				first = ticks
			}
			last = max(last, ticks)
			m.Pieces = append(m.Pieces, piece{Off: int(ev.Offset), At: time.Duration((ticks - first) * int64(scale)), Cluster: m.Clusters - 1})
		}
	}
	if m.Clusters < 2 || first < 0 {
		return nil, fmt.Errorf("parse media: %d clusters; need at least 2", m.Clusters)
	}
	for i := range m.Pieces {
		p := &m.Pieces[i]
		p.End = len(raw)
		if i+1 < len(m.Pieces) {
			p.End = m.Pieces[i+1].Off
		}
	}
	// A Cluster head is due with its first block.
	for _, s := range starts {
		if s+1 < len(m.Pieces) {
			m.Pieces[s].At = m.Pieces[s+1].At
		}
	}
	blocks := len(m.Pieces) - m.Clusters
	frame := time.Duration((last-first)*int64(scale)) / time.Duration(max(1, blocks-1))
	m.FragDur = frame * time.Duration(blocks) / time.Duration(m.Clusters)
	return m, nil
}

// pacedBody is a camera: an io.Reader that hands out the stream as a live encoder would, each
// block at its presentation time from start, up to the end of the first `clusters` Clusters
// (the end of the body completes the last fragment).
type pacedBody struct {
	ctx      context.Context
	f        *mkvFile
	start    time.Time
	clusters int

	next  int // index in f.Pieces; -1: the header
	cur   []byte
	timer *time.Timer
}

func newPacedBody(ctx context.Context, f *mkvFile, start time.Time, clusters int) *pacedBody {
	return &pacedBody{ctx: ctx, f: f, start: start, clusters: clusters, next: -1}
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		if b.next < 0 {
			b.cur, b.next = b.f.Raw[:b.f.HeaderEnd], 0
		} else {
			if b.next >= len(b.f.Pieces) || b.f.Pieces[b.next].Cluster >= b.clusters {
				return 0, io.EOF
			}
			pc := b.f.Pieces[b.next]
			b.next++
			if err := b.wait(b.start.Add(pc.At)); err != nil {
				return 0, err
			}
			b.cur = b.f.Raw[pc.Off:pc.End]
		}
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

func (b *pacedBody) wait(due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	if b.timer == nil {
		b.timer = time.NewTimer(d)
	} else {
		b.timer.Reset(d)
	}
	select {
	case <-b.timer.C:
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}
