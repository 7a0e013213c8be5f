package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
)

// Version is set at build time with -ldflags "-X github.com/kvsd/kvsd/internal/app.Version=…".
var Version = "dev"

const usage = `kvsd: a self-hosted Amazon Kinesis Video Streams server.

Usage:
  kvsd serve [flags]              run the server (kvsd serve -h lists the flags)
  kvsd put --stream NAME SOURCE   stream a video file or a Matroska pipe (kvsd put -h)
  kvsd doctor STREAM              explain why a stream does or does not produce images
  kvsd version                    print the version
`

// Main runs a kvsd subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		cfg, err := ParseServeFlags(args[1:], os.Getenv)
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
		if err := Run(ctx, cfg, Env{Getenv: os.Getenv, Stdout: stdout, Logger: log}); err != nil {
			fmt.Fprintf(stderr, "kvsd serve: %v\n", err)
			return 1
		}
		return 0
	case "put":
		return Put(ctx, args[1:], PutEnv{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Terminal: isTerminal(stderr)})
	case "doctor":
		return doctor(ctx, args[1:], os.Getenv, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "kvsd", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kvsd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
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
