package app_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
)

// kvsdDescribeFragments answers the producer's tags of each fragment asked for (which
// ListFragments does not carry), with ListFragments' fields, in the order asked; an unknown or
// malformed number is the same error GetMediaForFragmentList gives.
func TestDescribeFragments(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.WithTags(t, kvstest.TestPattern(t, 3, start), [][]mkv.SimpleTag{
		{{Name: "AWS_KINESISVIDEO_IMAGE_GENERATION", Value: ""}, {Name: "site", Value: "gate 2"}},
		nil,
		{{Name: "site", Value: "gate 3"}},
	})
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media))), 3)
	listed := srv.ListFragments(t, "cam")
	require.Len(t, listed, 3)

	type tag struct{ Name, Value string }
	var out struct {
		Fragments []struct {
			FragmentNumber               string
			FragmentSizeInBytes          int64
			ProducerTimestamp            float64
			FragmentLengthInMilliseconds int64
			Tags                         []tag
		}
	}
	status, _, body := srv.Call(t, "kvsdDescribeFragments", map[string]any{"StreamName": "cam",
		"FragmentNumbers": []string{listed[2].Number, listed[0].Number, listed[1].Number}})
	require.Equal(t, 200, status, string(body))
	require.NoError(t, json.Unmarshal(body, &out))
	require.Len(t, out.Fragments, 3)
	require.Equal(t, listed[2].Number, out.Fragments[0].FragmentNumber, "in the order asked")
	require.Equal(t, []tag{{"site", "gate 3"}}, out.Fragments[0].Tags)
	require.Equal(t, []tag{{"AWS_KINESISVIDEO_IMAGE_GENERATION", ""}, {"site", "gate 2"}}, out.Fragments[1].Tags)
	require.Empty(t, out.Fragments[2].Tags)
	require.Equal(t, listed[0].Length, out.Fragments[1].FragmentLengthInMilliseconds)
	require.Positive(t, out.Fragments[1].FragmentSizeInBytes)
	require.InDelta(t, float64(start.UnixMilli())/1000, out.Fragments[1].ProducerTimestamp, 0.001)

	// A number of this stream that it does not hold: the first one's, with another last digit.
	var other string
	for d := '0'; d <= '9' && other == ""; d++ {
		other = listed[0].Number[:len(listed[0].Number)-1] + string(d)
		for _, f := range listed {
			if f.Number == other {
				other = ""
			}
		}
	}
	status, _, body = srv.Call(t, "kvsdDescribeFragments", map[string]any{"StreamName": "cam", "FragmentNumbers": []string{other}})
	require.Equal(t, 404, status, string(body))
	require.Contains(t, string(body), "ResourceNotFoundException")
	status, _, body = srv.Call(t, "kvsdDescribeFragments", map[string]any{"StreamName": "cam", "FragmentNumbers": []string{"12"}})
	require.Equal(t, 400, status, string(body))
	require.Contains(t, string(body), "InvalidArgumentException")
	status, _, body = srv.Call(t, "kvsdDescribeFragments", map[string]any{"StreamName": "cam"})
	require.Equal(t, 400, status, string(body))
	require.Contains(t, string(body), "FragmentNumbers must list 1-1000")
}
