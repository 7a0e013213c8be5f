package producer_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/producer"
)

// A file sent with Fast: every frame arrives with start + its own time, in
// fragments that start on keyframes once the target duration is reached.
func TestRunFileEveryFrameStored(t *testing.T) {
	srv := kvstest.Start(t)
	createStream(t, srv, "cam", 24)
	data := clip(t, 4, 10) // a keyframe every 0.4 s
	start := time.UnixMilli(1_700_000_000_000)
	cfg := baseConfig(srv, "cam")
	cfg.Fast, cfg.StartTime, cfg.FragmentDuration = true, start, time.Second
	var evs events
	cfg.OnEvent = evs.add
	p, err := producer.New(cfg)
	require.NoError(t, err)
	st, err := p.Run(context.Background(), producer.NewMKVSource(bytes.NewReader(data), false))
	require.NoError(t, err)
	require.Equal(t, int64(100), st.Frames)
	require.Zero(t, st.Pending)
	require.Zero(t, st.Skipped+st.Dropped)

	stored := storedFragments(t, srv, "cam")
	// 0.4 s GOPs and a 1 s target: fragments of 3 GOPs (0, 1.2, 2.4, 3.6 s).
	require.Len(t, stored, 4)
	require.Equal(t, int64(4), st.Persisted)
	for i, f := range stored {
		require.Equal(t, start.UnixMilli()+int64(i)*1200, f.Producer, "fragment %d producer time", i)
		require.True(t, f.Frames[0].Keyframe, "fragment %d starts with a keyframe", i)
	}
	requireAllFrames(t, sourceFrames(t, data), stored, start)
	require.Equal(t, 4, evs.count(producer.EventFragmentPersisted), evs.String())
}

// The minimal image tag is the SDK's 85 bytes (§5.2), after the fragment's
// frames; with --image-every 2 only fragments 0, 2, … carry it.
func TestImageTagBytesEveryNth(t *testing.T) {
	srv := kvstest.Start(t)
	createStream(t, srv, "cam", 24)
	data := clip(t, 4, 25)
	cfg := baseConfig(srv, "cam")
	cfg.Fast, cfg.FragmentDuration = true, time.Second
	cfg.ImageGeneration, cfg.ImageEvery = true, 2
	p, err := producer.New(cfg)
	require.NoError(t, err)
	_, err = p.Run(context.Background(), producer.NewMKVSource(bytes.NewReader(data), false))
	require.NoError(t, err)

	imageTag, _ := hex.DecodeString(strings.ReplaceAll("1254c367 0100000000000049 7373 010000000000003f 67c8 0100000000000035 45a3 0100000000000021", " ", ""))
	imageTag = append(imageTag, "AWS_KINESISVIDEO_IMAGE_GENERATION"...)
	imageTag = append(imageTag, 0x44, 0x87, 1, 0, 0, 0, 0, 0, 0, 0)
	require.Len(t, imageTag, 85)

	stored := storedFragments(t, srv, "cam")
	require.Len(t, stored, 4)
	for i, f := range stored {
		at := bytes.Index(f.Media, imageTag)
		if i%2 == 1 {
			require.Equal(t, -1, at, "fragment %d is not tagged", i)
			continue
		}
		require.Positive(t, at, "fragment %d carries the image tag", i)
		// After the last frame, before kvsd's own trailing tags.
		last := f.Frames[len(f.Frames)-1].Data
		require.Greater(t, at, bytes.LastIndex(f.Media, last), "fragment %d: the tag follows its frames", i)
	}
}
