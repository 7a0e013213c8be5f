// Package app is kvsd's composition root: it builds the catalog, the domain services and the
// HTTP API from a Config, runs them, and shuts them down in order. Only app knows concrete types.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/ingest"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/notify"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/retention"
	"github.com/kvsd/kvsd/internal/sigv4"
	"github.com/kvsd/kvsd/internal/stream"
)

// Env is what the server takes from its surroundings; tests pass their own.
type Env struct {
	Getenv func(string) string
	Stdout io.Writer // start-up messages meant for the person running kvsd
	Logger *slog.Logger
}

// Server is a running kvsd.
type Server struct {
	URL   string // the public URL (GetDataEndpoint's answer)
	Addr  net.Addr
	Store *fragstore.Store

	catalog  *bolt.DB
	ingest   *ingest.Manager
	images   *imagegen.Generator
	notifier *notify.Notifier
	log      *slog.Logger
	http     *http.Server
	done     chan error
	ready    atomic.Bool
	cancel   context.CancelFunc // ends sessions, GetMedia tails and the retention loop
	loops    sync.WaitGroup
}

// Start opens the data dir, binds the listener and serves in the background until Shutdown.
func Start(cfg Config, env Env) (srv *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	keys, err := loadCredentials(cfg, env.Getenv, env.Stdout)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := serverTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(cfg.DataDir, "catalog.db"))
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	media, err := disk.Open(disk.Config{Dir: filepath.Join(cfg.DataDir, "media"), Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	store, err := fragstore.Open(fragstore.Config{Media: media, Index: db, Logger: log, Registerer: reg})
	if err != nil {
		media.Close()
		db.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		store.Close()
		db.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Addr: ln.Addr(), URL: publicURL(cfg.PublicURL, ln.Addr(), tlsCfg != nil), Store: store, catalog: db, log: log, done: make(chan error, 1), cancel: cancel}

	streams := &stream.Service{Store: db, Region: cfg.Region, AccountID: cfg.AccountID, PublicURL: s.URL}
	snsCreds, _, credErr := s3Credentials(ctx, env.Getenv) // the standard AWS chain, as for S3
	if credErr != nil {
		log.Warn("SNS notifications: no AWS credential chain, using AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY only", "err", credErr)
		snsCreds = notify.EnvCredentials(env.Getenv)
	}
	s.notifier, err = notify.New(notify.Config{Streams: db, Fragments: store, State: db,
		SNSEndpoint: cfg.SNSEndpoint, AWSCredentials: snsCreds,
		WebhookSecret: []byte(cfg.WebhookSecret), Logger: log, Registerer: reg})
	var objects imagegen.Objects
	var destination string
	if err == nil {
		objects, destination, err = imageObjects(ctx, cfg, env.Getenv)
	}
	if err == nil {
		s.images, err = imagegen.New(imagegen.Config{Catalog: db, Store: store, Objects: objects, NewDecoder: newDecoder,
			AccountID: cfg.AccountID, Destination: "images are " + destination, RetryMax: cfg.ImageRetryMax,
			Logger: log, Registerer: reg,
			OnDelivered: func(ctx context.Context, st *stream.Stream, d imagegen.Delivered) {
				if err := s.notifier.ImageDelivered(ctx, st, d.URI, d.ImageTime, d.FragmentNumber); err != nil {
					log.Error("recording IMAGE_DELIVERED notification", "stream", st.Name, "uri", d.URI, "err", err)
				}
			}})
	}
	if err != nil {
		cancel()
		ln.Close()
		store.Close()
		db.Close()
		return nil, err
	}
	hub := playback.NewHub(liveBufferBytes)
	ingester := ingest.NewManager(ingest.Config{
		Streams: streams, Store: store, Logger: log, Registerer: reg,
		Publish: func(ev ingest.Event) {
			hub.Publish(ev.Key, playback.Item{Fragment: ev.Fragment, Header: ev.Header, Media: ev.Media}, ev.Persisted)
			if ev.Persisted {
				s.images.Wake(ev.Key) // the fragment index is the durable work list
				s.notifier.Wake(ev.Key, ev.Fragment.Seq)
			}
		},
	})
	s.ingest = ingester
	streams.OnDelete = func(ctx context.Context, st *stream.Stream) {
		k := fragstore.KeyOf(st)
		ingester.EndStream(st.Name)
		hub.Forget(k)
		if err := store.DeleteStream(ctx, k); err != nil {
			log.Error("removing data of deleted stream; the retention loop retries", "stream", st.Name, "err", err)
		}
		s.images.Wake(k)      // drops the stream's cursor and decoder
		s.notifier.Wake(k, 0) // drops the stream's notification cursor and outbox
	}
	api := kvsapi.New(kvsapi.Config{
		Streams: streams,
		Playback: &playback.Service{Streams: streams, Store: store, Hub: hub, IdleClose: cfg.GetMediaIdleClose, Now: cfg.Now,
			Tokens: playback.NewTokens(playback.SessionKey(keys.secrets())), Muxer: muxer{}},
		PublicURL: s.URL,
		Images:    s.images,
		Status:    []diag.Source{ingester, s.images, s.notifier},
		Auth:      &sigv4.Verifier{Region: cfg.Region, Service: "kinesisvideo", Lookup: keys.lookup},
		Logger:    log,
		Registry:  reg,
	})
	api.Handle("putMedia", api.PutMedia(ingester))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/", api)

	// No write timeout: PutMedia and GetMedia responses stream for up to 45 minutes. Request
	// contexts derive from ctx, so Shutdown can end those long requests.
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	sweeper := &retention.Sweeper{Store: store, Catalog: db, Interval: cfg.RetentionInterval, Logger: log}
	s.loops.Add(4)
	go func() { defer s.loops.Done(); s.done <- s.http.Serve(ln) }()
	go func() { defer s.loops.Done(); _ = sweeper.Run(ctx) }()
	go func() { defer s.loops.Done(); _ = s.images.Run(ctx) }()
	go func() { defer s.loops.Done(); _ = s.notifier.Run(ctx) }()
	s.ready.Store(true)

	if host, _, _ := net.SplitHostPort(cfg.Listen); cfg.PublicURL == "" && net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		log.Warn("listening on all interfaces without --public-url: GetDataEndpoint answers a loopback URL that remote producers cannot reach", "url", s.URL)
	}
	log.Info("kvsd serving", "addr", s.Addr.String(), "url", s.URL, "region", cfg.Region, "account", cfg.AccountID, "data_dir", cfg.DataDir)
	log.Info("images for s3:// destinations are " + destination)
	fmt.Fprintf(env.Stdout, "kvsd: serving the KVS API on %s (region %s). Point clients at it, e.g.\n  /usr/bin/aws kinesisvideo list-streams --endpoint-url %s\n", s.URL, cfg.Region, s.URL)
	if tlsCfg != nil {
		fmt.Fprintln(env.Stdout, "  adding --ca-bundle CA.pem (or AWS_CA_BUNDLE=CA.pem) when the certificate is self-signed or from a private CA")
	}
	return s, nil
}

// liveBufferBytes bounds the in-memory buffer of each stream without retention.
const liveBufferBytes = 64 << 20

// Shutdown stops taking requests, ends long-lived sessions (fragments already acknowledged
// PERSISTED are durable; the one in flight was never acknowledged), waits for handlers (bounded
// by ctx), then closes the store and the catalog.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	// Producers first: each session persists what it received and gets a retriable ERROR, so
	// it reconnects elsewhere or later without losing a fragment.
	if err := s.ingest.Shutdown(ctx); err != nil {
		s.log.Warn("ingest sessions did not finish in time", "err", err)
	}
	s.cancel()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(err, s.http.Close())
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	s.loops.Wait()
	return errors.Join(err, s.Store.Close(), s.catalog.Close())
}

// Run starts the server and blocks until ctx is cancelled (SIGINT/SIGTERM in main), then shuts down.
func Run(ctx context.Context, cfg Config, env Env) error {
	s, err := Start(cfg, env)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.done:
		s.done <- err // Shutdown reads it
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if env.Logger != nil {
		env.Logger.Info("kvsd shutting down")
	}
	return s.Shutdown(shutdownCtx)
}
