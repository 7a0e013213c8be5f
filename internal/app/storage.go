package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/diskuse"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/fragstore/s3media"
	"github.com/kvsd/kvsd/internal/keys"
)

// openStorage opens the catalog (--catalog), the media (--media, or on disk cut in segments the
// disk budget can evict; either encrypted with the key file or KMS) and the fragment store over both,
// and returns where each lives, in words.
func (s *Server) openStorage(ctx context.Context, cfg Config, getenv func(string) string, reg prometheus.Registerer) (string, error) {
	db, catalogAt, err := openCatalog(ctx, cfg, s.log)
	if err != nil {
		return "", err
	}
	s.catalog = db
	s.closers.push(db.Close)
	if mediaInClear || cfg.MediaInClear {
		s.log.Warn("media is stored in clear: this kvsd was built with the kvsd_plaintext tag (benchmarks) or configured so by a test")
	} else {
		if s.atRest, err = newAtRest(ctx, cfg, getenv, db); err != nil {
			return "", err
		}
		s.log.Info("media is encrypted at rest", "keys", s.atRest.kek.Describe())
	}
	var media fragstore.Media
	var mediaAt string
	if cfg.Media == "" {
		dm, err := s.openDisk(cfg)
		if err != nil {
			return "", err
		}
		media, mediaAt, s.media = dm, filepath.Join(cfg.DataDir, "media"), dm
	} else if media, mediaAt, err = openS3Media(ctx, cfg, getenv, s.log, s.ring()); err != nil {
		return "", err
	}
	s.closers.push(media.Close) // a no-op once the store has closed it
	// With both in shared engines other nodes may be writing: no start-up repair.
	shared := cfg.Catalog != "" && cfg.Media != ""
	store, err := fragstore.Open(fragstore.Config{Media: media, Index: db, Logger: s.log, Registerer: reg, Shared: shared})
	if err != nil {
		return "", err
	}
	s.Store = store
	s.closers.push(store.Close)
	if sm, ok := media.(*s3media.Media); ok && shared {
		s.bucket = sm
	}
	return "catalog " + catalogAt + ", media " + mediaAt, nil
}

// openDisk opens <data-dir>/media, its records sealed with the streams' data keys unless this
// kvsd stores media in clear (benchmarks, tests), in segments small enough for the disk budget.
func (s *Server) openDisk(cfg Config) (*disk.Media, error) {
	limit, err := budgetBytes(cfg)
	if err != nil {
		return nil, err
	}
	segSize := diskuse.SegmentSize(limit)
	if segSize > disk.DefaultSegmentSize {
		segSize = 0
	}
	dcfg := disk.Config{Dir: filepath.Join(cfg.DataDir, "media"), Logger: s.log, SegmentSize: segSize}
	if r := s.ring(); r != nil {
		dcfg.Keys = r
	}
	return disk.Open(dcfg)
}

// ring is the data key ring of the media, nil when media is stored in clear.
func (s *Server) ring() *keys.Ring {
	if s.atRest == nil {
		return nil
	}
	return s.atRest.ring
}

// openCatalog opens the bbolt file in the data dir, or PostgreSQL when --catalog names it.
func openCatalog(ctx context.Context, cfg Config, log *slog.Logger) (catalog.Catalog, string, error) {
	if cfg.Catalog == "" {
		path := filepath.Join(cfg.DataDir, "catalog.db")
		db, err := bolt.Open(path)
		return db, path, err
	}
	pc, err := pgxpool.ParseConfig(cfg.Catalog)
	if err != nil {
		return nil, "", fmt.Errorf("--catalog: %w", err)
	}
	// Described without the URL, which may hold a password.
	at := fmt.Sprintf("postgres %s@%s:%d/%s", pc.ConnConfig.User, pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
	db, err := postgres.Open(ctx, postgres.Config{URL: cfg.Catalog, Logger: log})
	if err != nil {
		return nil, "", err
	}
	return db, at, nil
}

// openS3Media opens the bucket --media names, on --s3-endpoint (AWS S3 when unset) with the
// standard AWS credential chain.
func openS3Media(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger, ring *keys.Ring) (fragstore.Media, string, error) {
	bucket, prefix, err := mediaBucket(cfg.Media)
	if err != nil {
		return nil, "", err
	}
	creds, region, err := s3Credentials(ctx, getenv)
	if err != nil {
		return nil, "", err
	}
	if region == "" {
		region = cfg.Region
	}
	opts := s3.Options{
		UsePathStyle: cfg.S3PathStyle, Region: region, Credentials: creds,
		// The SDK's retries stay on: ingest does not retry a failed append, and a PUT repeated
		// after a lost answer is recognised (s3media writes with If-None-Match).
		// Checksums only where the API requires them, as for images: servers differ in
		// which checksum headers they accept; records carry their own CRC-32C.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Timeout: time.Minute, Transport: mediaTransport()},
	}
	endpoint := "AWS S3"
	if cfg.S3Endpoint != "" {
		opts.BaseEndpoint, endpoint = aws.String(cfg.S3Endpoint), cfg.S3Endpoint
	}
	mcfg := s3media.Config{Client: s3.New(opts), Bucket: bucket, Prefix: prefix, Logger: log}
	if ring != nil {
		mcfg.Keys = ring
	}
	m, err := s3media.Open(mcfg)
	if err != nil {
		return nil, "", err
	}
	if err := m.Check(ctx); err != nil {
		return nil, "", fmt.Errorf("--media %s: %w", cfg.Media, err)
	}
	return m, fmt.Sprintf("%s on %s (region %s)", cfg.Media, endpoint, region), nil
}

// mediaTransport is the media store's HTTP transport. Every stream a node ingests PUTs its
// fragments on its own, so dozens of requests are in flight at once; net/http's default keeps
// 2 idle connections per host and closed the rest after each request, so most PUTs paid a new
// connection (and the store a new accept) and left one in TIME_WAIT.
func mediaTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no total limit: the per-host one bounds it, there is one host
	t.MaxIdleConnsPerHost = 256
	return t
}
