package notify_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/notify"
	"github.com/kvsd/kvsd/internal/sigv4"
)

const (
	snsKeyID  = "AKIASNSTESTKEY000001"
	snsSecret = "snsTestSecret/0123456789abcdefghijklmnop"
)

// snsServer stands in for SNS: it verifies each request's SigV4 signature for service "sns" in
// the topic's region with kvsd's own verifier, checks the Publish request field by field and
// answers as SNS does (query protocol, XML).
type snsServer struct {
	collector
	t        *testing.T
	verifier *sigv4.Verifier
	url      string

	mu       sync.Mutex
	failNext int               // answer this many requests with 500 InternalError
	attempts []string          // event id of every Publish, failed ones included
	forms    []url.Values      // every accepted Publish form
	fifo     map[string]string // MessageGroupId/MessageDeduplicationId of the last FIFO publish
}

func newSNSServer(t *testing.T, region string) *snsServer {
	s := &snsServer{t: t, verifier: &sigv4.Verifier{Region: region, Service: "sns",
		Lookup: func(id string) (sigv4.Credential, bool) {
			return sigv4.Credential{AccessKeyID: snsKeyID, SecretAccessKey: snsSecret}, id == snsKeyID
		}}}
	s.url = startHTTP(t, http.HandlerFunc(s.serve))
	return s
}

func (s *snsServer) serve(w http.ResponseWriter, r *http.Request) {
	body := readAll(s.t, r)
	sum := sha256.Sum256(body)
	if _, err := s.verifier.Verify(r, hex.EncodeToString(sum[:])); err != nil {
		s.t.Errorf("SNS request signature: %v", err)
		snsError(w, 403, "Sender", "InvalidClientTokenId", err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	require.NoError(s.t, err)
	attrs := map[string]string{}
	for i := 1; form.Has(fmt.Sprintf("MessageAttributes.entry.%d.Name", i)); i++ {
		p := fmt.Sprintf("MessageAttributes.entry.%d.", i)
		require.Equal(s.t, "String", form.Get(p+"Value.DataType"))
		attrs[form.Get(p+"Name")] = form.Get(p + "Value.StringValue")
	}
	s.mu.Lock()
	s.attempts = append(s.attempts, attrs["kvsd.EventId"])
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	if fail {
		snsError(w, 500, "Receiver", "InternalError", "try again")
		return
	}

	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		s.t.Errorf("SNS got %s %s", r.Method, r.URL.Path)
	case r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
		s.t.Errorf("SNS Content-Type %q", r.Header.Get("Content-Type"))
	case form.Get("Action") != "Publish" || form.Get("Version") != "2010-03-31":
		s.t.Errorf("SNS Action %q Version %q", form.Get("Action"), form.Get("Version"))
	case form.Get("Subject") != notify.SNSSubject:
		s.t.Errorf("SNS Subject %q", form.Get("Subject"))
	}
	if err := s.add(attrs["kvsd.EventId"], []byte(form.Get("Message"))); err != nil {
		s.t.Error(err)
	}
	if typ := attrs["kvsd.NotificationType"]; typ != "PERSISTED" && typ != "IMAGE_DELIVERED" {
		s.t.Errorf("SNS kvsd.NotificationType attribute %q", typ)
	}
	s.mu.Lock()
	s.forms = append(s.forms, form)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>`+
		`<MessageId>%d-msg</MessageId></PublishResult><ResponseMetadata><RequestId>req-%d</RequestId>`+
		`</ResponseMetadata></PublishResponse>`, time.Now().UnixNano(), time.Now().UnixNano())
}

func snsError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>%s</Type>`+
		`<Code>%s</Code><Message>%s</Message></Error><RequestId>req-err</RequestId></ErrorResponse>`, typ, code, msg)
}

// TestSNSPublish: the real AWS SDK publishes each event, signed for the topic's region, with
// the KVS subject, the message as JSON and the event id as a message attribute; a failing
// Publish is retried with the same event id.
func TestSNSPublish(t *testing.T) {
	e := newEnv(t)
	srv := newSNSServer(t, "eu-west-1") // the topic's region, not the server's
	topic := "arn:aws:sns:eu-west-1:111122223333:kvs-events"
	st := e.createStream("cam-1", topic, nil)
	cfg := e.testConfig()
	cfg.SNSEndpoint = srv.url
	cfg.AWSCredentials = credentials.NewStaticCredentialsProvider(snsKeyID, snsSecret, "")
	n, _ := e.run(cfg)

	srv.mu.Lock()
	srv.failNext = 2
	srv.mu.Unlock()
	f1 := e.appendFragment(n, st, notification("zone", "A")...)
	f2 := e.appendFragment(n, st, notification()...)
	got := srv.waitCount(t, 2, 10*time.Second)
	requireFragments(t, got, f1, f2)
	require.Equal(t, map[string]any{"zone": "A"}, got[0].Body["NotificationPayload"])
	require.Equal(t, st.ARN, got[0].Body["StreamArn"])

	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Equal(t, []string{got[0].ID, got[0].ID, got[0].ID, got[1].ID}, srv.attempts, "retries carry the same event id")
	for _, f := range srv.forms {
		require.Equal(t, topic, f.Get("TopicArn"))
		require.False(t, f.Has("MessageGroupId"), "standard topic")
	}
	require.Eventually(t, func() bool { return n.Status(ctx, st).Delivered == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "sns", n.Status(ctx, st).Transport)
}

// TestSNSFIFOAndEnvironmentCredentials: without a credentials provider the environment's keys
// sign; a FIFO topic gets the stream as message group and the event id as deduplication id.
func TestSNSFIFOAndEnvironmentCredentials(t *testing.T) {
	e := newEnv(t)
	srv := newSNSServer(t, "us-east-2")
	topic := "arn:aws:sns:us-east-2:111122223333:kvs-events.fifo"
	st := e.createStream("cam-1", topic, nil)
	cfg := e.testConfig()
	cfg.SNSEndpoint = srv.url
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	n, _ := e.run(cfg)

	f1 := e.appendFragment(n, st, notification()...)
	require.Eventually(t, func() bool { return n.Status(ctx, st).LastError != "" }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, n.Status(ctx, st).LastError, "AWS_ACCESS_KEY_ID")

	t.Setenv("AWS_ACCESS_KEY_ID", snsKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", snsSecret)
	got := srv.waitCount(t, 1, 10*time.Second)
	requireFragments(t, got, f1)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Equal(t, "cam-1", srv.forms[0].Get("MessageGroupId"))
	require.Equal(t, got[0].ID, srv.forms[0].Get("MessageDeduplicationId"))
}
