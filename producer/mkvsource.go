package producer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/mkv"
)

// NewMKVSource reads a Matroska or WebM stream (a file, or a pipe from
// GStreamer's matroskamux or ffmpeg -f matroska) and yields the frames of
// its first video track, which must be H.264 or H.265. Several EBML
// documents may follow each other (a restarted pipeline): their timestamps
// continue after the previous document's, and each must carry the same
// codec. live says whether the frames arrive in real time (a pipe from a
// camera) or are a file to be paced by the producer.
//
// A goroutine reads r until it ends, fails or Close is called; Close also
// closes r if it is an io.Closer.
func NewMKVSource(r io.Reader, live bool) Source {
	s := &mkvSource{r: r, live: live, frames: make(chan mkvResult, 64), stop: make(chan struct{}), trackReady: make(chan struct{})}
	s.wg.Go(s.read)
	return s
}

type mkvResult struct {
	f   Frame
	err error
}

type mkvSource struct {
	r    io.Reader
	live bool

	frames     chan mkvResult
	stop       chan struct{}
	stopOnce   sync.Once
	wg         sync.WaitGroup
	trackReady chan struct{}
	track      Track
	trackErr   error
	final      error // the error after the last frame, once received
}

func (s *mkvSource) Live() bool { return s.live }

func (s *mkvSource) Track(ctx context.Context) (Track, error) {
	select {
	case <-s.trackReady:
		return s.track, s.trackErr
	case <-ctx.Done():
		return Track{}, ctx.Err()
	}
}

func (s *mkvSource) ReadFrame(ctx context.Context) (Frame, error) {
	if s.final != nil {
		return Frame{}, s.final
	}
	select {
	case r, ok := <-s.frames:
		if !ok {
			s.final = io.EOF
			return Frame{}, io.EOF
		}
		if r.err != nil {
			s.final = r.err
		}
		return r.f, r.err
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

func (s *mkvSource) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	var err error
	if c, ok := s.r.(io.Closer); ok {
		err = c.Close()
	}
	s.wg.Wait()
	return err
}

// send hands a result to ReadFrame; false once Close was called.
func (s *mkvSource) send(r mkvResult) bool {
	select {
	case s.frames <- r:
		return true
	case <-s.stop:
		return false
	}
}

// pendingBlock is a block of the video track seen in the current Cluster;
// its bytes are taken from the Cluster once it is complete.
type pendingBlock struct {
	off int64 // in the input
	b   mkv.Block
}

// docState is what the reader knows of the current document.
type docState struct {
	track  uint64
	scale  uint64
	offset time.Duration // added to this document's times for continuity
	first  bool          // no frame of this document seen yet
}

// read runs the Matroska reader and sends frames.
func (s *mkvSource) read() {
	defer close(s.frames)
	setTrack := func(t Track, err error) {
		s.track, s.trackErr = t, err
		close(s.trackReady)
	}
	trackSet := false
	fail := func(err error) {
		if !trackSet {
			trackSet = true
			setTrack(Track{}, err)
		}
		s.send(mkvResult{err: err})
	}
	rd := mkv.NewReader(s.r, mkv.Limits{MaxElementSize: 8 << 20})
	var (
		doc      docState
		docs     int
		haveLast bool
		lastPTS  time.Duration
		gap      time.Duration // the last frame interval, for continuity
		base     time.Duration // PTS 0: the first frame's time
		haveBase bool
		pending  []pendingBlock
		clOff    int64
	)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			if !trackSet {
				fail(errors.New("the input holds no Matroska document with a video track"))
			}
			return
		}
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			fail(fmt.Errorf("matroska input: %w", err))
			return
		}
		switch ev.Kind {
		case mkv.KindHeader:
			docs++
			t, num, err := videoTrack(ev.Header)
			if err != nil {
				fail(err)
				return
			}
			if !trackSet {
				trackSet = true
				setTrack(t, nil)
			} else if t.CodecID != s.track.CodecID {
				fail(fmt.Errorf("matroska document %d changes the codec from %s to %s", docs, codecName(s.track.CodecID), codecName(t.CodecID)))
				return
			} else if !bytes.Equal(t.CodecPrivate, s.track.CodecPrivate) {
				fail(fmt.Errorf("matroska document %d changes the decoder configuration (CodecPrivate); stream each encoder configuration in its own run", docs))
				return
			}
			doc = docState{track: num, scale: ev.Header.TimecodeScale, first: true}
		case mkv.KindClusterStart:
			pending, clOff = pending[:0], ev.Offset
		case mkv.KindBlock:
			if ev.Block.Track == doc.track {
				pending = append(pending, pendingBlock{off: ev.Offset, b: ev.Block})
			}
		case mkv.KindClusterEnd:
			for _, pb := range pending {
				data, err := blockData(ev.Raw, pb.off-clOff, pb.b.Size)
				if err != nil {
					fail(err)
					return
				}
				t := time.Duration((int64(ev.Timecode) + int64(pb.b.RelTimecode)) * int64(doc.scale))
				if doc.first {
					doc.first = false
					if haveLast {
						// A new document: continue one frame after the last.
						doc.offset = lastPTS + max(gap, time.Millisecond) - (t - base)
					}
				}
				if !haveBase {
					base, haveBase = t, true
				}
				pts := t - base + doc.offset
				if haveLast && pts > lastPTS {
					gap = pts - lastPTS
				}
				lastPTS, haveLast = pts, true
				if !s.send(mkvResult{f: Frame{PTS: pts, Keyframe: pb.b.Keyframe, Data: data}}) {
					return
				}
			}
			pending = pending[:0]
		}
	}
}

