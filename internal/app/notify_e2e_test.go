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
	"strconv"
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
// AWS message to a webhook, signed with the secret the destination names (#secret=cam_hooks,
// KVSD_WEBHOOK_SECRET_CAM_HOOKS), which the receiver checks as the README says. Describe shows
// the secret's name only; a destination at a cloud metadata address is refused.
func TestNotificationsEndToEndWebhook(t *testing.T) {
	const secret = "hook-secret"
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The README's receiver check: HMAC-SHA256 of "<timestamp>.<body>", and a fresh timestamp.
		ts := r.Header.Get("X-Kvsd-Timestamp")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if !hmac.Equal([]byte(r.Header.Get("X-Kvsd-Signature")), []byte("v1="+hex.EncodeToString(mac.Sum(nil)))) ||
			err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			t.Errorf("bad signature %q at %q", r.Header.Get("X-Kvsd-Signature"), ts)
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

	srv := kvstest.Start(t, kvstest.Options{Env: map[string]string{"KVSD_WEBHOOK_SECRET_CAM_HOOKS": secret},
		Configure: func(c *app.Config) { c.WebhookSecret = "the global secret, for webhooks naming none" }})
	srv.CreateStream(t, "cam", 2)
	kv := srv.KinesisVideo()
	setDestination := func(uri string) error {
		_, err := kv.UpdateNotificationConfiguration(context.Background(), &kinesisvideo.UpdateNotificationConfigurationInput{
			StreamName: aws.String("cam"), NotificationConfiguration: &types.NotificationConfiguration{Status: types.ConfigurationStatusEnabled,
				DestinationConfig: &types.NotificationDestinationConfig{Uri: aws.String(uri)}}})
		return err
	}
	var iae *types.InvalidArgumentException
	require.ErrorAs(t, setDestination("http://169.254.169.254/latest/meta-data/"), &iae)
	require.Contains(t, iae.ErrorMessage(), "link-local")
	require.ErrorAs(t, setDestination(hook.URL+"/events#secret=unset"), &iae)
	require.Contains(t, iae.ErrorMessage(), "KVSD_WEBHOOK_SECRET_UNSET")
	require.NoError(t, setDestination(hook.URL+"/events#secret=cam_hooks"))
	desc, err := kv.DescribeNotificationConfiguration(context.Background(), &kinesisvideo.DescribeNotificationConfigurationInput{StreamName: aws.String("cam")})
	require.NoError(t, err)
	require.Equal(t, hook.URL+"/events#secret=cam_hooks", aws.ToString(desc.NotificationConfiguration.DestinationConfig.Uri), "the name, never the secret")

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
