package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kvsd/kvsd/internal/app"
)

// serve is `kvsd serve`: it runs the server until ctx ends (SIGINT/SIGTERM) or a background
// loop fails. Exit status: 0 after a clean stop, 1 when the server failed, 2 for usage errors.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := app.ParseServeFlags(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvsd serve: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd serve: %v\n", err)
		return 2
	}
	tuneGC(os.Getenv)
	if err := app.Run(ctx, cfg, app.Env{Getenv: os.Getenv, Stdout: stdout, Logger: log}); err != nil {
		fmt.Fprintf(stderr, "kvsd serve: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(cfg app.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
