package playback

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

// KVSNamespace is the XML namespace of the kvs:ts and kvs:fn attributes (KVS's own URI is
// not published; any declared namespace keeps XML parsers happy).
const KVSNamespace = "https://kinesisvideo.amazonaws.com/dash/v1"

// DASHManifest answers getDASHManifest.mpd: one Period, one AdaptationSet per track, each with a
// SegmentTemplate and SegmentTimeline on the session's timeline in milliseconds (t is the
// fragment's start, so $Time$ names the fragment). Dynamic for LIVE and LIVE_REPLAY until the
// replay ends, static for ON_DEMAND.
func (s *Service) DASHManifest(ctx context.Context, token string) (*Resource, error) {
	sess, sel, info, err := s.described(ctx, token, DASH)
	if err != nil {
		return nil, err
	}
	return s.playlistResource(sess, manifest(sess, sel, info, s.now()), TypeMPD, sel.ended), nil
}

// manifest writes the MPD.
func manifest(sess *Session, sel *selection, info streamInfo, now time.Time) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:kvs="%s" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2S"`, KVSNamespace)
	starts, durs := timeline(sess, sel.frags)
	pto := int64(0)
	if sel.ended {
		var total int64
		for _, d := range durs {
			total += d
		}
		pto = starts[0]
		fmt.Fprintf(&b, ` type="static" mediaPresentationDuration="%s">`+"\n", isoDuration(total))
	} else {
		window := starts[len(starts)-1] + durs[len(durs)-1] - starts[0]
		fmt.Fprintf(&b, ` type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="%s" minimumUpdatePeriod="PT1S" timeShiftBufferDepth="%s" suggestedPresentationDelay="PT2S">`+"\n",
			now.UTC().Format("2006-01-02T15:04:05.000Z"), isoDuration(max(window, 1000)))
	}
	b.WriteString(`  <Period id="0" start="PT0S">` + "\n")
	tracks := []Track{info.video}
	if info.audio != nil {
		tracks = append(tracks, *info.audio)
	}
	for _, tr := range tracks {
		writeAdaptationSet(&b, sess, sel, tr, info, starts, durs, pto)
	}
	b.WriteString("  </Period>\n</MPD>\n")
	return b.Bytes()
}

func writeAdaptationSet(b *bytes.Buffer, sess *Session, sel *selection, tr Track, info streamInfo, starts, durs []int64, pto int64) {
	if tr.Video {
		fmt.Fprintf(b, `    <AdaptationSet id="%d" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">`+"\n", tr.Number)
		fmt.Fprintf(b, `      <Representation id="%d" codecs="%s" bandwidth="%d"`, tr.Number, tr.Codec, max(info.bandwidth, 1))
		if tr.Width > 0 {
			fmt.Fprintf(b, ` width="%d" height="%d"`, tr.Width, tr.Height)
		}
		if info.frameRate > 0 {
			fmt.Fprintf(b, ` frameRate="%d/1000"`, int64(info.frameRate*1000+0.5))
		}
		b.WriteString(">\n")
	} else {
		fmt.Fprintf(b, `    <AdaptationSet id="%d" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">`+"\n", tr.Number)
		fmt.Fprintf(b, `      <Representation id="%d" codecs="%s" bandwidth="128000" audioSamplingRate="%d">`+"\n", tr.Number, tr.Codec, tr.SampleRate)
		fmt.Fprintf(b, `        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="%d"/>`+"\n", tr.Channels)
	}
	fmt.Fprintf(b, `        <SegmentTemplate timescale="1000" presentationTimeOffset="%d" startNumber="%d" initialization="getMP4InitFragment.mp4?SessionToken=%s&amp;TrackNumber=%d&amp;FragmentNumber=%s" media="getMP4MediaFragment.mp4?SessionToken=%s&amp;TrackNumber=%d&amp;Time=$Time$">`+"\n",
		pto, sel.msn, sess.token, tr.Number, sel.frags[0].Number, sess.token, tr.Number)
	b.WriteString("          <SegmentTimeline>\n")
	for i, f := range sel.frags {
		fmt.Fprintf(b, `            <S t="%d" d="%d"`, starts[i], durs[i])
		if sess.ShowTime {
			fmt.Fprintf(b, ` kvs:ts="%d"`, startOf(f, sess.Kind).UnixMilli())
		}
		if sess.ShowNumber {
			fmt.Fprintf(b, ` kvs:fn="%s"`, f.Number)
		}
		b.WriteString("/>\n")
	}
	b.WriteString("          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n    </AdaptationSet>\n")
}

// timeline is each fragment's start (ms on the session's timeline) and its duration in the
// SegmentTimeline: up to the next fragment's start, so the timeline has no holes (a gap in the
// media becomes the end of the segment before it).
func timeline(sess *Session, frags []*fragment.Fragment) (starts, durs []int64) {
	for _, f := range frags {
		starts = append(starts, startOf(f, sess.Kind).UnixMilli())
	}
	for i, f := range frags {
		d := max(f.Duration.Milliseconds(), 1)
		if i+1 < len(frags) && starts[i+1] > starts[i] {
			d = starts[i+1] - starts[i]
		}
		durs = append(durs, d)
	}
	return starts, durs
}

func isoDuration(ms int64) string {
	return "PT" + strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + "S"
}

// DASHMediaFragment answers the manifest's media template: the fragment of the session that
// starts at ms on the session's timeline (the larger fragment number when two do).
func (s *Service) DASHMediaFragment(ctx context.Context, token string, track uint64, ms int64) (*Resource, error) {
	sess, k, err := s.session(ctx, token, DASH)
	if err != nil {
		return nil, err
	}
	if err := checkTrack(sess, track); err != nil {
		return nil, err
	}
	t := time.UnixMilli(ms)
	frags, _, err := s.Store.List(ctx, k, sess.Kind, t, t, fragstore.Cursor{}, 8)
	if err != nil {
		return nil, err
	}
	if len(frags) == 0 {
		return nil, fmt.Errorf("%w: no fragment of stream %s starts at %d", stream.ErrNotFound, sess.Stream, ms)
	}
	f, err := s.sessionFragment(ctx, sess, k, frags[len(frags)-1].Number)
	if err != nil {
		return nil, err
	}
	return s.mp4Fragment(ctx, sess, k, f, track)
}
