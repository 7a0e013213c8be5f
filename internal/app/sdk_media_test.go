package app_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"
	mtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia/types"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/kvstest"
)

// The AWS SDK for Go v2 as a reader, each client at the endpoint GetDataEndpoint names for
// its API: ListFragments with its paginator, GetMediaForFragmentList, and GetMedia with
// every start selector, the live tail and a continuation token, all byte-identical.
func TestSDKReadsMedia(t *testing.T) {
	srv := kvstest.Start(t)
	ctx := context.Background()
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 5, start)
	_, frags := kvstest.Clusters(t, media)
	before := time.Now().Add(-time.Second)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, 5)

	// ListFragments pages by MaxResults; all of the stream's fragments come back once each.
	list := srv.ArchivedMedia(t, "cam", kvtypes.APINameListFragments)
	pages := kinesisvideoarchivedmedia.NewListFragmentsPaginator(list, &kinesisvideoarchivedmedia.ListFragmentsInput{
		StreamName: aws.String("cam"), MaxResults: aws.Int64(2),
		FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(before), EndTimestamp: aws.Time(time.Now().Add(time.Minute))}},
	})
	got := map[string]amtypes.Fragment{}
	var nPages int
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Fragments), 2)
		nPages++
		for _, f := range page.Fragments {
			got[aws.ToString(f.FragmentNumber)] = f
		}
	}
	require.Equal(t, 3, nPages)
	require.Len(t, got, 5)
	for i, n := range numbers {
		f, ok := got[n]
		require.True(t, ok, n)
		require.Equal(t, int64(len(frags[i])), f.FragmentSizeInBytes)
		require.WithinDuration(t, start.Add(time.Duration(i)*time.Second), *f.ProducerTimestamp, time.Millisecond)
		require.WithinDuration(t, time.Now(), *f.ServerTimestamp, time.Minute)
		require.InDelta(t, 1000, f.FragmentLengthInMilliseconds, 40)
	}

	// The producer-time range is inclusive on fragment start: seconds 1 to 3 are fragments 1–3.
	out, err := list.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam"),
		FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeProducerTimestamp,
			TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(start.Add(time.Second)), EndTimestamp: aws.Time(start.Add(3 * time.Second))}}})
	require.NoError(t, err)
	var inRange []string
	for _, f := range out.Fragments {
		inRange = append(inRange, aws.ToString(f.FragmentNumber))
	}
	require.ElementsMatch(t, numbers[1:4], inRange)

	// GetMediaForFragmentList: the fragments asked for, in that order, byte for byte.
	fl := srv.ArchivedMedia(t, "cam", kvtypes.APINameGetMediaForFragmentList)
	mout, err := fl.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{
		StreamName: aws.String("cam"), Fragments: []string{numbers[3], numbers[0]}})
	require.NoError(t, err)
	require.Equal(t, "video/webm", aws.ToString(mout.ContentType))
	cs := readChunks(t, mout.Payload, -1)
	require.NoError(t, mout.Payload.Close())
	require.Len(t, cs, 2)
	require.Equal(t, frags[3], cs[0].media)
	require.Equal(t, frags[0], cs[1].media)

	// GetMedia, one selector after another. Each read takes the chunks it expects and closes
	// the body, which also frees the reader slot (3 per stream).
	gm := srv.Media(t, "cam")
	getMedia := func(sel mtypes.StartSelector, n int) []chunk {
		t.Helper()
		out, err := gm.GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("cam"), StartSelector: &sel})
		require.NoError(t, err, "%+v", sel)
		defer out.Payload.Close()
		require.Equal(t, "video/webm", aws.ToString(out.ContentType))
		cs := readChunks(t, out.Payload, n)
		require.Len(t, cs, n, "%+v", sel)
		return cs
	}
	cs = getMedia(mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeEarliest}, 5)
	for i, c := range cs {
		require.Equal(t, frags[i], c.media, "fragment %d", i)
		require.Equal(t, numbers[i], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
		require.Equal(t, numbers[i], c.trailer["AWS_KINESISVIDEO_CONTINUATION_TOKEN"])
	}
	cs = getMedia(mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeContinuationToken,
		ContinuationToken: aws.String(numbers[2])}, 2)
	require.Equal(t, frags[3], cs[0].media, "resumes after the chunk the token came with")
	cs = getMedia(mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeFragmentNumber,
		AfterFragmentNumber: aws.String(numbers[0])}, 4)
	require.Equal(t, numbers[1], cs[0].awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	cs = getMedia(mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeProducerTimestamp,
		StartTimestamp: aws.Time(start.Add(2500 * time.Millisecond))}, 3)
	require.Equal(t, frags[2], cs[0].media, "starts with the fragment holding the time")
	cs = getMedia(mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeServerTimestamp,
		StartTimestamp: aws.Time(before)}, 5)
	require.Equal(t, frags[0], cs[0].media)

	// NOW: the body stays open and new fragments are pushed as they are persisted.
	more := kvstest.TestPattern(t, 2, start.Add(10*time.Second))
	_, frags2 := kvstest.Clusters(t, more)
	live, err := gm.GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("cam"),
		StartSelector: &mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeNow}})
	require.NoError(t, err)
	defer live.Payload.Close()
	numbers2 := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(more)))
	cs = readChunks(t, live.Payload, 2)
	require.Len(t, cs, 2)
	for i, c := range cs {
		require.Equal(t, frags2[i], c.media)
		require.Equal(t, numbers2[i], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	}
}

