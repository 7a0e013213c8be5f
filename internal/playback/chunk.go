package playback

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/mkv"
)

// AWS tag names GetMedia and GetMediaForFragmentList put around each fragment (§4.2).
const (
	TagFragmentNumber    = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
	TagServerTimestamp   = "AWS_KINESISVIDEO_SERVER_TIMESTAMP"
	TagProducerTimestamp = "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"
	TagMillisBehindNow   = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"
	TagContinuationToken = "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
	TagErrorCode         = "AWS_KINESISVIDEO_ERROR_CODE"
	TagErrorID           = "AWS_KINESISVIDEO_ERROR_ID"
)

// seconds formats a time as KVS's tags do: epoch seconds with three decimals.
func seconds(t time.Time) string {
	ms := t.UnixMilli()
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// appendChunk builds one self-contained MKV document for f: the producer's header verbatim (but
// for a Segment size, which becomes "unknown": it may have counted a whole uploaded file), the
// AWS tags, the stored cluster and producer tags verbatim, and (for GetMedia) the trailing tags.
func appendChunk(dst, header, media []byte, f *fragment.Fragment, trailer []mkv.SimpleTag) []byte {
	dst = append(dst, mkv.UnknownSegmentSize(header)...)
	dst = mkv.AppendTags(dst, []mkv.SimpleTag{
		{Name: TagFragmentNumber, Value: f.Number},
		{Name: TagServerTimestamp, Value: seconds(f.ServerTime)},
		{Name: TagProducerTimestamp, Value: seconds(f.ProducerTime)},
	})
	dst = append(dst, media...)
	if trailer != nil {
		dst = mkv.AppendTags(dst, trailer)
	}
	return dst
}

// liveTrailer is GetMedia's end-of-chunk tags; the continuation token is the fragment number.
func liveTrailer(f *fragment.Fragment, now time.Time) []mkv.SimpleTag {
	behind := max(now.Sub(f.ServerTime.Add(f.Duration)).Milliseconds(), 0)
	return []mkv.SimpleTag{
		{Name: TagMillisBehindNow, Value: strconv.FormatInt(behind, 10)},
		{Name: TagContinuationToken, Value: f.Number},
	}
}

// appendErrorChunk is the in-stream error GetMedia sends when it must stop mid-stream: a
// header, then the error tags with the fragment number and no server timestamp (that absence is
// how the KVS parser library recognises an error chunk).
func appendErrorChunk(dst, header []byte, number string, id int, code string) []byte {
	dst = append(dst, mkv.UnknownSegmentSize(header)...)
	return mkv.AppendTags(dst, []mkv.SimpleTag{
		{Name: TagFragmentNumber, Value: number},
		{Name: TagErrorCode, Value: code},
		{Name: TagErrorID, Value: strconv.Itoa(id)},
	})
}

// errorOf is the in-stream error id and code for a failed fragment read: a key error's own
// (4500-4506, KVS's KMS errors), else INTERNAL_ERROR (5000), which a damaged record is too.
func errorOf(err error) (int, string) {
	if code, ok := keys.CodeOf(err); ok {
		return int(code), code.String()
	}
	return 5000, "INTERNAL_ERROR"
}
