package fragstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

// metaVersion is the version of recordMeta. Readers refuse other versions.
const metaVersion = 1

// recordMeta is the self-description stored beside every fragment's media (Record.Meta): with
// the segment's stream identity it is everything the index holds about the fragment, the MKV
// header included, so an index could be rebuilt from the media alone and every record plays on
// its own (header + cluster). docs/format/media.md describes it; JSON because it is tiny next
// to the media and must stay readable by people and by later versions.
type recordMeta struct {
	V          int       `json:"v"`
	Number     string    `json:"number"`
	Timecode   uint64    `json:"timecode"`
	ProducerMs int64     `json:"producerMs"`
	ServerMs   int64     `json:"serverMs"`
	DurationMs int64     `json:"durationMs"`
	Size       int64     `json:"size"`
	HeaderID   string    `json:"headerId"`
	Header     []byte    `json:"header"` // base64 (encoding/json's []byte)
	Tags       []metaTag `json:"tags,omitempty"`
	Frames     []byte    `json:"frames,omitempty"` // the frame table (frames.go), base64
}

type metaTag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func encodeMeta(f *fragment.Fragment, size int64, header, frames []byte) ([]byte, error) {
	m := recordMeta{
		V: metaVersion, Number: f.Number, Timecode: f.Timecode,
		ProducerMs: f.ProducerTime.UnixMilli(), ServerMs: f.ServerTime.UnixMilli(),
		DurationMs: f.Duration.Milliseconds(), Size: size, HeaderID: f.HeaderID, Header: header,
		Frames: frames,
	}
	for _, t := range f.Tags {
		m.Tags = append(m.Tags, metaTag(t))
	}
	return json.Marshal(&m)
}

// decodeMeta is encodeMeta's inverse (Seq comes from the fragment number).
func decodeMeta(b []byte) (*fragment.Fragment, []byte, error) {
	var m recordMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("record meta: %w", err)
	}
	if m.V != metaVersion {
		return nil, nil, fmt.Errorf("record meta version %d; this kvsd reads version %d", m.V, metaVersion)
	}
	_, seq, err := fragment.ParseNumber(m.Number)
	if err != nil {
		return nil, nil, fmt.Errorf("record meta: %w", err)
	}
	f := &fragment.Fragment{
		Seq: seq, Number: m.Number, Timecode: m.Timecode,
		ProducerTime: time.UnixMilli(m.ProducerMs).UTC(), ServerTime: time.UnixMilli(m.ServerMs).UTC(),
		Duration: time.Duration(m.DurationMs) * time.Millisecond, Size: m.Size, HeaderID: m.HeaderID,
	}
	for _, t := range m.Tags {
		f.Tags = append(f.Tags, mkv.SimpleTag(t))
	}
	return f, m.Header, nil
}

// DecodeMeta reads a record's self-description (Record.Meta): the fragment's index entry
// without its Location, and its MKV header. Tools that rebuild the index from media use it
// (kvsd fsck --repair).
func DecodeMeta(b []byte) (*fragment.Fragment, []byte, error) { return decodeMeta(b) }
