package kvsapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/stream"
)

// fakeImages records the GetImages request it gets and answers canned images.
type fakeImages struct {
	got    imagegen.GetImagesInput
	stream string
	out    []imagegen.Image
	next   string
}

func (f *fakeImages) GetImages(_ context.Context, st *stream.Stream, in imagegen.GetImagesInput) ([]imagegen.Image, string, error) {
	f.got, f.stream = in, st.Name
	return f.out, f.next, nil
}

// apiServer is a handler over a real catalog, without signature checks (acceptAll).
func apiServer(t *testing.T, cfg kvsapi.Config) (*httptest.Server, *stream.Service) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	svc := &stream.Service{Store: db, Region: "us-east-1", AccountID: "111122223333", PublicURL: "http://kvsd"}
	cfg.Streams, cfg.Auth, cfg.Logger = svc, acceptAll{}, slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(kvsapi.New(cfg))
	t.Cleanup(srv.Close)
	return srv, svc
}

func post(t *testing.T, srv *httptest.Server, op, body string) (int, string, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/"+op, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), out
}

func TestGetImagesWire(t *testing.T) {
	images := &fakeImages{next: "bmV4dA==", out: []imagegen.Image{
		{Time: time.UnixMilli(1700000000000), Content: []byte("jpeg bytes")},
		{Time: time.UnixMilli(1700000000200), Error: imagegen.NoMedia},
	}}
	srv, svc := apiServer(t, kvsapi.Config{Images: images})
	retention := 24
	_, err := svc.Create(context.Background(), stream.CreateInput{Name: "cam", RetentionHours: &retention})
	require.NoError(t, err)

	status, _, out := post(t, srv, "getImages", `{"StreamName":"cam","ImageSelectorType":"SERVER_TIMESTAMP",
		"StartTimestamp":1700000000,"EndTimestamp":1700000000.2,"SamplingInterval":200,"Format":"JPEG",
		"FormatConfig":{"JPEGQuality":"90"},"WidthPixels":320,"HeightPixels":240,"MaxResults":2,"NextToken":"abc="}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, "cam", images.stream)
	w, h, interval, max := 320, 240, int64(200), int64(2)
	require.Equal(t, imagegen.GetImagesInput{Kind: fragstore.ServerTime, Start: time.UnixMilli(1700000000000).UTC(), End: time.UnixMilli(1700000000200).UTC(),
		SamplingInterval: &interval, Format: "JPEG", FormatConfig: map[string]string{"JPEGQuality": "90"}, WidthPixels: &w, HeightPixels: &h,
		MaxResults: &max, NextToken: "abc="}, images.got)
	require.Equal(t, map[string]any{
		"Images": []any{
			map[string]any{"TimeStamp": 1700000000.0, "ImageContent": "anBlZyBieXRlcw=="},
			map[string]any{"TimeStamp": 1700000000.2, "Error": "NO_MEDIA"},
		},
		"NextToken": "bmV4dA==",
	}, out)

	images.next = ""
	_, _, out = post(t, srv, "getImages", `{"StreamName":"cam","ImageSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"Format":"PNG"}`)
	require.Contains(t, out, "NextToken")
	require.Nil(t, out["NextToken"], "null when there is no next page")

	// The request is validated before the stream is looked up, as AWS does.
	for body, want := range map[string]string{
		`{"StreamName":"nope","ImageSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"Format":"GIF"}`:  "InvalidArgumentException",
		`{"StreamName":"nope","StartTimestamp":1,"EndTimestamp":2,"Format":"JPEG"}`:                                          "InvalidArgumentException",
		`{"StreamName":"nope","ImageSelectorType":"PRODUCER_TIMESTAMP","EndTimestamp":2,"Format":"JPEG"}`:                    "InvalidArgumentException",
		`{"StreamName":"nope","ImageSelectorType":"PRODUCER_TIMESTAMP","StartTimestamp":1,"EndTimestamp":2,"Format":"JPEG"}`: "ResourceNotFoundException",
	} {
		status, code, _ := post(t, srv, "getImages", body)
		require.Equal(t, want, code, body)
		require.Less(t, status, 500)
	}
}

func TestGetImagesNotServedWithoutImages(t *testing.T) {
	srv, _ := apiServer(t, kvsapi.Config{})
	status, code, _ := post(t, srv, "getImages", `{}`)
	require.Equal(t, 404, status)
	require.Equal(t, "UnknownOperationException", code)
}

// fakeSource is a diag.Source with a fixed report.
type fakeSource struct{ component string }

func (f fakeSource) Diagnose(_ context.Context, st *stream.Stream) diag.Report {
	return diag.Report{Component: f.component, Findings: []diag.Finding{{Level: diag.Info, Code: "SEEN", Message: "saw " + st.Name}}}
}
