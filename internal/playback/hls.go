package playback

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

// Content types of the playback resources.
const (
	TypeM3U8 = "application/vnd.apple.mpegurl"
	TypeMP4  = "video/mp4"
	TypeTS   = "video/mp2t"
	TypeMPD  = "application/dash+xml"
)

// Resource is one playback response.
type Resource struct {
	Body        []byte
	ContentType string
	NoCache     bool      // a live playlist or manifest: players reload it
	Expires     time.Time // the session's end: fragments may be cached until then
}

// session opens a token and checks that its stream (that incarnation) still exists.
func (s *Service) session(ctx context.Context, token string, protocol string) (*Session, fragstore.Key, error) {
	sess, err := s.Tokens.Open(token, s.now())
	if err != nil {
		return nil, fragstore.Key{}, err
	}
	if sess.Protocol != protocol {
		return nil, fragstore.Key{}, ErrSessionInvalid
	}
	st, err := s.Streams.Describe(ctx, stream.Ref{Name: sess.Stream})
	if err != nil {
		return nil, fragstore.Key{}, err
	}
	k := fragstore.KeyOf(st)
	if k.CreatedMs != sess.CreatedMs {
		return nil, fragstore.Key{}, fmt.Errorf("%w: stream %s was deleted and created again since the session started", stream.ErrNotFound, sess.Stream)
	}
	return sess, k, nil
}

// current computes the session's selection now; an empty one is ResourceNotFound.
func (s *Service) current(ctx context.Context, sess *Session, k fragstore.Key) (*selection, error) {
	sel, err := s.selectFragments(ctx, sess, k, s.now())
	if err != nil {
		return nil, err
	}
	if len(sel.frags) == 0 {
		return nil, ErrNoFragments
	}
	return sel, nil
}

func (s *Service) playlistResource(sess *Session, body []byte, contentType string, ended bool) *Resource {
	return &Resource{Body: body, ContentType: contentType, NoCache: !ended, Expires: sess.expires()}
}

// HLSMasterPlaylist answers getHLSMasterPlaylist.m3u8.
func (s *Service) HLSMasterPlaylist(ctx context.Context, token string) (*Resource, error) {
	sess, sel, info, err := s.described(ctx, token, HLS)
	if err != nil {
		return nil, err
	}
	return s.playlistResource(sess, masterPlaylist(sess, info), TypeM3U8, sel.ended), nil
}

// described opens a session and computes its current selection and what players are told of
// its tracks (master playlist, MPD).
func (s *Service) described(ctx context.Context, token, protocol string) (*Session, *selection, streamInfo, error) {
	sess, k, err := s.session(ctx, token, protocol)
	if err != nil {
		return nil, nil, streamInfo{}, err
	}
	sel, err := s.current(ctx, sess, k)
	if err != nil {
		return nil, nil, streamInfo{}, err
	}
	media, err := s.openMedia(ctx, k, sel.frags[0].HeaderID)
	if err != nil {
		return nil, nil, streamInfo{}, err
	}
	video, audio := media.Tracks()
	info := streamInfo{video: video, audio: audio, bandwidth: bandwidth(sel.frags), frameRate: s.frameRate(ctx, k, sel.frags[0])}
	return sess, sel, info, nil
}

// HLSMediaPlaylist answers getHLSMediaPlaylist.m3u8 for a track.
func (s *Service) HLSMediaPlaylist(ctx context.Context, token string, track uint64) (*Resource, error) {
	sess, k, err := s.session(ctx, token, HLS)
	if err != nil {
		return nil, err
	}
	if err := checkTrack(sess, track); err != nil {
		return nil, err
	}
	sel, err := s.current(ctx, sess, k)
	if err != nil {
		return nil, err
	}
	return s.playlistResource(sess, mediaPlaylist(sess, sel, track), TypeM3U8, sel.ended), nil
}

func checkTrack(sess *Session, track uint64) error {
	if track != 1 && (track != 2 || sess.Format == MPEGTS) {
		return stream.Invalid("TrackNumber must be 1 (video) or 2 (AAC audio), got %d", track)
	}
	return nil
}

// streamInfo is what the master playlist says about the stream.
type streamInfo struct {
	video     Track
	audio     *Track
	bandwidth int64
	frameRate float64 // 0: unknown
}

