package producer_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/producer"
)

// A stream still held by a kvsd cluster node that died (its lease lives on for a few seconds):
// kvsd refuses the producer with ConnectionLimitExceeded until the lease expires, and the
// producer, retrying that refusal at least every second whatever RetryMax says, is in within
// about a second of the expiry (backing off to 5 s it would be in only 7.75 s after its first
// try, nearly 4 s late).
func TestRetriesConnectionLimitExceededPromptly(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "media")
	keyFile := filepath.Join(t.TempDir(), "cluster.key")
	_, err := keys.LoadFile(keyFile, true)
	require.NoError(t, err)
	srv := kvstest.Start(t, kvstest.Options{
		Env: map[string]string{"AWS_ACCESS_KEY_ID": s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY": s3test.SecretAccessKey},
		Configure: func(c *app.Config) {
			c.Catalog, c.Media, c.S3Endpoint, c.S3PathStyle, c.KeyFile = pgURL, "s3://media/site-a", s3.Endpoint, true, keyFile
		},
	})
	createStream(t, srv, "cam", 24)
	data := clip(t, 1, 25)

	db, err := postgres.Open(context.Background(), postgres.Config{URL: pgURL})
	require.NoError(t, err)
	defer db.Close()
	const ttl = 4 * time.Second
	_, err = db.AcquireLease(context.Background(), "cam", "dead/1/ABCDEFGH http://127.0.0.1:1", ttl)
	require.NoError(t, err)
	held := time.Now()

	var ev events
	cfg := baseConfig(srv, "cam")
	cfg.RetryMin, cfg.RetryMax = 250*time.Millisecond, 5*time.Second // the defaults
	cfg.Fast, cfg.StartTime, cfg.OnEvent = true, time.UnixMilli(1_700_000_000_000), ev.add
	st := runFile(t, cfg, data)
	in := time.Since(held)
	t.Logf("all persisted %v after the lease was taken (ttl %v), %d refusals", in.Round(10*time.Millisecond), ttl, st.Reconnects)
	require.Positive(t, st.Reconnects, "refused while the dead node's lease lived")
	require.ErrorContains(t, ev.first(producer.EventReconnect).Err, "ConnectionLimitExceededException")
	require.Less(t, in, ttl+2*time.Second)
	require.Zero(t, st.Pending+st.Skipped+st.Dropped)
}
