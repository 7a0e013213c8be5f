package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fsck"
	"github.com/kvsd/kvsd/internal/keys"
)

// fsckCmd is `kvsd fsck --data-dir DIR [--repair]`: it checks a stopped server's data dir and
// prints one line per problem, then a summary. Exit status: 0 healthy, 1 problems found (and
// with --repair, repaired where it could), 2 usage errors or a data dir it cannot check (in use,
// missing).
func fsckCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, terminal bool) int {
	fl := flag.NewFlagSet("kvsd fsck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv("KVSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); v != "" {
			return v
		}
		return def
	}
	dataDir := fl.String("data-dir", env("data-dir", ""), "the data dir of a stopped kvsd (env KVSD_DATA_DIR)")
	repair := fl.Bool("repair", false, "re-index intact records the index lacks and drop index entries whose media is gone or damaged; media is never deleted")
	var kc app.KeyConfig
	fl.StringVar(&kc.KeyFile, "key-file", env("key-file", ""), "the key file kvsd runs with (default <data-dir>/kvsd.key) (env KVSD_KEY_FILE)")
	useKMS := env("kms", "")
	fl.BoolVar(&kc.KMS, "kms", useKMS == "true" || useKMS == "1", "data keys are wrapped by KMS, as with kvsd serve --kms (env KVSD_KMS)")
	fl.StringVar(&kc.KMSEndpoint, "kms-endpoint", env("kms-endpoint", ""), "KMS-compatible endpoint, as with kvsd serve (env KVSD_KMS_ENDPOINT)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvsd fsck --data-dir DIR [--repair]\n\nChecks a stopped kvsd's data dir: every record's checksums and decryption, and the index against the media.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dataDir == "" || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "kvsd fsck: --data-dir DIR is required, and nothing else")
		return 2
	}
	catalogPath := filepath.Join(*dataDir, "catalog.db")
	if _, err := os.Stat(catalogPath); err != nil {
		fmt.Fprintf(stderr, "kvsd fsck: %s is not a kvsd data dir: %v\n", *dataDir, err)
		return 2
	}
	db, err := bolt.Open(catalogPath) // the catalog's lock: refuses a dir a running kvsd holds
	if err != nil {
		fmt.Fprintf(stderr, "kvsd fsck: refusing to check %s: %v (stop kvsd first)\n", *dataDir, err)
		return 2
	}
	defer db.Close()

	cfg := fsck.Config{MediaDir: filepath.Join(*dataDir, "media"), Index: db, Repair: *repair, Out: stdout}
	kc.DataDir = *dataDir
	if kek, err := app.OpenKEK(ctx, kc, getenv, false); err != nil {
		cfg.KeysErr = err
		if errors.Is(err, fs.ErrNotExist) {
			cfg.KeysErr = fmt.Errorf("no key file (%w); give the one kvsd runs with, --key-file", err)
		}
	} else {
		cfg.Keys = keys.NewRing(kek, nil)
	}
	var bar *progressBar
	if terminal {
		bar = &progressBar{w: stderr}
		cfg.Progress = bar.update
	}
	res, err := fsck.Run(ctx, cfg)
	bar.clear()
	if err != nil {
		fmt.Fprintf(stderr, "kvsd fsck: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "%d streams, %d segments, %d records, %s checked: ", res.Streams, res.Segments, res.Records, humanBytes(res.Bytes))
	switch {
	case res.Problems == 0:
		fmt.Fprintln(stdout, "no problems")
		return 0
	case *repair:
		fmt.Fprintf(stdout, "%d problems; repaired: %d fragments re-indexed, %d index entries dropped (no media was deleted)\n", res.Problems, res.Reindexed, res.Dropped)
	default:
		fmt.Fprintf(stdout, "%d problems (kvsd fsck --repair re-indexes intact records and drops entries whose media is gone; it deletes no media)\n", res.Problems)
	}
	if res.KeyProblems > 0 {
		fmt.Fprintf(stdout, "%d records could not be decrypted: give the key file or KMS kvsd runs with; they are left as they are\n", res.KeyProblems)
	}
	return 1
}

// progressBar draws fsck's progress on a terminal, at most ten times a second.
type progressBar struct {
	w    io.Writer
	last time.Time
	drew bool
}

func (p *progressBar) update(done, total int64) {
	if now := time.Now(); now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	} else {
		p.last = now
	}
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f %% %s of %s ", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, humanBytes(done), humanBytes(total))
	p.drew = true
}

// clear removes the bar so that the summary starts on a clean line.
func (p *progressBar) clear() {
	if p != nil && p.drew {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 70))
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.2f TB", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d kB", (n+999)/1000)
}
