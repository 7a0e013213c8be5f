package imagegen

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/stream"
)

func TestSampleOffsets(t *testing.T) {
	ms := time.Millisecond
	at := func(msec int64) time.Time { return time.UnixMilli(1700000001000 + msec) } // on every grid below
	for _, c := range []struct {
		start         time.Time
		dur, interval time.Duration
		want          []time.Duration
	}{
		{at(0), 1000 * ms, 1000 * ms, []time.Duration{0}},
		{at(0), 2500 * ms, 1000 * ms, []time.Duration{0, 1000 * ms, 2000 * ms}},
		{at(0), 1000 * ms, 200 * ms, []time.Duration{0, 200 * ms, 400 * ms, 600 * ms, 800 * ms}},
		{at(0), 1000 * ms, 3000 * ms, []time.Duration{0}},
		{at(0), 0, 200 * ms, []time.Duration{0}}, // a single frame on the grid gets its image
		{at(50), 0, 200 * ms, nil},               // off the grid it does not
		// Multiples of the interval on the clock, not offsets from the fragment's start.
		{at(833), 833 * ms, 200 * ms, []time.Duration{167 * ms, 367 * ms, 567 * ms, 767 * ms}},
		{at(1666), 834 * ms, 200 * ms, []time.Duration{134 * ms, 334 * ms, 534 * ms, 734 * ms}},
		{at(833), 833 * ms, 3000 * ms, nil},
		{at(2499), 833 * ms, 3000 * ms, []time.Duration{501 * ms}},
		{at(3000), 833 * ms, 3000 * ms, []time.Duration{0}},
		{at(0), 200 * ms, 200 * ms, []time.Duration{0}}, // the end belongs to the next fragment
		{time.UnixMilli(-150), 100 * ms, 200 * ms, nil}, // before 1970: the next multiple, 0, is past its end
		{time.UnixMilli(-250), 100 * ms, 200 * ms, []time.Duration{50 * ms}},
	} {
		require.Equal(t, c.want, sampleOffsets(c.start, c.dur, c.interval), "%s for %s every %s", c.start.UnixMilli(), c.dur, c.interval)
	}
}

// TestSamplesEvenlySpacedAcrossKvssinkFragments: kvssink cuts a fragment at every keyframe,
// 833 ms at GOP 25 and 30 fps (25 frames of 33.3 ms, on a millisecond clock 833 or 834 ms).
// At 200 ms the stream gets 5 images a second, 200 ms apart everywhere (before, 6 a second
// with two 33 ms apart at every boundary); at 3000 ms one image per 3 s.
func TestSamplesEvenlySpacedAcrossKvssinkFragments(t *testing.T) {
	origin := time.UnixMilli(1700000000000).Add(17 * time.Millisecond) // a camera's clock is on no grid
	frameNs := int64(time.Second) / 30
	for _, c := range []struct {
		interval time.Duration
		perMin   int
	}{{200 * time.Millisecond, 300}, {3000 * time.Millisecond, 20}} {
		var times []time.Time
		for frag := range 72 { // 72 × 25 frames = 60 s
			// Fragment times as kvsd stores them: the cluster timecode in ms.
			start := origin.Add(time.Duration(int64(frag*25) * frameNs)).Truncate(time.Millisecond)
			next := origin.Add(time.Duration(int64((frag+1)*25) * frameNs)).Truncate(time.Millisecond)
			for _, off := range sampleOffsets(start, next.Sub(start), c.interval) {
				times = append(times, start.Add(off))
			}
		}
		require.InDelta(t, c.perMin, len(times), 1, "images per minute at %s", c.interval)
		for i := 1; i < len(times); i++ {
			require.Equal(t, c.interval, times[i].Sub(times[i-1]), "image %d at %s", i, c.interval)
			require.Zero(t, times[i].UnixMilli()%c.interval.Milliseconds(), "on the grid")
		}
	}
}

