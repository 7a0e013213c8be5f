package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/putmedia"
)

type chunk struct {
	header  []byte // everything before the cluster: producer header + AWS tags
	media   []byte // cluster + producer tags
	awsTags map[string]string
	trailer map[string]string
}

// parseChunks splits GetMedia-style output into its self-contained MKV documents.
func parseChunks(t *testing.T, data []byte) []chunk {
	t.Helper()
	return readChunks(t, bytes.NewReader(data), -1)
}

// readChunks reads GetMedia-style chunks from r until it ends or, when n >= 0, until n chunks
// are complete (their trailing tags read): a live GetMedia body does not end by itself.
func readChunks(t *testing.T, r io.Reader, n int) []chunk {
	t.Helper()
	var out []chunk
	mr := mkv.NewReader(r, mkv.Limits{})
	for n < 0 || len(out) < n || out[n-1].trailer == nil {
		ev, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		switch ev.Kind {
		case mkv.KindHeader:
			out = append(out, chunk{header: bytes.Clone(ev.Header.Raw), awsTags: tagsIn(t, ev.Header.Raw)})
		case mkv.KindClusterEnd:
			out[len(out)-1].media = append(out[len(out)-1].media, ev.Raw...)
		case mkv.KindTags:
			c := &out[len(out)-1]
			if ev.Tags[0].Name == "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW" {
				c.trailer = map[string]string{}
				for _, tg := range ev.Tags {
					c.trailer[tg.Name] = tg.Value
				}
				continue
			}
			c.media = append(c.media, ev.Raw...)
		}
	}
	return out
}

// tagsIn finds the AWS tags kvsd put before the cluster (they sit in the chunk's header).
func tagsIn(t *testing.T, header []byte) map[string]string {
	tags := map[string]string{}
	for _, name := range []string{"AWS_KINESISVIDEO_FRAGMENT_NUMBER", "AWS_KINESISVIDEO_SERVER_TIMESTAMP", "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"} {
		i := bytes.Index(header, []byte(name))
		if i < 0 {
			continue
		}
		// TagString (44 87) with a 4-byte size follows the name.
		rest := header[i+len(name):]
		require.Equal(t, []byte{0x44, 0x87}, rest[:2])
		n := int(rest[2]&0x0f)<<24 | int(rest[3])<<16 | int(rest[4])<<8 | int(rest[5])
		tags[name] = string(rest[6 : 6+n])
	}
	return tags
}

func TestIngestAndReadBackByteIdentical(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 5, start)
	header, frags := kvstest.Clusters(t, media)
	require.Len(t, frags, 5)

	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media)))
	require.Len(t, numbers, len(frags))

	// ListFragments by producer time: inclusive range on fragment start.
	status, _, body := srv.Call(t, "listFragments", map[string]any{"StreamName": "cam",
		"FragmentSelector": map[string]any{"FragmentSelectorType": "PRODUCER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": start.Unix(), "EndTimestamp": start.Unix() + 4}}})
	require.Equal(t, 200, status, string(body))
	var list struct {
		Fragments []struct {
			FragmentNumber               string
			FragmentSizeInBytes          int64
			ProducerTimestamp            float64
			ServerTimestamp              float64
			FragmentLengthInMilliseconds int64
		}
		NextToken *string
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Fragments, 5)
	require.Nil(t, list.NextToken)
	byNumber := map[string]int{}
	for i, n := range numbers {
		byNumber[n] = i
	}
	for _, f := range list.Fragments {
		i, ok := byNumber[f.FragmentNumber]
		require.True(t, ok, f.FragmentNumber)
		require.Equal(t, int64(len(frags[i])), f.FragmentSizeInBytes)
		require.InDelta(t, float64(start.Unix()+int64(i)), f.ProducerTimestamp, 0.001)
		require.InDelta(t, float64(time.Now().Unix()), f.ServerTimestamp, 30)
		require.InDelta(t, 1000, f.FragmentLengthInMilliseconds, 40)
	}

	// GetMediaForFragmentList: every fragment back byte for byte, in self-contained chunks.
	status, hdr, out := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status, string(out))
	require.Equal(t, "video/webm", hdr.Get("Content-Type"))
	chunks := parseChunks(t, out)
	require.Len(t, chunks, len(frags))
	for i, c := range chunks {
		require.True(t, bytes.HasPrefix(c.header, header), "chunk %d starts with the producer's header verbatim", i)
		require.Equal(t, frags[i], c.media, "fragment %d byte-identical", i)
		require.Equal(t, numbers[i], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
		require.Equal(t, fmt.Sprintf("%d.000", start.Unix()+int64(i)), c.awsTags["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"])
		require.Regexp(t, `^\d{10}\.\d{3}$`, c.awsTags["AWS_KINESISVIDEO_SERVER_TIMESTAMP"])
	}
	requireDecodes(t, out, 125)

	// A missing fragment number is a 404 before any media is sent.
	bad := strings.Replace(numbers[0], numbers[0][len(numbers[0])-6:], "000001", 1)
	status, _, _ = srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": []string{bad}})
	require.Equal(t, 404, status)
}

