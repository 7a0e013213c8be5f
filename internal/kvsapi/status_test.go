package kvsapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/stream"
)

func TestStreamStatusCollectsEveryReport(t *testing.T) {
	srv, svc := apiServer(t, kvsapi.Config{Status: []diag.Source{fakeSource{"images"}, fakeSource{"notifications"}}})
	retention := 24
	st, err := svc.Create(context.Background(), stream.CreateInput{Name: "cam", RetentionHours: &retention, Tags: map[string]string{"site": "lab"}})
	require.NoError(t, err)

	status, _, out := post(t, srv, kvsapi.StatusOperation, `{"StreamARN":"`+st.ARN+`"}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, map[string]any{
		"StreamName": "cam", "StreamARN": st.ARN, "Status": "ACTIVE", "DataRetentionInHours": 24.0,
		"Tags": map[string]any{"site": "lab"},
		"Reports": []any{
			map[string]any{"Component": "images", "Findings": []any{map[string]any{"Level": "INFO", "Code": "SEEN", "Message": "saw cam"}}},
			map[string]any{"Component": "notifications", "Findings": []any{map[string]any{"Level": "INFO", "Code": "SEEN", "Message": "saw cam"}}},
		},
	}, out)

	require.NotContains(t, out, "Images", "no source counts images")

	// A source that counts images (the image generator) gives the numbers as Images.
	srv, svc = apiServer(t, kvsapi.Config{Status: []diag.Source{fakeSource{"ingest"}, countingSource{fakeSource{"images"}, diag.Images{Delivered: 7, Pending: 2}}}})
	_, err = svc.Create(context.Background(), stream.CreateInput{Name: "cam", RetentionHours: &retention})
	require.NoError(t, err)
	status, _, out = post(t, srv, kvsapi.StatusOperation, `{"StreamName":"cam"}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, map[string]any{"Delivered": 7.0, "Pending": 2.0}, out["Images"])
	require.Len(t, out["Reports"], 2)

	status, code, _ := post(t, srv, kvsapi.StatusOperation, `{"StreamName":"nope"}`)
	require.Equal(t, 404, status)
	require.Equal(t, "ResourceNotFoundException", code)
	status, code, _ = post(t, srv, kvsapi.StatusOperation, `{}`)
	require.Equal(t, 400, status)
	require.Equal(t, "InvalidArgumentException", code)
}

// TestStreamStatusNeedsSignature: the status API is authenticated like every KVS operation.
func TestStreamStatusNeedsSignature(t *testing.T) {
	srv := kvstest.Start(t)
	resp, err := http.Post(srv.URL+"/"+kvsapi.StatusOperation, "application/json", strings.NewReader(`{"StreamName":"cam"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
	require.Equal(t, "MissingAuthenticationTokenException", resp.Header.Get("x-amzn-ErrorType"))

	status, _, body := srv.Call(t, kvsapi.StatusOperation, map[string]string{"StreamName": "cam"})
	require.Equal(t, 404, status, string(body))
}

// countingSource is a diag.ImageCounter with fixed counts.
type countingSource struct {
	fakeSource
	n diag.Images
}

func (c countingSource) ImageCounts(*stream.Stream) diag.Images { return c.n }
