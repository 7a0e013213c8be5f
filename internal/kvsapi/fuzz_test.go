package kvsapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/stream"
)

// acceptAll skips signatures: this target fuzzes decoding and validation, sigv4 has its own.
type acceptAll struct{}

func (acceptAll) Verify(*http.Request, string) (string, error) { return "fuzz", nil }

var fuzzOps = []string{
	"createStream", "describeStream", "listStreams", "deleteStream", "updateStream", "updateDataRetention",
	"getDataEndpoint", "tagStream", "untagStream", "listTagsForStream", "updateImageGenerationConfiguration",
	"describeImageGenerationConfiguration", "updateNotificationConfiguration", "describeNotificationConfiguration",
	"updateStreamStorageConfiguration", "describeStreamStorageConfiguration",
}

// FuzzDecodeRequests sends arbitrary bodies to every control-plane operation of a real handler
// over a real catalog: no input may crash the server or produce a 5xx, and every error is
// AWS-shaped.
func FuzzDecodeRequests(f *testing.F) {
	seeds := []string{
		`{"StreamName":"cam","DataRetentionInHours":2,"Tags":{"a":"b"}}`,
		`{"StreamName":"cam"}`,
		`{"StreamARN":"arn:aws:kinesisvideo:us-east-1:111122223333:stream/cam/1690000000000","CurrentVersion":"abc"}`,
		`{"MaxResults":2,"StreamNameCondition":{"ComparisonOperator":"BEGINS_WITH","ComparisonValue":"c"}}`,
		`{"StreamName":"cam","CurrentVersion":"v","Operation":"INCREASE_DATA_RETENTION","DataRetentionChangeInHours":1}`,
		`{"StreamName":"cam","ImageGenerationConfiguration":{"Status":"ENABLED","ImageSelectorType":"PRODUCER_TIMESTAMP","DestinationConfig":{"Uri":"s3://bucket","DestinationRegion":"us-east-1"},"SamplingInterval":200,"Format":"JPEG","FormatConfig":{"JPEGQuality":"80"},"WidthPixels":320}}`,
		`{"StreamName":"cam","NotificationConfiguration":{"Status":"ENABLED","DestinationConfig":{"Uri":"arn:aws:sns:us-east-1:1:t"}}}`,
		`{"StreamName":"cam","APIName":"PUT_MEDIA"}`,
		`{"StreamName":"cam","TagKeyList":["a"]}`,
		`{"StreamName":"cam","StreamStorageConfiguration":{"DefaultStorageTier":"WARM"},"CurrentVersion":"x"}`,
		`{"NextToken":"Y2Ft"}`, `[]`, `null`, `{"StreamName":1e400}`, `{"StreamName":"\u0000"}`, ``,
	}
	for i, s := range seeds {
		for j := range fuzzOps {
			if (i+j)%3 == 0 {
				f.Add(uint8(j), []byte(s))
			}
		}
	}
	db, err := bolt.Open(filepath.Join(f.TempDir(), "catalog.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	h := kvsapi.New(kvsapi.Config{
		Streams: &stream.Service{Store: db, Region: "us-east-1", AccountID: "111122223333", PublicURL: "http://127.0.0.1:1"},
		Auth:    acceptAll{},
		Logger:  slog.New(slog.DiscardHandler),
	})
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		name := fuzzOps[int(op)%len(fuzzOps)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/"+name, strings.NewReader(string(body))))
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", name, body, rec.Code, rec.Body)
		}
		if rec.Code != 200 {
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" || rec.Header().Get("x-amzn-ErrorType") != e.Type {
				t.Fatalf("%s %q: error not AWS-shaped: %d %s", name, body, rec.Code, rec.Body)
			}
		}
	})
}
