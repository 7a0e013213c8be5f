// Package rtsptest is a real RTSP server (gortsplib's) that publishes
// frames as a camera would, in real time, for tests and benchmarks of the
// RTSP source.
package rtsptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/kvsd/kvsd/internal/h26x"
	"github.com/kvsd/kvsd/internal/videosrc"
	"github.com/kvsd/kvsd/producer"
)

// Config is what a Server publishes.
type Config struct {
	Track  producer.Track
	Frames []producer.Frame
	// InBand leaves the parameter sets out of the SDP and sends them in
	// every keyframe instead, as some cameras do.
	InBand bool
	// Loop publishes the frames again and again (timestamps go on).
	Loop bool
	// Format, when set, replaces the video format in the SDP (for a
	// camera of another codec); nothing is published then.
	Format format.Format
}

// Server publishes one stream at URL().
type Server struct {
	cfg    Config
	addr   string
	desc   *description.Session
	params [][]byte // parameter sets for InBand

	mu      sync.Mutex
	srv     *gortsplib.Server
	stream  *gortsplib.ServerStream
	playing chan struct{} // closed at the first PLAY
	once    sync.Once
	sent    int

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Start listens on a free loopback port (TCP transport only, so nothing is
// lost on a loaded machine) and publishes from the first PLAY on.
func Start(cfg Config) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{cfg: cfg, addr: addr, playing: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	forma := cfg.Format
	if forma == nil {
		if forma, err = s.videoFormat(); err != nil {
			return nil, err
		}
	}
	s.desc = &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}}}
	if err := s.listen(); err != nil {
		return nil, err
	}
	go s.publish()
	return s, nil
}

func (s *Server) videoFormat() (format.Format, error) {
	switch s.cfg.Track.CodecID {
	case producer.CodecH264:
		sps, pps, _, err := h26x.ParseAVCConfig(s.cfg.Track.CodecPrivate)
		if err != nil {
			return nil, err
		}
		s.params = append(sps, pps...)
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		if !s.cfg.InBand {
			f.SPS, f.PPS = sps[0], pps[0]
		}
		return f, nil
	case producer.CodecH265:
		nalus, _, err := h26x.ParseHEVCConfig(s.cfg.Track.CodecPrivate)
		if err != nil {
			return nil, err
		}
		for _, n := range nalus {
			if h26x.IsParamSet(h26x.H265, n) {
				s.params = append(s.params, n)
			}
		}
		f := &format.H265{PayloadTyp: 96}
		if !s.cfg.InBand {
			for _, n := range nalus {
				switch h26x.H265Type(n) {
				case h26x.H265NALVPS:
					f.VPS = n
				case h26x.H265NALSPS:
					f.SPS = n
				case h26x.H265NALPPS:
					f.PPS = n
				}
			}
		}
		return f, nil
	}
	return nil, fmt.Errorf("rtsptest: codec %q", s.cfg.Track.CodecID)
}

func (s *Server) listen() error {
	srv := &gortsplib.Server{Handler: s, RTSPAddress: s.addr}
	if err := srv.Start(); err != nil {
		return err
	}
	st := &gortsplib.ServerStream{Server: srv, Desc: s.desc}
	if err := st.Initialize(); err != nil {
		srv.Close()
		return err
	}
	s.mu.Lock()
	s.srv, s.stream = srv, st
	s.mu.Unlock()
	return nil
}

// URL is the stream's address.
func (s *Server) URL() string { return "rtsp://" + s.addr + "/cam" }

// Sent returns how many frames were published.
func (s *Server) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Drop closes the server, as a camera that reboots, and serves RTSP again
// once refused connections were made to its port in the meantime (each is
// accepted and closed at once), or fails after 30 s without them;
// publishing goes on meanwhile (those frames are lost).
func (s *Server) Drop(refused int) error {
	s.mu.Lock()
	srv, st := s.srv, s.stream
	s.srv, s.stream = nil, nil
	s.mu.Unlock()
	st.Close()
	srv.Close()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		ln.Close()
		return err
	}
	for range refused {
		c, err := ln.Accept()
		if err != nil {
			ln.Close()
			return err
		}
		c.Close()
	}
	ln.Close()
	return s.listen()
}

// Close stops publishing and the server.
func (s *Server) Close() {
	s.closeOnce.Do(s.close)
}

func (s *Server) close() {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.stream.Close()
		s.srv.Close()
	}
}

// publish writes the frames at their times from the first PLAY on.
func (s *Server) publish() {
	defer close(s.done)
	if s.cfg.Format != nil || len(s.cfg.Frames) == 0 {
		return
	}
	select {
	case <-s.playing:
	case <-s.stop:
		return
	}
	forma := s.desc.Medias[0].Formats[0]
	var encode func([][]byte) ([]*rtp.Packet, error)
	switch f := forma.(type) {
	case *format.H264:
		e, err := f.CreateEncoder()
		if err != nil {
			return
		}
		encode = e.Encode
	case *format.H265:
		e, err := f.CreateEncoder()
		if err != nil {
			return
		}
		encode = e.Encode
	}
	frames := s.cfg.Frames
	period := frames[len(frames)-1].PTS + frames[len(frames)-1].PTS/time.Duration(max(1, len(frames)-1))
	// The reader's session turns active just after OnPlay returns; give
	// it a moment so that it gets the first keyframe.
	start := time.Now().Add(200 * time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for loop := 0; ; loop++ {
		for _, f := range frames {
			pts := time.Duration(loop)*period + f.PTS
			timer.Reset(time.Until(start.Add(pts)))
			select {
			case <-timer.C:
			case <-s.stop:
				return
			}
			nalus, err := h26x.SplitAVCC(f.Data, 4)
			if err != nil {
				continue
			}
			if s.cfg.InBand && f.Keyframe {
				nalus = append(append([][]byte(nil), s.params...), nalus...)
			}
			pkts, err := encode(nalus)
			if err != nil {
				continue
			}
			ts := uint32(int64(pts) * 90000 / int64(time.Second))
			s.mu.Lock()
			for _, p := range pkts {
				p.Timestamp = ts
				if s.stream != nil {
					_ = s.stream.WritePacketRTP(s.desc.Medias[0], p)
				}
			}
			s.sent++
			s.mu.Unlock()
		}
		if !s.cfg.Loop {
			return
		}
	}
}

// OnDescribe answers with the stream.
func (s *Server) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return s.current()
}

// OnSetup answers with the stream.
func (s *Server) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return s.current()
}

// OnPlay starts publishing (the first time).
func (s *Server) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s.once.Do(func() { close(s.playing) })
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (s *Server) current() (*base.Response, *gortsplib.ServerStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, errors.New("restarting")
	}
	return &base.Response{StatusCode: base.StatusOK}, s.stream, nil
}

// Load reads a video file (anything videosrc.OpenFile opens) to its end, for a Server to publish.
func Load(ctx context.Context, path string) (producer.Track, []producer.Frame, error) {
	src, err := videosrc.OpenFile(path, videosrc.FileOptions{})
	if err != nil {
		return producer.Track{}, nil, err
	}
	defer src.Close()
	track, err := src.Track(ctx)
	if err != nil {
		return producer.Track{}, nil, err
	}
	var frames []producer.Frame
	for {
		f, err := src.ReadFrame(ctx)
		if errors.Is(err, io.EOF) {
			return track, frames, nil
		}
		if err != nil {
			return producer.Track{}, nil, err
		}
		frames = append(frames, f)
	}
}
