// Package mkvload is the test video of the ingest benchmarks: made once with ffmpeg (and cached),
// split into Clusters with kvsd's own reader, and replayed by Paced as a live camera would send
// it, looping with shifted timecodes.
package mkvload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kvsd/kvsd/bench/internal/video"
	"github.com/kvsd/kvsd/internal/mkv"
)

// Spec describes the test video: ffmpeg input and encoder arguments, everything but the
// timestamp offset and the muxer, which Make adds.
type Spec struct {
	Name string   // for the cache file and the report
	Args []string // ffmpeg arguments between -hide_banner… and -output_ts_offset
}

// FullHD is 1080p 2 Mbit/s H.264 with a key frame every 2 s (30 fps, -g 60), one Cluster per
// key frame: 2-second fragments, as KVS producers cut them. Writing to a pipe, ffmpeg's
// Matroska muxer would otherwise also cut a Cluster every 32 KiB or 1 s (its defaults for
// unseekable output), which makes fragments of about 130 ms; the two cluster options restore
// its defaults for files, so only key frames start clusters.
var FullHD = Spec{Name: "1080p30-2Mbps-g60-20s", Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "20",
	"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
	"-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
	"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000",
}}

// Tiny is small enough for ffmpeg to make in well under a second, with 2-second clusters like
// FullHD's: the benchmarks' smoke tests stream it.
var Tiny = Spec{Name: "test-240p-g60-8s", Args: []string{
	"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "8",
	"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "500k",
	"-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
	"-cluster_size_limit", "5000000", "-cluster_time_limit", "5000",
}}

// Make returns the spec's MKV, from cacheDir when it was made before. Cluster timecodes
// are absolute epoch milliseconds starting an hour before the file was made.
func Make(ctx context.Context, spec Spec, cacheDir string) (data []byte, cached bool, err error) {
	path := video.Path(cacheDir, spec.Name, spec.Args)
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return b, true, nil
	}
	start := time.Now().Add(-time.Hour)
	args := append(append([]string{}, spec.Args...), "-output_ts_offset", fmt.Sprintf("%d.%03d", start.UnixMilli()/1000, start.UnixMilli()%1000),
		"-f", "matroska", "-live", "1", "-")
	data, err = video.Encode(ctx, path, args)
	return data, false, err
}

// Load is Make, then Parse.
func Load(ctx context.Context, spec Spec, cacheDir string) (f *File, cached bool, err error) {
	raw, cached, err := Make(ctx, spec, cacheDir)
	if err != nil {
		return nil, false, err
	}
	f, err = Parse(raw)
	return f, cached, err
}

// File is an MKV stream split for replay: the bytes before the first Cluster, and per
// Cluster where its Timecode, CRC-32 and blocks lie, so that it can be sent in real time and
// looped with shifted timecodes.
type File struct {
	Raw       []byte
	HeaderEnd int    // Raw[:HeaderEnd] precedes the first Cluster
	Scale     uint64 // TimecodeScale, ns per tick
	Clusters  []ClusterInfo
	LoopTicks uint64 // the file's duration in ticks: the timecode shift of each loop
}

type ClusterInfo struct {
	Off, End int    // Raw[Off:End]: the Cluster and whatever follows it up to the next one
	TC       uint64 // its Timecode
	tcAt     int    // offset of the Timecode value in Raw[Off:End]
	tcLen    int
	crcAt    int // offset of the CRC-32 value in Raw[Off:End]; -1 if the Cluster has none
	crcEnd   int // the CRC covers Raw[Off+crcAt+4 : Off+crcEnd]
	Blocks   []BlockInfo
}

type BlockInfo struct {
	Off   int   // offset of the SimpleBlock/BlockGroup in Raw
	Ticks int64 // presentation time: cluster Timecode + relative timecode
}

// MeanFragment is the mean number of body bytes per fragment, header included: the baseline
// syncs at this cadence.
func (m *File) MeanFragment() int {
	return (len(m.Raw) + len(m.Clusters) - 1) / len(m.Clusters)
}

// Duration is the media duration of one pass.
func (m *File) Duration() time.Duration { return time.Duration(m.LoopTicks * m.Scale) }

// FragmentDuration is the mean cluster duration.
func (m *File) FragmentDuration() time.Duration {
	return m.Duration() / time.Duration(len(m.Clusters))
}

// Summary describes the file for a report's header: name is its Spec's, cached what Make said.
func (m *File) Summary(name string, cached bool) string {
	src := "made with ffmpeg"
	if cached {
		src = "from the cache, made earlier with ffmpeg"
	}
	return fmt.Sprintf("%s (%s): %.2f MB, %d fragments of %s, %.2f Mbit/s, mean fragment %d bytes",
		name, src, float64(len(m.Raw))/1e6, len(m.Clusters), m.FragmentDuration().Round(time.Millisecond),
		float64(len(m.Raw)*8)/m.Duration().Seconds()/1e6, m.MeanFragment())
}