// masterPlaylist writes KVS's master playlist: VERSION, the audio rendition when track 2 is AAC
// (fMP4 only; MPEG-TS carries audio in its segments), STREAM-INF, the media playlist URI.
func masterPlaylist(sess *Session, info streamInfo) []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:1\n")
	codecs := info.video.Codec
	separateAudio := info.audio != nil && sess.Format != MPEGTS
	if info.audio != nil {
		codecs += "," + info.audio.Codec
	}
	if separateAudio {
		fmt.Fprintf(&b, "#EXT-X-MEDIA:AUTOSELECT=YES,FORCED=NO,TYPE=AUDIO,URI=\"getHLSMediaPlaylist.m3u8?SessionToken=%s&TrackNumber=%d\",GROUP-ID=\"audio\",DEFAULT=YES,NAME=\"audio\"\n",
			sess.token, info.audio.Number)
	}
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:CODECS=\"%s\"", codecs)
	if info.video.Width > 0 && info.video.Height > 0 {
		fmt.Fprintf(&b, ",RESOLUTION=%dx%d", info.video.Width, info.video.Height)
	}
	if info.frameRate > 0 {
		fmt.Fprintf(&b, ",FRAME-RATE=%s", strconv.FormatFloat(math.Round(info.frameRate*1000)/1000, 'f', -1, 64))
	}
	fmt.Fprintf(&b, ",BANDWIDTH=%d", max(info.bandwidth, 1))
	if separateAudio {
		b.WriteString(",AUDIO=\"audio\"")
	}
	fmt.Fprintf(&b, "\ngetHLSMediaPlaylist.m3u8?SessionToken=%s&TrackNumber=%d\n", sess.token, info.video.Number)
	return b.Bytes()
}

// mediaPlaylist writes a media playlist in KVS's tag order (§14).
func mediaPlaylist(sess *Session, sel *selection, track uint64) []byte {
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	if sess.Mode == OnDemand {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", targetDuration(sel.frags), sel.msn)
	if sess.Mode != OnDemand {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", sel.dseq)
	}
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	for i, f := range sel.frags {
		if sel.disc[i] {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if sess.Format != MPEGTS && (i == 0 || sel.mapK[i] != sel.mapK[i-1]) {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=%s&TrackNumber=%d&SequenceNumber=%d&FragmentNumber=%s\"\n",
				sess.token, track, sel.mapK[i], f.Number)
		}
		if sess.ShowTime {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", startOf(f, sess.Kind).UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		fmt.Fprintf(&b, "#EXTINF:%s,\n", seconds3(f.Duration))
		if sess.Format == MPEGTS {
			fmt.Fprintf(&b, "getTSFragment.ts?FragmentNumber=%s&SessionToken=%s\n", f.Number, sess.token)
		} else {
			fmt.Fprintf(&b, "getMP4MediaFragment.mp4?FragmentNumber=%s&SessionToken=%s&TrackNumber=%d\n", f.Number, sess.token, track)
		}
	}
	if sel.ended {
		if sess.Disc == DiscAlways {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.Bytes()
}

// seconds3 formats a duration in seconds with at most 3 decimals, trailing zeros dropped.
func seconds3(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Milliseconds())/1000, 'f', -1, 64)
}

// targetDuration is the longest fragment rounded to the nearest second (at least 1).
func targetDuration(frags []*fragment.Fragment) int64 {
	var longest time.Duration
	for _, f := range frags {
		longest = max(longest, f.Duration)
	}
	// RFC 8216 §4.3.3.1: each EXTINF rounded to the nearest integer is at most the target.
	// Rounding up instead would announce 2 s for 1.02-s fragments, and hls.js keeps a live
	// view a number of target durations behind the newest fragment.
	return max(1, int64(math.Round(longest.Seconds())))
}

// bandwidth is the peak bit rate of the listed fragments.
func bandwidth(frags []*fragment.Fragment) int64 {
	var peak int64
	for _, f := range frags {
		if ms := f.Duration.Milliseconds(); ms > 0 {
			peak = max(peak, f.Size*8*1000/ms)
		}
	}
	return peak
}

// frameRate counts the video frames of one fragment; 0 when it cannot tell.
func (s *Service) frameRate(ctx context.Context, k fragstore.Key, f *fragment.Fragment) float64 {
	hdr, err1 := s.Store.Header(ctx, k, f.HeaderID)
	media, err2 := s.Store.Media(ctx, k, f)
	if err1 != nil || err2 != nil || f.Duration <= 0 {
		return 0
	}
	_, frames, err := mkv.ReadFrames(append(bytes.Clone(hdr), media...), mkv.Limits{})
	if err != nil {
		return 0
	}
	n := 0
	for _, fr := range frames {
		if fr.Track == 1 {
			n++
		}
	}
	return float64(n) / f.Duration.Seconds()
}