// The SDK sees kvsd's errors as the typed exceptions its callers switch on.
func TestSDKReadErrors(t *testing.T) {
	srv := kvstest.Start(t)
	ctx := context.Background()
	srv.CreateStream(t, "cam", 24)
	srv.CreateStream(t, "live", 0)

	list := srv.ArchivedMedia(t, "cam", kvtypes.APINameListFragments)
	all := &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
		TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(time.Unix(0, 0)), EndTimestamp: aws.Time(time.Now())}}
	_, err := list.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("nope"), FragmentSelector: all})
	var amNotFound *amtypes.ResourceNotFoundException
	require.ErrorAs(t, err, &amNotFound)
	_, err = list.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam"), MaxResults: aws.Int64(1001), FragmentSelector: all})
	var amInvalid *amtypes.InvalidArgumentException
	require.ErrorAs(t, err, &amInvalid)
	_, err = list.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam")})
	require.ErrorAs(t, err, &amInvalid, "FragmentSelector is required without NextToken")
	_, err = list.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{
		StreamName: aws.String("cam"), Fragments: []string{fragment.FormatNumber(time.Now().UnixMilli(), 7)}})
	require.ErrorAs(t, err, &amNotFound)
	_, err = list.GetImages(ctx, &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String("live"),
		ImageSelectorType: amtypes.ImageSelectorTypeServerTimestamp, Format: amtypes.FormatJpeg,
		StartTimestamp: aws.Time(time.Unix(0, 0)), EndTimestamp: aws.Time(time.Unix(1, 0))})
	var noRetention *amtypes.NoDataRetentionException
	require.ErrorAs(t, err, &noRetention)

	gm := srv.Media(t, "cam")
	now := &mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeNow}
	_, err = gm.GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("nope"), StartSelector: now})
	var mNotFound *mtypes.ResourceNotFoundException
	require.ErrorAs(t, err, &mNotFound)
	_, err = gm.GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("cam"),
		StartSelector: &mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeFragmentNumber}})
	var mInvalid *mtypes.InvalidArgumentException
	require.ErrorAs(t, err, &mInvalid, "FRAGMENT_NUMBER needs AfterFragmentNumber")

	// Three readers per stream; the fourth is refused until one leaves.
	for range 3 {
		out, err := gm.GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("cam"), StartSelector: now})
		require.NoError(t, err)
		defer out.Payload.Close()
	}
	_, err = gm.GetMedia(ctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("cam"), StartSelector: now})
	var limit *mtypes.ConnectionLimitExceededException
	require.ErrorAs(t, err, &limit)
	require.NotEmpty(t, limit.ErrorMessage(), "the refusal says why")
}