// videoTrack picks the first video track of a document.
func videoTrack(h *mkv.Header) (Track, uint64, error) {
	for _, t := range h.Tracks {
		if t.Type != 1 {
			continue
		}
		if err := CheckCodec(t.CodecID); err != nil {
			return Track{}, 0, err
		}
		if len(t.CodecPrivate) == 0 {
			return Track{}, 0, fmt.Errorf("the %s track has no CodecPrivate (decoder configuration)", codecName(t.CodecID))
		}
		return Track{CodecID: t.CodecID, CodecPrivate: t.CodecPrivate, Width: int(t.Width), Height: int(t.Height)}, t.Number, nil
	}
	return Track{}, 0, errors.New("the Matroska input has no video track")
}

// blockData copies the frame of the SimpleBlock or BlockGroup at raw[off:],
// whose frame is the last size bytes of the (Simple)Block payload.
func blockData(raw []byte, off int64, size int) ([]byte, error) {
	if off < 0 || off >= int64(len(raw)) {
		return nil, fmt.Errorf("matroska input: block outside its Cluster")
	}
	id, payload, _, err := element(raw[off:])
	if err != nil {
		return nil, err
	}
	if id == 0xA0 { // BlockGroup: find its Block
		rest := payload
		for {
			if len(rest) == 0 {
				return nil, errors.New("matroska input: BlockGroup without a Block")
			}
			cid, cp, n, err := element(rest)
			if err != nil {
				return nil, err
			}
			if cid == 0xA1 {
				payload = cp
				break
			}
			rest = rest[n:]
		}
	}
	if size+1 > len(payload) {
		return nil, errors.New("matroska input: block shorter than its frame")
	}
	if flags := payload[len(payload)-size-1]; flags&0x06 != 0 {
		return nil, errors.New("matroska input: laced blocks are not supported")
	}
	return bytes.Clone(payload[len(payload)-size:]), nil
}

// element decodes the element at the start of b and returns its ID, its
// payload (aliasing b) and its total length.
func element(b []byte) (uint32, []byte, int, error) {
	il := vintLen(b)
	if il == 0 || il > 4 || len(b) < il {
		return 0, nil, 0, errors.New("matroska input: bad element ID")
	}
	var id uint32
	for _, c := range b[:il] {
		id = id<<8 | uint32(c)
	}
	b = b[il:]
	sl := vintLen(b)
	if sl == 0 || len(b) < sl {
		return 0, nil, 0, errors.New("matroska input: bad element size")
	}
	var buf [8]byte
	copy(buf[8-sl:], b[:sl])
	size := binary.BigEndian.Uint64(buf[:]) &^ (uint64(0x80>>(sl-1)) << (8 * (sl - 1)))
	b = b[sl:]
	if size > uint64(len(b)) {
		return 0, nil, 0, errors.New("matroska input: element larger than its Cluster")
	}
	return id, b[:size], il + sl + int(size), nil
}

// vintLen is the length of the EBML vint starting b (0 if invalid).
func vintLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	for i := range 8 {
		if b[0]&(0x80>>i) != 0 {
			return i + 1
		}
	}
	return 0
}
