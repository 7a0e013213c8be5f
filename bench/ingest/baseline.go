package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"github.com/kvsd/kvsd/bench/internal/baseline"
)

// serveBaseline is the baseline server: the least a durable ingest server must do. Each
// request body goes to a file of its own; every syncBytes received it calls f.Sync() and
// answers one JSON line, as kvsd answers PERSISTED once per fragment. Full duplex, chunked both
// ways, like kvsd's PutMedia. It runs until SIGTERM.
func serveBaseline(dir string, syncBytes int) error {
	if syncBytes <= 0 {
		return errors.New("-sync-bytes must be positive")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var seq atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("req-%d", seq.Add(1))))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		rc, err := baseline.Begin(w)
		if err != nil {
			return
		}
		ack := func() error {
			if err := f.Sync(); err != nil {
				return err
			}
			return baseline.Ack(w, rc)
		}
		buf := make([]byte, 64<<10)
		pending := 0 // bytes written since the last sync
		for {
			n, rerr := r.Body.Read(buf)
			if n > 0 {
				if _, err := f.Write(buf[:n]); err != nil {
					return
				}
				if pending += n; pending >= syncBytes {
					if ack() != nil {
						return
					}
					pending = 0
				}
			}
			if rerr != nil {
				if rerr == io.EOF && pending > 0 {
					_ = ack()
				}
				return
			}
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return baseline.Serve(ctx, h)
}
