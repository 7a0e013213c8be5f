package app_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
)

// The whole path: a producer tags fragments for notification, kvsd persists them and POSTs the
// AWS message to a webhook, signed with the configured secret.
func TestNotificationsEndToEndWebhook(t *testing.T) {
	const secret = "hook-secret"
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("X-Kvsd-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if json.Unmarshal(body, &m) != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()

	srv := kvstest.Start(t, kvstest.Options{Configure: func(c *app.Config) { c.WebhookSecret = secret }})
	srv.CreateStream(t, "cam", 2)
	_, err := srv.KinesisVideo().UpdateNotificationConfiguration(context.Background(), &kinesisvideo.UpdateNotificationConfigurationInput{
		StreamName: aws.String("cam"), NotificationConfiguration: &types.NotificationConfiguration{Status: types.ConfigurationStatusEnabled,
			DestinationConfig: &types.NotificationDestinationConfig{Uri: aws.String(hook.URL + "/events")}}})
	require.NoError(t, err)

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	tagged := []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_NOTIFICATION"}, {Name: "zone", Value: "A"}}
	// Fragments 1 and 3 carry no tag and must send nothing. Events of a stream go out in
	// fragment order, so once fragment 4's has arrived, 1 and 3 have been passed over.
	body := kvstest.WithTags(t, kvstest.TestPattern(t, 5, start), [][]mkv.SimpleTag{tagged, nil, tagged, nil, tagged})
	numbers := kvstest.Persisted(t, srv.PutMedia(t, "cam", bytes.NewReader(body)))
	require.Len(t, numbers, 5)

	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 3 }, 10*time.Second, 50*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 3, "one event per tagged fragment")
	for j, i := range []int{0, 2, 4} {
		m := got[j]
		require.Equal(t, "PERSISTED", m["NotificationType"])
		require.Equal(t, numbers[i], m["FragmentNumber"])
		require.Contains(t, m["StreamArn"], ":stream/cam/")
		require.Equal(t, float64(start.Add(time.Duration(i)*time.Second).UnixMilli()), m["FragmentStartProducerTimestamp"])
		require.Equal(t, map[string]any{"zone": "A"}, m["NotificationPayload"])
		require.NotEmpty(t, m["EventId"])
	}
}
