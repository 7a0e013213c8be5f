// Package app is kvsd's composition root: it builds the catalog, the domain services and the
// HTTP API from a Config, runs them, and shuts them down in order. Only app knows concrete types.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/kvsapi"
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
	URL     string // the public URL (GetDataEndpoint's answer)
	Addr    net.Addr
	catalog *bolt.DB
	http    *http.Server
	done    chan error
	ready   atomic.Bool
}

// Start opens the data dir, binds the listener and serves in the background until Shutdown.
func Start(cfg Config, env Env) (*Server, error) {
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
	db, err := bolt.Open(filepath.Join(cfg.DataDir, "catalog.db"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s := &Server{Addr: ln.Addr(), URL: publicURL(cfg.PublicURL, ln.Addr()), catalog: db, done: make(chan error, 1)}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api := kvsapi.New(kvsapi.Config{
		Streams:  &stream.Service{Store: db, Region: cfg.Region, AccountID: cfg.AccountID, PublicURL: s.URL},
		Auth:     &sigv4.Verifier{Region: cfg.Region, Service: "kinesisvideo", Lookup: keys.lookup},
		Logger:   log,
		Registry: reg,
	})
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

	// No write timeout: PutMedia and GetMedia responses stream for up to 45 minutes.
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { s.done <- s.http.Serve(ln) }()
	s.ready.Store(true)

	if host, _, _ := net.SplitHostPort(cfg.Listen); cfg.PublicURL == "" && net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		log.Warn("listening on all interfaces without --public-url: GetDataEndpoint answers a loopback URL that remote producers cannot reach", "url", s.URL)
	}
	log.Info("kvsd serving", "addr", s.Addr.String(), "url", s.URL, "region", cfg.Region, "account", cfg.AccountID, "data_dir", cfg.DataDir)
	fmt.Fprintf(env.Stdout, "kvsd: serving the KVS API on %s (region %s). Point clients at it, e.g.\n  /usr/bin/aws kinesisvideo list-streams --endpoint-url %s\n", s.URL, cfg.Region, s.URL)
	return s, nil
}

// Shutdown stops taking requests, waits for running ones (bounded by ctx), then closes the catalog.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(err, s.http.Close())
	}
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, s.catalog.Close())
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
