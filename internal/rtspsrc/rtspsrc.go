// Package rtspsrc is the producer's source for RTSP cameras: H.264 or H.265
// over RTP, read with gortsplib, turned into access units with 4-byte NAL
// lengths. A camera that drops is dialled again with backoff, so a
// `kvsd put rtsp://…` outlives reboots of the camera and network blips.
package rtspsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/producer"
)

// Options tune Dial. The zero value is the usual camera set-up.
type Options struct {
	// TCP asks for RTP interleaved in the RTSP connection. Without it
	// gortsplib tries UDP first and falls back to TCP when no packets
	// arrive.
	TCP bool
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from one failed attempt to the next
	// (defaults 1 s and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Logger says when the camera drops and comes back (nil:
	// discard).
	Logger *slog.Logger
	// Buffer is how many frames wait for ReadFrame before the camera's
	// connection is held back (default 300: 10 s at 30 fps).
	Buffer int
}

// Source reads one camera. ReadFrame and Track may be called from one
// goroutine; Close from any.
type Source struct {
	url    *base.URL
	name   string // the URL without credentials, for messages
	opts   Options
	codec  h26x.Codec
	frames chan rawFrame
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the reader (Track/ReadFrame).
	cfg      *h26x.Config
	ps       h26x.ParamSets
	first    *rawFrame // the keyframe Track read, for ReadFrame
	epoch    int       // session of the last frame handed out
	offset   time.Duration
	sessBase time.Duration // PTS of the first frame handed out in this session
	lastPTS  time.Duration
	start    time.Time // wall time of the first frame handed out
	sdp      [][]byte  // parameter sets of the last session's SDP, until its first keyframe

	mu  sync.Mutex
	err error // why run stopped, when it did
}

// rawFrame is one access unit as the RTP depacketizer gave it.
type rawFrame struct {
	nalus   [][]byte
	pts     time.Duration // from this session's RTP timestamps
	session int           // 1 for the first connection, then one more per reconnection
	params  [][]byte      // parameter sets from the SDP, sent with the session's first frame
}

// Dial connects to the camera at rawURL (rtsp:// or rtsps://, with
// credentials in the URL where needed) and starts reading it. A camera
// without an H.264 or H.265 video stream is refused with an
// *producer.UnsupportedCodecError. The first connection must succeed; later
// drops are retried until Close.
func Dial(ctx context.Context, rawURL string, opts Options) (*Source, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rtsp: %w", err)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 300
	}
	s := &Source{url: u, name: (*url.URL)(u).Redacted(), opts: opts, frames: make(chan rawFrame, opts.Buffer), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sess, err := s.connect(ctx, 1)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.ps.Codec = s.codec
	go s.run(sess)
	return s, nil
}

// session is one RTSP connection that is playing.
type session struct {
	client *gortsplib.Client
	stop   func() bool // undoes the AfterFunc that closes client with the source
}