// Parse splits raw with kvsd's own streaming reader.
func Parse(raw []byte) (*File, error) {
	m := &File{Raw: raw, HeaderEnd: -1}
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
			if m.Scale != 0 {
				return nil, errors.New("parse media: more than one EBML document")
			}
			m.Scale = ev.Header.TimecodeScale
		case mkv.KindClusterStart:
			if m.HeaderEnd < 0 {
				m.HeaderEnd = int(ev.Offset)
			}
			if n := len(m.Clusters); n > 0 {
				m.Clusters[n-1].End = int(ev.Offset)
			}
			m.Clusters = append(m.Clusters, ClusterInfo{Off: int(ev.Offset), TC: ev.Timecode})
		case mkv.KindBlock:
			c := &m.Clusters[len(m.Clusters)-1]
			c.Blocks = append(c.Blocks, BlockInfo{Off: int(ev.Offset), Ticks: int64(ev.Timecode) + int64(ev.Block.RelTimecode)})
		case mkv.KindClusterEnd:
			c := &m.Clusters[len(m.Clusters)-1]
			end := int(ev.Offset) + len(ev.Raw)
			if int(ev.Offset) != c.Off || end > len(raw) || !bytes.Equal(raw[c.Off:end], ev.Raw) {
				return nil, fmt.Errorf("parse media: cluster at %d is not verbatim in the input", c.Off)
			}
			c.End = end
		}
	}
	if len(m.Clusters) < 2 {
		return nil, fmt.Errorf("parse media: %d clusters; need at least 2", len(m.Clusters))
	}
	for i := range m.Clusters {
		if err := m.locate(&m.Clusters[i]); err != nil {
			return nil, err
		}
	}
	first, last := m.Clusters[0].TC, m.Clusters[len(m.Clusters)-1].TC
	m.LoopTicks = (last - first) + (last-first)/uint64(len(m.Clusters)-1)
	return m, nil
}

// locate finds the Timecode and CRC-32 children of a Cluster.
func (m *File) locate(c *ClusterInfo) error {
	b := m.Raw[c.Off:c.End]
	c.crcAt = -1
	p := 4 // Cluster ID
	sl, size := vint(b[p:])
	if sl == 0 {
		return fmt.Errorf("cluster at %d: bad size", c.Off)
	}
	p += sl
	clusterEnd := len(b)
	if size >= 0 {
		clusterEnd = p + int(size)
	}
	for p < clusterEnd {
		il := idLen(b[p])
		if il == 0 || p+il >= len(b) {
			return fmt.Errorf("cluster at %d: bad child at %d", c.Off, p)
		}
		id := b[p : p+il]
		sl, size := vint(b[p+il:])
		if sl == 0 || size < 0 {
			return fmt.Errorf("cluster at %d: bad child size at %d", c.Off, p)
		}
		val := p + il + sl
		switch {
		case bytes.Equal(id, []byte{0xBF}) && size == 4:
			c.crcAt, c.crcEnd = val, clusterEnd
		case bytes.Equal(id, []byte{0xE7}):
			if size < 1 || size > 8 {
				return fmt.Errorf("cluster at %d: Timecode of %d bytes", c.Off, size)
			}
			c.tcAt, c.tcLen = val, int(size)
			if c.crcAt >= 0 && crc32.ChecksumIEEE(b[c.crcAt+4:c.crcEnd]) != binary.LittleEndian.Uint32(b[c.crcAt:]) {
				c.crcAt = -1 // not the CRC we understand: leave it alone
			}
			return nil
		}
		p = val + int(size)
	}
	return fmt.Errorf("cluster at %d: no Timecode", c.Off)
}

// cluster returns the bytes of cluster i with its Timecode shifted by shift ticks and its
// CRC-32 recomputed, in a copy.
func (m *File) cluster(i int, shift uint64, dst []byte) ([]byte, uint64, error) {
	c := &m.Clusters[i]
	dst = append(dst[:0], m.Raw[c.Off:c.End]...)
	tc := c.TC + shift
	if c.tcLen < 8 && tc>>(8*c.tcLen) != 0 {
		return nil, 0, fmt.Errorf("shifted timecode %d does not fit the %d-byte Timecode", tc, c.tcLen)
	}
	for i := range c.tcLen {
		dst[c.tcAt+i] = byte(tc >> (8 * (c.tcLen - 1 - i)))
	}
	if c.crcAt >= 0 {
		binary.LittleEndian.PutUint32(dst[c.crcAt:], crc32.ChecksumIEEE(dst[c.crcAt+4:c.crcEnd]))
	}
	return dst, tc, nil
}

