// Command kvsd is a self-hosted Amazon Kinesis Video Streams server.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kvsd/kvsd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
