package fragstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/mkv"
)

func TestMetaRoundTrip(t *testing.T) {
	f := &fragment.Fragment{
		Seq: 42, Number: fragment.FormatNumber(1700000000123, 42), Timecode: 1700000000013,
		ProducerTime: time.UnixMilli(1700000000013).UTC(), ServerTime: time.UnixMilli(1700000000626).UTC(),
		Duration: 2 * time.Second, Size: 3, HeaderID: "h",
		Tags: []mkv.SimpleTag{{Name: fragment.TagNotification, Value: "v"}},
	}
	b, err := encodeMeta(f, 3, []byte("hdr"), nil)
	require.NoError(t, err)
	require.JSONEq(t, `{"v":1,"number":"91700000000123000000000000000000000000000000042","timecode":1700000000013,`+
		`"producerMs":1700000000013,"serverMs":1700000000626,"durationMs":2000,"size":3,"headerId":"h",`+
		`"header":"aGRy","tags":[{"name":"AWS_KINESISVIDEO_NOTIFICATION","value":"v"}]}`, string(b))
	got, hdr, err := decodeMeta(b)
	require.NoError(t, err)
	require.Equal(t, f, got)
	require.Equal(t, []byte("hdr"), hdr)

	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["v"] = 2
	b2, _ := json.Marshal(m)
	_, _, err = decodeMeta(b2)
	require.ErrorContains(t, err, "version 2")
}
