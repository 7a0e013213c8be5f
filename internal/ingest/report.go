package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// A stream's recent ingest problems, for `kvsd doctor`: the last few, for a day.
const (
	maxProblems = 5
	problemAge  = 24 * time.Hour
)

// problems remembers, per stream, what cost or could cost a producer video.
type problems struct {
	mu sync.Mutex
	by map[string][]problem // by stream name, oldest first
}

type problem struct {
	at time.Time
	diag.Finding
}

func (p *problems) add(name string, f diag.Finding, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by == nil {
		p.by = map[string][]problem{}
	}
	l := append(p.by[name], problem{at: at, Finding: f})
	if len(l) > maxProblems {
		l = l[len(l)-maxProblems:]
	}
	p.by[name] = l
}

func (p *problems) recent(name string, now time.Time) []problem {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []problem
	for _, pr := range p.by[name] {
		if now.Sub(pr.at) < problemAge {
			out = append(out, pr)
		}
	}
	return out
}

// problem logs what may have cost the producer video as a WARN line and keeps it for doctor.
func (s *Session) problem(code, msg, fix string, args ...any) {
	now := s.m.cfg.Now()
	s.log.Warn(msg, append([]any{"code", code}, args...)...)
	s.m.problems.add(s.st.Name, diag.Finding{Level: diag.Warn, Code: code, Message: msg, Fix: fix}, now)
}

// fixes says, per ERROR id, what an operator can do about it.
var fixes = map[int]string{
	errStreamRead:         "The connection broke while the producer was sending. Check the network between the camera and kvsd; producers reconnect and continue.",
	errFragmentSize:       "A fragment is larger than 50 MB. Send a key frame more often (e.g. x264enc key-int-max, kvssink key-frame-fragmentation).",
	errFragmentDuration:   "A fragment spans more than 20 s. Send a key frame at least every few seconds.",
	errConnectionDuration: "Connections last at most 45 minutes; producers reconnect by themselves. Nothing to do unless this repeats often.",
	errTimecodeLesser:     "The producer's cluster timecodes went backwards within one connection. Check the camera's clock and the pipeline's timestamps.",
	errInvalidMKV:         "The producer sent Matroska kvsd cannot read. Check the pipeline (matroskamux streamable=true, or kvssink).",
	errProducerTimestamp:  "The producer's timestamps are out of range: its clock is wrong (set it, e.g. with NTP) or its x-amzn-producer-start-timestamp is. To upload old recordings on purpose, raise kvsd serve --max-clock-skew.",
	errMetadataLimit:      "A fragment carries more than 10 tags, or a tag name over 128 or value over 256 bytes. Send fewer or shorter tags.",
	errTrackMismatch:      "A frame names a track that the Tracks element does not declare. Check the producer's track configuration.",
	errFramesMissing:      "A declared track (e.g. audio) has no frame in a fragment. Feed every track, or declare only the ones with data.",
	errTooManyTracks:      "The producer declares more than 3 tracks. Send at most one video and two other tracks.",
	errArchival:           "kvsd could not store a fragment. Check the data dir's disk (space, errors in kvsd's log); the producer resends it.",
}

// report says how the session ended. What cost the producer video is a problem (WARN, doctor);
// the rest is logged at INFO or DEBUG.
func (s *Session) report(err error) {
	cur := s.frag.cur
	var args []any
	if cur != nil {
		args = append(args, "fragment", cur.frag.Number, "frames_in_flight", cur.frames())
	}
	ae, isAck := errors.AsType[*ackError](err)
	switch {
	case err == nil:
		s.log.Debug("putmedia done")
	case isAck && (ae.id == errInternal || ae.id == errStreamNotActive):
		// Shutdown (the producer resends from the fragment named) or a deleted stream.
		s.log.Info("putmedia ended with ERROR", append(args, "error_id", ae.id, "err", err)...)
	case isAck && ae.id != errStreamRead && ae.id != endSuperseded:
		how := "the producer skips that fragment"
		if retriable(ae.id) {
			how = "the producer resends from that fragment"
		}
		s.problem("INGEST_ERROR_"+errorCodes[ae.id],
			fmt.Sprintf("PutMedia ended with ERROR %d %s (%v); %s", ae.id, errorCodes[ae.id], ae.err, how),
			fixes[ae.id], append(args, "error_id", ae.id)...)
	case s.dropped != nil:
		n := s.dropped.b.frames()
		s.m.metrics.lost.WithLabelValues("ended").Add(float64(n))
		s.problem("INGEST_FRAGMENT_LOST",
			fmt.Sprintf("a PutMedia connection ended inside a fragment (%v) after a newer connection took over; the %d frames it had received of that fragment were dropped", err, n),
			"The producer sent on two connections at once. Producers that hand over (kvssink, kinesisvideomanager) finish a fragment before they start the next on the new connection; check the producer.",
			args...)
	case s.kept:
		s.log.Info("putmedia connection ended inside a fragment; kvsd holds it for the producer's next connection",
			append(args, "err", err)...)
	case isAck && ae.id == endSuperseded:
		s.log.Info("putmedia connection ended: a newer connection of the stream took over")
	case cur != nil:
		s.m.metrics.lost.WithLabelValues("ended").Add(float64(cur.frames()))
		s.problem("INGEST_FRAGMENT_LOST",
			fmt.Sprintf("a PutMedia connection ended inside a fragment (%v); the %d frames received of it were dropped", err, cur.frames()),
			"The producer's connection broke or went quiet mid-fragment. Check the network and the producer's log; it resends what was not acknowledged.",
			args...)
	default:
		s.log.Info("putmedia ended early", "err", err)
	}
}

// retriable applies the producer SDK's rule for the ERROR ids it resends after (§3.7).
func retriable(id int) bool {
	switch id {
	case errStreamRead, errConnectionDuration, errInternal, errArchival:
		return true
	}
	return false
}

// Diagnose reports the stream's PutMedia connection and its recent ingest problems, with
// their fixes, for `kvsd doctor`. It implements diag.Source.
func (m *Manager) Diagnose(_ context.Context, st *stream.Stream) diag.Report {
	r := diag.Report{Component: "ingest"}
	m.mu.Lock()
	n := 0
	if ss := m.streams[st.Name]; ss != nil && ss.key == fragstore.KeyOf(st) {
		n = len(ss.sessions)
	}
	m.mu.Unlock()
	switch n {
	case 0:
		r.Findings = append(r.Findings, diag.Finding{Level: diag.Info, Code: "INGEST_IDLE", Message: "no PutMedia connection is streaming to this stream"})
	default:
		r.Findings = append(r.Findings, diag.Finding{Level: diag.OK, Code: "INGEST_STREAMING", Message: fmt.Sprintf("%d PutMedia connection(s) streaming", n)})
	}
	now := m.cfg.Now()
	for _, p := range m.problems.recent(st.Name, now) {
		f := p.Finding
		f.Message = fmt.Sprintf("%s ago: %s", now.Sub(p.at).Round(time.Second), f.Message)
		r.Findings = append(r.Findings, f)
	}
	return r
}