func TestObjectKeysFollowKVS(t *testing.T) {
	at := time.UnixMilli(1690707290324)
	id := imageID("arn:aws:kinesisvideo:us-east-1:111122223333:stream/demo-stream/1690000000000", "91343852333181432392682062607743920146159169392", at)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`), id)
	require.Equal(t, id, imageID("arn:aws:kinesisvideo:us-east-1:111122223333:stream/demo-stream/1690000000000", "91343852333181432392682062607743920146159169392", at), "deterministic")
	require.NotEqual(t, id, imageID("arn:aws:kinesisvideo:us-east-1:111122223333:stream/demo-stream/1690000000001", "91343852333181432392682062607743920146159169392", at), "per stream incarnation")
	require.NotEqual(t, id, imageID("arn:aws:kinesisvideo:us-east-1:111122223333:stream/demo-stream/1690000000000", "91343852333181432392682062607743920146159169392", at.Add(time.Millisecond)), "per image time")

	require.Equal(t, "111122223333_demo-stream_1690707290324_"+id+".jpg", objectKey("", "", account, "demo-stream", at, id, imaging.JPEG))
	require.Equal(t, "a/b/cam1_111122223333_demo-stream_1690707290324_"+id+".png", objectKey("a/b", "cam1", account, "demo-stream", at, id, imaging.PNG))

	for uri, want := range map[string][2]string{
		"s3://images":           {"images", ""},
		"s3://images/":          {"images", ""},
		"s3://images/a/b/":      {"images", "a/b"},
		"s3://images/prefix":    {"images", "prefix"},
		"s3://images//x//":      {"images", "x"},
		"s3://my.bucket-1/deep": {"my.bucket-1", "deep"},
	} {
		b, p, err := destination(uri)
		require.NoError(t, err, uri)
		require.Equal(t, want, [2]string{b, p}, uri)
	}
	_, _, err := destination("sns://x")
	require.Error(t, err)
}

func TestMetadataCarriesFragmentFactsAndCustomTags(t *testing.T) {
	f := &fragment.Fragment{Number: "9000", ProducerTime: time.UnixMilli(1690707290324), ServerTime: time.UnixMilli(1690707289209),
		Tags: []mkv.SimpleTag{{Name: fragment.TagImageGeneration}, {Name: fragment.TagImagePrefix, Value: "cam1"},
			{Name: "Zone", Value: "A"}, {Name: "camera id", Value: "7"}, {Name: "aws_kinesisvideo_fragment_number", Value: "spoof"}}}
	require.Equal(t, map[string]string{
		"aws_kinesisvideo_producer_timestamp": "1690707290324",
		"aws_kinesisvideo_server_timestamp":   "1690707289209",
		"aws_kinesisvideo_fragment_number":    "9000",
		"zone":                                "A",
		"camera_id":                           "7",
	}, metadata(f))
	require.Equal(t, "cam1", imagePrefix(f))
}

func TestEligibilityAndSpec(t *testing.T) {
	st := &stream.Stream{RetentionHours: 1, ImageGeneration: imageConfig("s3://b", 1000)}
	tagged := &fragment.Fragment{Tags: []mkv.SimpleTag{{Name: fragment.TagImageGeneration}}}
	plain := &fragment.Fragment{}
	require.True(t, enabled(st))
	require.True(t, eligible(st, tagged))
	require.False(t, eligible(st, plain))
	st.Tags = map[string]string{StreamTag: AllFragments}
	require.True(t, eligible(st, plain))
	st.Tags[StreamTag] = TaggedFragments
	require.False(t, eligible(st, plain))

	st.RetentionHours = 0
	require.False(t, enabled(st), "no retention, no persisted fragments")
	st.RetentionHours = 1
	st.ImageGeneration.Status = "DISABLED"
	require.False(t, enabled(st))

	w, h := 320, 240
	require.Equal(t, imaging.Spec{Format: imaging.JPEG, Quality: 80}, specOf("JPEG", nil, nil, nil))
	require.Equal(t, imaging.Spec{Format: imaging.JPEG, Quality: 95, Width: 320}, specOf("JPEG", map[string]string{"JPEGQuality": "95"}, &w, nil))
	require.Equal(t, imaging.Spec{Format: imaging.PNG, Quality: 80, Width: 320, Height: 240}, specOf("PNG", nil, &w, &h))
	require.Equal(t, "a-b_c", metaKey("A-B c"))
}