// connect dials, describes, sets up the video stream and plays it.
func (s *Source) connect(ctx context.Context, id int) (*session, error) {
	log := s.opts.Logger.With("camera", s.name)
	// gortsplib's own messages go to the log package by default: route
	// them to slog, as everything else kvsd says.
	c := &gortsplib.Client{
		Scheme:            s.url.Scheme,
		Host:              s.url.Host,
		OnTransportSwitch: func(err error) { log.Debug("rtsp: switching transport", "why", err) },
		OnPacketsLost:     func(lost uint64) { log.Debug("rtsp: RTP packets lost", "count", lost) },
		OnDecodeError:     func(err error) { log.Debug("rtsp: RTP decode error", "err", err) },
	}
	if s.opts.TCP {
		p := gortsplib.ProtocolTCP
		c.Protocol = &p
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("rtsp: %s: %w", s.name, err)
	}
	// Close the client when either context ends, which makes any request
	// in flight return.
	var once sync.Once
	closeClient := func() { once.Do(c.Close) }
	stopCaller := context.AfterFunc(ctx, closeClient)
	defer stopCaller()
	stop := context.AfterFunc(s.ctx, closeClient)
	fail := func(err error) (*session, error) {
		stop()
		closeClient()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	desc, _, err := c.Describe(s.url)
	if err != nil {
		return fail(fmt.Errorf("rtsp: %s: %w", s.name, err))
	}
	medi, forma, dec, params, err := s.pickVideo(desc)
	if err != nil {
		return fail(err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return fail(fmt.Errorf("rtsp: %s: set up the video stream: %w", s.name, err))
	}
	first := true
	// RTP timestamps (wrapping 32-bit, at the clock rate) to a running
	// count from this session's first packet. gortsplib's PacketPTS would
	// drop the packets before the first one whose PTS it can place (an
	// SEI sent ahead of an IDR), and with them part of the first frame.
	var ticks int64
	var prev uint32
	started := false
	clock := int64(forma.ClockRate())
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		if started {
			ticks += int64(int32(pkt.Timestamp - prev))
		}
		prev, started = pkt.Timestamp, true
		nalus, err := dec(pkt)
		if err != nil {
			// Missing packets, or the middle of a frame after joining:
			// the depacketizer starts again at the next frame.
			return
		}
		f := rawFrame{nalus: nalus, pts: time.Duration(ticks) * time.Second / time.Duration(clock), session: id}
		if first {
			f.params, first = params, false
		}
		select {
		case s.frames <- f:
		case <-s.ctx.Done():
		}
	})
	if _, err := c.Play(nil); err != nil {
		return fail(fmt.Errorf("rtsp: %s: play: %w", s.name, err))
	}
	return &session{client: c, stop: func() bool { r := stop(); closeClient(); return r }}, nil
}

// pickVideo finds the H.264 or H.265 stream of a description and returns
// a depacketizer for it and the parameter sets of the SDP.
func (s *Source) pickVideo(desc *description.Session) (*description.Media, format.Format, func(*rtp.Packet) ([][]byte, error), [][]byte, error) {
	var h264 *format.H264
	if medi := desc.FindFormat(&h264); medi != nil && (s.codec == 0 || s.codec == h26x.H264) {
		d, err := h264.CreateDecoder()
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("rtsp: %s: %w", s.name, err)
		}
		if s.codec == 0 { // set once, before the reader starts
			s.codec = h26x.H264
		}
		sps, pps := h264.SafeParams()
		return medi, h264, d.Decode, nonEmpty(sps, pps), nil
	}
	var h265 *format.H265
	if medi := desc.FindFormat(&h265); medi != nil && (s.codec == 0 || s.codec == h26x.H265) {
		d, err := h265.CreateDecoder()
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("rtsp: %s: %w", s.name, err)
		}
		if s.codec == 0 {
			s.codec = h26x.H265
		}
		vps, sps, pps := h265.SafeParams()
		return medi, h265, d.Decode, nonEmpty(vps, sps, pps), nil
	}
	for _, m := range desc.Medias {
		if m.Type == description.MediaTypeVideo && len(m.Formats) > 0 {
			if s.codec != 0 {
				return nil, nil, nil, nil, fmt.Errorf("rtsp: %s switched from %v to %s", s.name, s.codec, m.Formats[0].Codec())
			}
			return nil, nil, nil, nil, &producer.UnsupportedCodecError{Source: s.name, Codec: m.Formats[0].Codec()}
		}
	}
	return nil, nil, nil, nil, fmt.Errorf("rtsp: %s has no video stream", s.name)
}

func nonEmpty(units ...[]byte) [][]byte {
	var out [][]byte
	for _, u := range units {
		if len(u) > 0 {
			out = append(out, u)
		}
	}
	return out
}