// requireDecodes checks that ffprobe decodes every frame of a GetMedia-style output.
func requireDecodes(t *testing.T, data []byte, frames int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.mkv")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	require.NoError(t, err, string(out))
	// ffprobe notes each chunk's new unknown-size Segment; the count is the last line.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	n, err := strconv.Atoi(strings.TrimSpace(lines[len(lines)-1]))
	require.NoError(t, err, string(out))
	require.Equal(t, frames, n, "decoded frames")
}

func TestGetMediaSelectorsAndLiveTail(t *testing.T) {
	// Each read below ends with the idle close: 1 s instead of kvstest's 2 s, still ample for
	// the live tail, whose media is made before the request.
	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.GetMediaIdleClose = time.Second }})
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	first := kvstest.TestPattern(t, 3, start)
	_, frags1 := kvstest.Clusters(t, first)
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(first)))
	require.Len(t, numbers, 3)

	read := func(sel map[string]any, want int) []chunk {
		t.Helper()
		resp := srv.Open(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": sel})
		defer resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		data, _ := io.ReadAll(resp.Body) // ends after the idle close
		cs := parseChunks(t, data)
		require.Len(t, cs, want, "selector %v", sel)
		return cs
	}
	cs := read(map[string]any{"StartSelectorType": "EARLIEST"}, 3)
	for i, c := range cs {
		require.Equal(t, frags1[i], c.media)
		require.Equal(t, numbers[i], c.trailer["AWS_KINESISVIDEO_CONTINUATION_TOKEN"])
		require.NotEmpty(t, c.trailer["AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"])
	}
	cs = read(map[string]any{"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": numbers[0]}, 2)
	require.Equal(t, numbers[1], cs[0].awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	cs = read(map[string]any{"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": numbers[1]}, 1)
	require.Equal(t, numbers[2], cs[0].awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	cs = read(map[string]any{"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": float64(start.Unix()) + 1.5}, 2)
	require.Equal(t, numbers[1], cs[0].awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"], "starts with the fragment containing the time")

	// NOW: only what arrives after the request, pushed as it is persisted. The media is made
	// first: the live tail ends 2 s after its last fragment, and ffmpeg on a loaded machine
	// could take longer than that.
	second := kvstest.TestPattern(t, 2, start.Add(10*time.Second))
	_, frags2 := kvstest.Clusters(t, second)
	resp := srv.Open(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	numbers2 := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(second)))
	data, _ := io.ReadAll(resp.Body)
	cs = parseChunks(t, data)
	require.Len(t, cs, 2)
	for i, c := range cs {
		require.Equal(t, frags2[i], c.media)
		require.Equal(t, numbers2[i], c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	}

	// Errors are AWS-shaped, before any media.
	status, hdr, _ := srv.Call(t, "getMedia", map[string]any{"StreamName": "nope", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	require.Equal(t, 404, status)
	require.Equal(t, "ResourceNotFoundException", hdr.Get("x-amzn-ErrorType"))
	status, hdr, _ = srv.Call(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "SOMETIME"}})
	require.Equal(t, 400, status)
	require.Equal(t, "InvalidArgumentException", hdr.Get("x-amzn-ErrorType"))
}

func TestGetMediaReaderLimit(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 3 {
		resp, err := srv.OpenContext(ctx, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		defer resp.Body.Close()
	}
	status, hdr, _ := srv.Call(t, "getMedia", map[string]any{"StreamName": "cam", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	require.Equal(t, 400, status)
	require.Equal(t, "ConnectionLimitExceededException", hdr.Get("x-amzn-ErrorType"))
}

func TestRetentionZeroServesLiveOnly(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "live", 0)
	media := kvstest.TestPattern(t, 2, time.Now().Add(-time.Minute)) // before the live tail's 2-s idle clock starts
	_, frags := kvstest.Clusters(t, media)
	resp := srv.Open(t, "getMedia", map[string]any{"StreamName": "live", "StartSelector": map[string]any{"StartSelectorType": "NOW"}})
	defer resp.Body.Close()
	acks := srv.PutMedia(t, "live", bytes.NewReader(media))
	for _, a := range acks {
		require.NotEqual(t, "PERSISTED", a.EventType, "nothing is archived with retention 0")
		require.NotEqual(t, "ERROR", a.EventType)
	}
	data, _ := io.ReadAll(resp.Body)
	cs := parseChunks(t, data)
	require.Len(t, cs, 2)
	require.Equal(t, frags[1], cs[1].media)

	status, _, body := srv.Call(t, "listFragments", map[string]any{"StreamName": "live",
		"FragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": 0, "EndTimestamp": time.Now().Unix() + 60}}})
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"Fragments":[],"NextToken":null}`, string(body))
}

func TestRetentionDecreaseAndDeleteReclaimDisk(t *testing.T) {
	srv := kvstest.Start(t)
	c := srv.KinesisVideo()
	srv.CreateStream(t, "cam", 2)
	srv.CreateStream(t, "other", 2)
	media := kvstest.TestPattern(t, 3, time.Now().Add(-time.Minute))
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(media))), 3)
	require.Len(t, kvstest.Persisted(t, srv.PutMedia(t, "other", bytes.NewReader(media))), 3)
	mediaDir := filepath.Join(srv.Config.DataDir, "media")
	require.Equal(t, 2, countDirs(t, mediaDir))

	listAll := func(name string) int { return len(srv.ListFragments(t, name)) }
	require.Equal(t, 3, listAll("cam"))

	// Decreasing retention to 0 applies at once: the fragments and their files go.
	d, err := c.DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	_, err = c.UpdateDataRetention(context.Background(), &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam"),
		CurrentVersion: d.StreamInfo.Version, Operation: types.UpdateDataRetentionOperationDecreaseDataRetention, DataRetentionChangeInHours: aws.Int32(2)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return listAll("cam") == 0 }, 5*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool { return segmentFiles(t, mediaDir, "cam") == 0 }, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, 3, listAll("other"), "other streams keep their data")

	// DeleteStream removes everything of the stream.
	d, err = c.DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("other")})
	require.NoError(t, err)
	_, err = c.DeleteStream(context.Background(), &kinesisvideo.DeleteStreamInput{StreamARN: d.StreamInfo.StreamARN})
	require.NoError(t, err)
	require.Equal(t, 0, segmentFiles(t, mediaDir, "other"))
}

// UpdateDataRetention across 0 during a real-time PutMedia applies from the next fragment and
// never ends the connection: raised from 0, the fragments from then on are stored and
// PERSISTED; lowered to 0, the connection keeps sending PERSISTED (its producer now expects
// them) and stores nothing more.
func TestRetentionChangedAcrossZeroDuringPutMedia(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 0)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	media := kvstest.TestPattern(t, 6, start)
	header, frags := kvstest.Clusters(t, media)
	require.Len(t, frags, 6)

	pr, pw := io.Pipe()
	acks := make(chan putmedia.Ack, 64)
	done := make(chan error, 1)
	go func() {
		done <- srv.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam", Body: pr},
			func(a putmedia.Ack) { acks <- a })
		close(acks)
	}()
	var all []putmedia.Ack
	until := func(event string, n int) { // the acks up to the n-th of event
		t.Helper()
		for a := range acks {
			require.NotEqual(t, "ERROR", a.EventType, "%+v", a)
			all = append(all, a)
			if a.EventType != event {
				continue
			}
			if n--; n == 0 {
				return
			}
		}
		t.Fatal("the connection ended")
	}
	kv := srv.KinesisVideo()
	change := func(op types.UpdateDataRetentionOperation) {
		t.Helper()
		d, err := kv.DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam")})
		require.NoError(t, err)
		_, err = kv.UpdateDataRetention(context.Background(), &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("cam"),
			CurrentVersion: d.StreamInfo.Version, Operation: op, DataRetentionChangeInHours: aws.Int32(24)})
		require.NoError(t, err)
	}
	write := func(b ...[]byte) {
		t.Helper()
		_, err := pw.Write(bytes.Join(b, nil))
		require.NoError(t, err)
	}

	write(header, frags[0], frags[1])
	until("RECEIVED", 1) // fragment 0 is complete; 1 is in flight
	change(types.UpdateDataRetentionOperationIncreaseDataRetention)
	write(frags[2], frags[3])
	until("PERSISTED", 2) // 1 and 2
	change(types.UpdateDataRetentionOperationDecreaseDataRetention)
	write(frags[4], frags[5])
	require.NoError(t, pw.Close())
	until("PERSISTED", 3) // 3, 4 and 5: not stored, still acknowledged
	for a := range acks {
		require.NotEqual(t, "ERROR", a.EventType, "%+v", a)
	}
	require.NoError(t, <-done)

	received, persistedTCs := map[uint64]bool{}, map[uint64]bool{}
	for _, a := range all {
		switch a.EventType {
		case "RECEIVED":
			received[a.FragmentTimecode] = true
		case "PERSISTED":
			persistedTCs[a.FragmentTimecode] = true
		}
	}
	require.Len(t, received, 6)
	require.Len(t, persistedTCs, 5, "every fragment after the first change")
	// Stored: 1 and 2, which completed while the stream kept data (0 too, if its turn to be
	// stored came after the change).
	var got []int64
	for _, f := range listAll(t, srv, "cam") {
		got = append(got, int64(math.Round(f.ProducerTimestamp*1000)))
	}
	slices.Sort(got)
	want := []int64{start.Add(time.Second).UnixMilli(), start.Add(2 * time.Second).UnixMilli()}
	if len(got) == 3 {
		want = append([]int64{start.UnixMilli()}, want...)
	}
	require.Equal(t, want, got)
}

func countDirs(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}

// segmentFiles counts the files under the media directories of the named stream.
func segmentFiles(t *testing.T, mediaDir, name string) int {
	n := 0
	_ = filepath.WalkDir(mediaDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(filepath.Base(filepath.Dir(p)), "_"+name) {
			n++
		}
		return nil
	})
	return n
}

// An MKV file written by ffmpeg to disk has a known Segment size (the whole file). Uploaded as
// is, its header is still replayed in front of every single fragment: kvsd marks the Segment
// size unknown there so each chunk is a valid document, while fragment bytes stay identical.
func TestUploadedFileWithKnownSegmentSize(t *testing.T) {
	srv := kvstest.Start(t)
	srv.CreateStream(t, "cam", 1)
	path := filepath.Join(t.TempDir(), "rec.mkv")
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0",
		"-output_ts_offset", fmt.Sprintf("%d", start.Unix()), path).CombinedOutput()
	require.NoError(t, err, string(out))
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	header, frags := kvstest.Clusters(t, file)
	require.Len(t, frags, 3)
	require.NotEqual(t, byte(0xFF), header[bytes.Index(header, []byte{0x18, 0x53, 0x80, 0x67})+4], "ffmpeg wrote a known size")

	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(file)))
	status, _, body := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status)
	chunks := parseChunks(t, body)
	require.Len(t, chunks, 3)
	for i, c := range chunks {
		require.Equal(t, frags[i], c.media)
	}
	requireDecodes(t, body, 75)
}
