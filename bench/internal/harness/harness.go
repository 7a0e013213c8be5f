// Package harness is what the benchmark programs do around their sections: parse the flags
// they share, make the work dir, log progress, run the sections -only selects, end the report
// with its targets and turn the outcome into the exit status.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kvsd/kvsd/bench/internal/report"
)

// Counts parses a -streams value: positive numbers, comma-separated.
func Counts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s %q: want positive numbers, comma-separated", flagName, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// Only parses -only: the sections named (comma-separated), each one of all. None named, the
// set is empty and every section runs.
func Only(only string, all []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(all, s) {
			return nil, fmt.Errorf("-only %q: want one of %s", s, strings.Join(all, ", "))
		}
		set[s] = true
	}
	return set, nil
}

// Main runs bench until it ends or SIGINT or SIGTERM comes, with the report on stdout and
// progress on stderr, and returns the program's exit status: 1 if it failed, 3 if a target
// was missed (the report says which), 0 otherwise. prog names the program in the report's
// command line (go run ./bench/<prog>) and in errors.
func Main(prog string, args []string, bench func(ctx context.Context, out, log io.Writer, command string) ([]report.Result, error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := bench(ctx, os.Stdout, os.Stderr, "go run ./bench/"+prog+" "+strings.Join(args, " "))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		return 1
	}
	if !report.Met(results) {
		return 3
	}
	return 0
}

// Header starts a report: its title, the command that ran it and the date.
func Header(w io.Writer, title, command string) {
	fmt.Fprintf(w, "# %s\n\n", title)
	fmt.Fprintf(w, "- command: `%s`\n", strings.TrimSpace(command))
	fmt.Fprintf(w, "- date: %s\n", time.Now().UTC().Format(time.RFC3339))
}

// Logf writes one progress line, stamped with the seconds since started.
func Logf(w io.Writer, started time.Time, format string, a ...any) {
	fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, a...))
}

// WorkDir makes dir, or, if dir is "", a new temporary directory named prefix*, which done
// removes unless keep. Call done when the run ends.
func WorkDir(dir, prefix string, keep bool) (work string, done func(), err error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		return tmp, func() {}, nil
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// Section is one part of a benchmark's report.
type Section struct {
	Name string
	Run  func(context.Context) error
}

// RunSections runs the sections in order, those in only if it names any, each even if an
// earlier one failed, and returns their errors, each wrapped with its section's name, and
// ctx's error after any section that returned none.
func RunSections(ctx context.Context, only map[string]bool, sections ...Section) error {
	errs := make([]error, 0, len(sections))
	for _, s := range sections {
		if len(only) > 0 && !only[s.Name] {
			continue
		}
		if err := s.Run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
			continue
		}
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}
