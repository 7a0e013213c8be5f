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
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/diskuse"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/fragstore/s3media"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/ingest"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/notify"
)

// Env is what the server takes from its surroundings; tests pass their own.
type Env struct {
	Getenv func(string) string
	Stdout io.Writer // start-up messages meant for the person running kvsd
	Logger *slog.Logger
}

// withDefaults fills what the caller left out: the process environment, no start-up messages,
// no log.
func (e Env) withDefaults() Env {
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	return e
}

// Server is a running kvsd.
type Server struct {
	URL   string // the public URL (GetDataEndpoint's answer)
	Addr  net.Addr
	Store *fragstore.Store

	catalog  catalog.Catalog
	node     string         // this process's holder name in leases and work claims (nodeID)
	cluster  *clusterStatus // the cluster in doctor and /metrics; nil without --catalog
	atRest   *atRest        // nil in a kvsd_plaintext build
	media    *disk.Media
	disk     *diskuse.Guard
	ingest   *ingest.Manager
	bucket   *s3media.Media // the media, when it and the catalog are shared by a cluster; nil otherwise
	images   *imagegen.Generator
	notifier *notify.Notifier
	api      *kvsapi.Handler
	log      *slog.Logger
	http     *http.Server
	ready    atomic.Bool
	closers  closers            // what Start built, closed newest first by Shutdown
	cancel   context.CancelFunc // ends sessions, GetMedia tails and the background loops
	loops    *errgroup.Group    // the background loops (HTTP, retention, images, notifications)
	failed   context.Context    // done when a background loop has failed
}

// loop is a background loop of the server: it runs until ctx ends and returns nil then.
type loop struct {
	name string
	run  func(ctx context.Context) error
}

// Start opens the data dir, binds the listener and serves in the background until Shutdown.
// When a step fails, whatever the steps before it built is closed again, newest first.
func Start(cfg Config, env Env) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	env = env.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{log: env.Logger, cancel: cancel}
	s.closers.push(func() error { cancel(); return nil })
	b, err := s.build(ctx, cfg, env)
	if err != nil {
		if cerr := s.closers.close(); cerr != nil {
			s.log.Warn("closing what a failed start opened", "err", cerr)
		}
		return nil, err
	}
	s.startLoops(ctx, b.loops)
	s.ready.Store(true)
	s.announce(cfg, env, b)
	return s, nil
}

// startLoops runs every loop in the errgroup.
func (s *Server) startLoops(ctx context.Context, loops []loop) {
	s.loops, s.failed = errgroup.WithContext(context.Background())
	for _, l := range loops {
		s.goLoop(ctx, l)
	}
}

// goLoop runs l in the errgroup. Its error is logged and marks the server failed (Wait then
// shuts it down); Shutdown returns the first one.
func (s *Server) goLoop(ctx context.Context, l loop) {
	s.loops.Go(func() error {
		err := l.run(ctx)
		if err == nil || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
			return nil
		}
		s.log.Error("background loop failed; kvsd shuts down", "loop", l.name, "err", err)
		return fmt.Errorf("%s: %w", l.name, err)
	})
}

// liveBufferBytes bounds the in-memory buffer of each stream without retention.
const liveBufferBytes = 64 << 20

// shutdownTimeout bounds Run's shutdown: sessions to end, handlers to return.
const shutdownTimeout = 15 * time.Second

// Wait blocks until ctx ends (SIGINT/SIGTERM in main) or a background loop fails, then shuts
// the server down and returns the first loop error joined with Shutdown's.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.failed.Done():
	}
	s.log.Info("kvsd shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.Shutdown(shutdownCtx)
}

// Shutdown stops taking requests, ends long-lived sessions (fragments already acknowledged
// PERSISTED are durable; the one in flight was never acknowledged), waits for handlers (bounded
// by ctx) and the background loops, then closes the store and the catalog. It returns the first
// loop error first.
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
	loopErr := s.loops.Wait()
	return errors.Join(loopErr, err, s.closers.close())
}

// Run starts the server and blocks until ctx is cancelled or a background loop fails, then
// shuts down (Wait).
func Run(ctx context.Context, cfg Config, env Env) error {
	s, err := Start(cfg, env)
	if err != nil {
		return err
	}
	return s.Wait(ctx)
}