// run waits for the session to end and reconnects until Close.
func (s *Source) run(sess *session) {
	defer close(s.done)
	log := s.opts.Logger.With("camera", s.name)
	id := 1
	for {
		err := s.wait(sess)
		if s.ctx.Err() != nil {
			return
		}
		log.Warn("rtsp: camera connection lost; reconnecting", "err", err)
		backoff := s.opts.MinBackoff
		for attempt := 1; ; attempt++ {
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			id++
			sess, err = s.connect(s.ctx, id)
			if err == nil {
				log.Info("rtsp: camera reconnected", "attempts", attempt)
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			var uc *producer.UnsupportedCodecError
			if errors.As(err, &uc) {
				s.setErr(err)
				log.Error("rtsp: camera no longer streams H.264/H.265; giving up", "err", err)
				return
			}
			backoff = min(2*backoff, s.opts.MaxBackoff)
			log.Warn("rtsp: camera still unreachable", "attempt", attempt, "err", err, "retry_in", backoff)
		}
	}
}

// wait returns when the session ends, with why.
func (s *Source) wait(sess *session) error {
	defer sess.stop()
	return sess.client.Wait()
}

func (s *Source) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *Source) stopErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return fmt.Errorf("rtsp: %s: source closed", s.name)
}

// next returns the next access unit from the camera.
func (s *Source) next(ctx context.Context) (rawFrame, error) {
	select {
	case f := <-s.frames:
		return f, nil
	case <-ctx.Done():
		return rawFrame{}, ctx.Err()
	case <-s.done:
		return rawFrame{}, s.stopErr()
	}
}

// Track waits for the first keyframe with its parameter sets (from the
// SDP or in-band) and describes the video.
func (s *Source) Track(ctx context.Context) (producer.Track, error) {
	for s.cfg == nil {
		f, err := s.next(ctx)
		if err != nil {
			return producer.Track{}, err
		}
		for _, n := range f.params {
			s.ps.Add(n)
		}
		for _, n := range f.nalus {
			s.ps.Add(n)
		}
		if !s.ps.Ready() || !h26x.IsKeyframe(s.codec, f.nalus) {
			continue
		}
		cfg, err := s.ps.Config()
		if err != nil {
			return producer.Track{}, fmt.Errorf("rtsp: %s: %w", s.name, err)
		}
		s.cfg, s.first = &cfg, &f
	}
	id := producer.CodecH264
	if s.codec == h26x.H265 {
		id = producer.CodecH265
	}
	return producer.Track{CodecID: id, CodecPrivate: s.cfg.Record, Width: s.cfg.Width, Height: s.cfg.Height}, nil
}

// ReadFrame returns the next frame. PTS comes from the RTP timestamps;
// after a reconnection, which starts again at a keyframe, it goes on from
// the wall-clock time since the first frame, so it never goes backwards.
func (s *Source) ReadFrame(ctx context.Context) (producer.Frame, error) {
	if s.cfg == nil {
		if _, err := s.Track(ctx); err != nil {
			return producer.Frame{}, err
		}
	}
	for {
		var f rawFrame
		if s.first != nil {
			f, s.first = *s.first, nil
		} else {
			var err error
			if f, err = s.next(ctx); err != nil {
				return producer.Frame{}, err
			}
		}
		key := h26x.IsKeyframe(s.codec, f.nalus)
		if f.params != nil {
			s.sdp = f.params
		}
		if f.session != s.epoch {
			if !key {
				continue // decoding starts at a keyframe
			}
			// A camera that came back with other parameter sets: the
			// frame carries them (AppendFrame drops mere repeats).
			f.nalus = append(append([][]byte(nil), s.sdp...), f.nalus...)
			s.sdp = nil
			if s.epoch == 0 {
				s.start = time.Now()
				s.offset = 0
			} else {
				s.offset = max(time.Since(s.start), s.lastPTS+time.Millisecond)
			}
			s.epoch, s.sessBase = f.session, f.pts
		}
		data, _ := s.cfg.AppendFrame(nil, f.nalus)
		if len(data) == 0 {
			continue
		}
		pts := max(0, s.offset+f.pts-s.sessBase)
		s.lastPTS = pts
		return producer.Frame{PTS: pts, Keyframe: key, Data: data}, nil
	}
}

// Live is true: a camera is real time.
func (s *Source) Live() bool { return true }

// Close stops reading and waits for the connection to close.
func (s *Source) Close() error {
	s.cancel()
	<-s.done
	return nil
}

var _ producer.Source = (*Source)(nil)
