// Package video makes the benchmark programs' test videos with ffmpeg and keeps them in a
// cache directory between runs.
package video

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Path is where the video called name, made with the ffmpeg arguments args, is kept in
// cacheDir: the name and a hash of the arguments, so that other arguments make another file.
func Path(cacheDir, name string, args []string) string {
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	return filepath.Join(cacheDir, fmt.Sprintf("%s-%s.mkv", name, hex.EncodeToString(sum[:6])))
}

// Encode runs ffmpeg with args, whose output must be "-": written to a pipe, as a live
// producer writes it, the Segment has an unknown size and there are no Cues. What ffmpeg
// prints goes to path (its directory made if needed) through a temporary file, and is returned.
func Encode(ctx context.Context, path string, args []string) ([]byte, error) {
	args = append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, stdout.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return stdout.Bytes(), os.Rename(tmp, path)
}