// idLen is the length of an EBML ID from its first byte, 0 if invalid.
func idLen(b0 byte) int {
	switch {
	case b0&0x80 != 0:
		return 1
	case b0&0x40 != 0:
		return 2
	case b0&0x20 != 0:
		return 3
	case b0&0x10 != 0:
		return 4
	}
	return 0
}

// vint decodes an EBML size: its length (0 if invalid) and value, -1 for "unknown".
func vint(b []byte) (int, int64) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	n := 1
	for b[0]&(0x80>>(n-1)) == 0 {
		n++
	}
	if len(b) < n {
		return 0, 0
	}
	v := uint64(b[0] & (0xFF >> n))
	all := v == uint64(0xFF>>n)
	for _, x := range b[1:n] {
		v = v<<8 | uint64(x)
		all = all && x == 0xFF
	}
	if all {
		return n, -1
	}
	return n, int64(v)
}

// Paced is a camera: an io.Reader that hands out the MKV as a live encoder would, each
// block at its presentation time, looping the file with shifted timecodes. It reports when a
// fragment's end reached the connection: that is when the transport comes back for more
// after writing the next Cluster's first bytes (net/http writes and flushes each chunk before
// it reads again).
type Paced struct {
	ctx      context.Context
	f        *File
	start    time.Time // wall time of the file's first block
	clusters int       // clusters to send in all
	onDone   func(tc uint64, at time.Time)

	headerSent bool
	k, bi      int // next cluster (counting loops) and its next block; bi -1: its head
	buf        []byte
	cur        []byte
	completes  uint64 // timecode of the fragment the piece in cur completes, when hasDone
	hasDone    bool
	prevTC     uint64
	timer      *time.Timer

	mu  sync.Mutex      // lag is read by the camera once Put returns
	lag []time.Duration // how late each late piece was handed out
}

// Lateness returns how late each late piece was handed out.
func (b *Paced) Lateness() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.lag)
}

// NewPaced sends clusters Clusters of f (looping), the first block at start; onDone gets each
// fragment's timecode when the Cluster after it starts going out.
func NewPaced(ctx context.Context, f *File, start time.Time, clusters int, onDone func(uint64, time.Time)) *Paced {
	return &Paced{ctx: ctx, f: f, start: start, clusters: clusters, onDone: onDone, bi: -1}
}

func (b *Paced) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		now := time.Now()
		if b.hasDone {
			b.onDone(b.completes, now)
			b.hasDone = false
		}
		piece, due, err := b.next()
		if err != nil {
			return 0, err
		}
		if d := time.Until(due); d > 0 {
			if b.timer == nil {
				b.timer = time.NewTimer(d)
			} else {
				b.timer.Reset(d)
			}
			select {
			case <-b.timer.C:
			case <-b.ctx.Done():
				return 0, b.ctx.Err()
			}
		} else {
			b.mu.Lock()
			b.lag = append(b.lag, -d)
			b.mu.Unlock()
		}
		b.cur = piece
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// next returns the next piece and when it is due.
func (b *Paced) next() ([]byte, time.Time, error) {
	f := b.f
	if !b.headerSent {
		b.headerSent = true
		return f.Raw[:f.HeaderEnd], b.start, nil
	}
	if b.k >= b.clusters {
		return nil, time.Time{}, io.EOF
	}
	n := len(f.Clusters)
	loop, i := b.k/n, b.k%n
	c := &f.Clusters[i]
	shift := uint64(loop) * f.LoopTicks
	at := func(ticks int64) time.Time {
		return b.start.Add(time.Duration((ticks + int64(shift) - f.Clusters[0].Blocks[0].Ticks) * int64(f.Scale)))
	}
	if b.bi < 0 {
		var tc uint64
		var err error
		if b.buf, tc, err = f.cluster(i, shift, b.buf); err != nil {
			return nil, time.Time{}, err
		}
		if b.k > 0 {
			b.completes, b.hasDone = b.prevTC, true
		}
		b.prevTC = tc
		if len(c.Blocks) == 0 {
			b.k++
			return b.buf, at(int64(c.TC)), nil
		}
		b.bi = 0
		return b.buf[:c.Blocks[0].Off-c.Off], at(c.Blocks[0].Ticks), nil
	}
	blk := c.Blocks[b.bi]
	end := len(b.buf)
	if b.bi+1 < len(c.Blocks) {
		end = c.Blocks[b.bi+1].Off - c.Off
	}
	piece := b.buf[blk.Off-c.Off : end]
	if b.bi++; b.bi == len(c.Blocks) {
		b.k, b.bi = b.k+1, -1
	}
	return piece, at(blk.Ticks), nil
}
