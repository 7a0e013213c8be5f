// Package cli is kvsd's command line: Main dispatches a subcommand (serve, put, doctor,
// version), and each front end has its files here. The server itself is internal/app's.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X github.com/kvsd/kvsd/internal/cli.Version=…".
var Version = "dev"

const usage = `kvsd: a self-hosted Amazon Kinesis Video Streams server.

Usage:
  kvsd serve [flags]              run the server (kvsd serve -h lists the flags)
  kvsd put --stream NAME SOURCE   stream a video file or a Matroska pipe (kvsd put -h)
  kvsd doctor STREAM              explain why a stream does or does not produce images
  kvsd fsck --data-dir DIR        check (--repair: repair) a stopped server's data dir
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
		return serve(ctx, args[1:], stdout, stderr)
	case "put":
		return Put(ctx, args[1:], PutEnv{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Terminal: isTerminal(stderr)})
	case "doctor":
		return doctor(ctx, args[1:], os.Getenv, stdout, stderr)
	case "fsck":
		return fsckCmd(ctx, args[1:], os.Getenv, stdout, stderr, isTerminal(stderr))
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
