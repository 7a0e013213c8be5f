package imagegen

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/stream"
)

func i64(v int64) *int64 { return &v }
func intp(v int) *int    { return &v }

func TestGetImagesValidation(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	start := time.Now().Truncate(time.Second)
	ok := GetImagesInput{Kind: fragstore.ProducerTime, Start: start, End: start.Add(10 * time.Second), Format: "JPEG"}
	for name, c := range map[string]struct {
		mutate func(*GetImagesInput)
		msg    string
	}{
		"format":          {func(in *GetImagesInput) { in.Format = "GIF" }, "Format"},
		"missing format":  {func(in *GetImagesInput) { in.Format = "" }, "Format"},
		"end before":      {func(in *GetImagesInput) { in.End = in.Start.Add(-time.Millisecond) }, "EndTimestamp"},
		"window":          {func(in *GetImagesInput) { in.End = in.Start.Add(300*time.Second + time.Millisecond) }, "must not exceed"},
		"interval":        {func(in *GetImagesInput) { in.SamplingInterval = i64(199) }, "SamplingInterval"},
		"max results 0":   {func(in *GetImagesInput) { in.MaxResults = i64(0) }, "MaxResults"},
		"max results 101": {func(in *GetImagesInput) { in.MaxResults = i64(101) }, "MaxResults"},
		"width":           {func(in *GetImagesInput) { in.WidthPixels = intp(3841) }, "WidthPixels"},
		"height":          {func(in *GetImagesInput) { in.HeightPixels = intp(0) }, "HeightPixels"},
		"quality":         {func(in *GetImagesInput) { in.FormatConfig = map[string]string{"JPEGQuality": "101"} }, "JPEGQuality"},
		"config key":      {func(in *GetImagesInput) { in.FormatConfig = map[string]string{"Quality": "1"} }, "FormatConfig"},
		"token chars":     {func(in *GetImagesInput) { in.NextToken = "not a token!" }, "NextToken"},
		"token foreign":   {func(in *GetImagesInput) { in.NextToken = "eyJrIjowfQ==" }, "NextToken"},
	} {
		in := ok
		c.mutate(&in)
		_, _, err := e.gen.GetImages(context.Background(), st, in)
		require.ErrorIs(t, err, stream.ErrInvalidArgument, name)
		require.Contains(t, err.Error(), c.msg, name)
	}
	in := ok
	in.End = in.Start.Add(300 * time.Second)
	in.SamplingInterval = i64(200)
	in.MaxResults = i64(100)
	images, next, err := e.gen.GetImages(context.Background(), st, in)
	require.NoError(t, err, "the limits themselves are allowed")
	require.Len(t, images, 100)
	require.NotEmpty(t, next)

	none := e.createStream("none", 0)
	_, _, err = e.gen.GetImages(context.Background(), none, ok)
	require.ErrorIs(t, err, stream.ErrNoDataRetention)
}

// TestGetImagesSamplesPagesAndGaps: one entry per sample time, NO_MEDIA only where no fragment
// covers the time, MEDIA_ERROR where it cannot be decoded, tokens resume exactly.
func TestGetImagesSamplesPagesAndGaps(t *testing.T) {
	e := newEnv(t)
	e.start()
	st := e.createStream("cam", 24)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	// Fragments at 0 s and 1 s, a gap at 2 s, an undecodable one at 3 s; no tags needed.
	e.put("cam", frag{start: base}, frag{start: base.Add(time.Second)}, frag{start: base.Add(3 * time.Second), data: "bad"})

	in := GetImagesInput{Kind: fragstore.ProducerTime, Start: base.Add(-500 * time.Millisecond), End: base.Add(4 * time.Second),
		SamplingInterval: i64(500), Format: "PNG", MaxResults: i64(4)}
	var all []Image
	for {
		images, next, err := e.gen.GetImages(context.Background(), st, in)
		require.NoError(t, err)
		require.LessOrEqual(t, len(images), 4)
		all = append(all, images...)
		if next == "" {
			break
		}
		in.NextToken = next
	}
	require.Len(t, all, 10, "-0.5 s … 4 s every 0.5 s")
	want := []string{NoMedia, "f0", "f480", "f0", "f480", NoMedia, NoMedia, MediaError, MediaError, NoMedia}
	for i, img := range all {
		require.True(t, img.Time.Equal(base.Add(time.Duration(i*500-500)*time.Millisecond)), "entry %d at %s", i, img.Time)
		if img.Error != "" {
			require.Equal(t, want[i], img.Error, "entry %d", i)
			require.Nil(t, img.Content)
			continue
		}
		require.Equal(t, want[i]+" fmt=1 q=80 0x0", string(img.Content), "entry %d", i)
	}

	// A token does not carry over to another query.
	in.NextToken = ""
	_, next, err := e.gen.GetImages(context.Background(), st, in)
	require.NoError(t, err)
	in.NextToken, in.SamplingInterval = next, i64(1000)
	_, _, err = e.gen.GetImages(context.Background(), st, in)
	require.True(t, errors.Is(err, stream.ErrInvalidArgument), "%v", err)

	// Server timeline: the fragments arrived at their producer times here (put's default).
	in = GetImagesInput{Kind: fragstore.ServerTime, Start: base.Add(1200 * time.Millisecond), End: base.Add(1200 * time.Millisecond), Format: "JPEG"}
	images, next, err := e.gen.GetImages(context.Background(), st, in)
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, images, 1, "a range shorter than the interval gives the image at the start")
	require.Equal(t, "f200 fmt=0 q=80 0x0", string(images[0].Content))
}
