package imagegen

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/stream"
)

const galleryAccount = "111122223333"

func TestGallery(t *testing.T) {
	d := &objstore.Dir{Root: t.TempDir()}
	g := &Generator{cfg: Config{Objects: d, AccountID: galleryAccount}}
	st := &stream.Stream{Name: "cam", ImageGeneration: &stream.ImageGenerationConfiguration{
		DestinationConfig: &stream.ImageGenerationDestinationConfig{Uri: "s3://images/site/cam/"}}}
	ctx := context.Background()
	put := func(key string, meta map[string]string) {
		require.NoError(t, d.Put(ctx, "images", key, []byte("jpeg "+key), "image/jpeg", meta))
	}
	uuid := "0f1c2d3e-4a5b-5c6d-8e9f-a0b1c2d3e4f5"
	key := func(prefix string, ms string) string {
		if prefix != "" {
			prefix += "_"
		}
		return "site/cam/" + prefix + galleryAccount + "_cam_" + ms + "_" + uuid + ".jpg"
	}
	meta := map[string]string{MetaProducerTimestamp: "1700000001000", MetaServerTimestamp: "1700000001042",
		MetaFragmentNumber: "9123", "zone": "A"}
	put(key("", "1700000001000"), meta)
	put(key("front", "1700000002000"), meta)
	put(key("", "1700000003000"), nil)
	// Not images of cam: another stream (also one whose name ends in _cam), another folder,
	// other names.
	put("site/cam/"+galleryAccount+"_a_cam_1700000004000_"+uuid+".jpg", nil)
	put("site/cam/"+galleryAccount+"_door_1700000004000_"+uuid+".jpg", nil)
	put("site/cam/sub/"+galleryAccount+"_cam_1700000004000_"+uuid+".jpg", nil)
	put("site/cam/notes.txt", nil)
	put("site/"+galleryAccount+"_cam_1700000004000_"+uuid+".jpg", nil)

	imgs, next, err := g.ListDelivered(ctx, st, ListDeliveredInput{})
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, imgs, 3)
	require.Equal(t, []string{key("", "1700000003000"), key("front", "1700000002000"), key("", "1700000001000")},
		[]string{imgs[0].Key, imgs[1].Key, imgs[2].Key}, "newest first")
	require.Equal(t, DeliveredImage{Key: key("", "1700000001000"), URI: "s3://images/" + key("", "1700000001000"),
		Time: time.UnixMilli(1700000001000), Size: int64(len("jpeg " + key("", "1700000001000"))), ContentType: "image/jpeg",
		ProducerTime: time.UnixMilli(1700000001000), ServerTime: time.UnixMilli(1700000001042), FragmentNumber: "9123",
		Tags: map[string]string{"zone": "A"}}, imgs[2])

	// Pages of one, and a time range.
	var keys []string
	for tok := ""; ; {
		page, n, err := g.ListDelivered(ctx, st, ListDeliveredInput{MaxResults: 1, NextToken: tok})
		require.NoError(t, err)
		require.Len(t, page, 1)
		keys = append(keys, page[0].Key)
		if tok = n; tok == "" {
			break
		}
	}
	require.Len(t, keys, 3)
	require.Equal(t, imgs[2].Key, keys[2])
	imgs, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{From: time.UnixMilli(1700000002000), To: time.UnixMilli(1700000002000)})
	require.NoError(t, err)
	require.Len(t, imgs, 1)
	require.Equal(t, key("front", "1700000002000"), imgs[0].Key)
	// After a time (From alone, inclusive), a page at a time: the two newest, the last page
	// without a token.
	page, tok, err := g.ListDelivered(ctx, st, ListDeliveredInput{From: time.UnixMilli(1700000002000), MaxResults: 1})
	require.NoError(t, err)
	require.Equal(t, []string{key("", "1700000003000")}, keysOf(page))
	require.NotEmpty(t, tok)
	page, tok, err = g.ListDelivered(ctx, st, ListDeliveredInput{From: time.UnixMilli(1700000002000), MaxResults: 1, NextToken: tok})
	require.NoError(t, err)
	require.Equal(t, []string{key("front", "1700000002000")}, keysOf(page))
	require.Empty(t, tok)
	imgs, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{From: time.UnixMilli(1700000001001)})
	require.NoError(t, err)
	require.Equal(t, []string{key("", "1700000003000"), key("front", "1700000002000")}, keysOf(imgs), "after excludes the image a millisecond before")
	// Before a time (To alone, inclusive).
	imgs, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{To: time.UnixMilli(1700000002000)})
	require.NoError(t, err)
	require.Equal(t, []string{key("front", "1700000002000"), key("", "1700000001000")}, keysOf(imgs))
	imgs, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{From: time.UnixMilli(1700000003001)})
	require.NoError(t, err)
	require.Empty(t, imgs, "after the newest")
	_, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{From: time.UnixMilli(1700000003000), To: time.UnixMilli(1700000002000)})
	require.ErrorIs(t, err, stream.ErrInvalidArgument, "before earlier than after")

	_, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{MaxResults: 101})
	require.ErrorIs(t, err, stream.ErrInvalidArgument)
	_, _, err = g.ListDelivered(ctx, st, ListDeliveredInput{NextToken: "!!"})
	require.ErrorIs(t, err, stream.ErrInvalidArgument)
	imgs, _, err = g.ListDelivered(ctx, &stream.Stream{Name: "bare"}, ListDeliveredInput{})
	require.NoError(t, err)
	require.Empty(t, imgs, "no configuration, no destination")
	_, _, err = g.OpenDelivered(ctx, &stream.Stream{Name: "bare"}, key("", "1700000001000"))
	require.ErrorIs(t, err, stream.ErrInvalidArgument)

	body, ctype, err := g.OpenDelivered(ctx, st, key("front", "1700000002000"))
	require.NoError(t, err)
	b, _ := io.ReadAll(body)
	require.NoError(t, body.Close())
	require.Equal(t, "jpeg "+key("front", "1700000002000"), string(b))
	require.Equal(t, "image/jpeg", ctype)
	for _, k := range []string{"site/cam/notes.txt", "site/cam/" + galleryAccount + "_door_1700000004000_" + uuid + ".jpg",
		"site/cam/../cam/" + galleryAccount + "_cam_1700000001000_" + uuid + ".jpg", key("", "1700000009000")} {
		_, _, err := g.OpenDelivered(ctx, st, k)
		require.True(t, errors.Is(err, ErrNoImage), "%s: %v", k, err)
	}
}

func keysOf(imgs []DeliveredImage) []string {
	keys := []string{}
	for _, img := range imgs {
		keys = append(keys, img.Key)
	}
	return keys
}
