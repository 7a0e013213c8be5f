package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kvsd/kvsd/producer"
)

// putUI prints what kvsd put does: on a terminal a progress bar (files) or a status line (live
// sources), redrawn in place; always the warnings and a summary.
type putUI struct {
	w      io.Writer
	tty    bool
	src    *putSource
	stream string
	began  time.Time
	acked  string // "persisted", or "received" on streams that keep no data

	mu       sync.Mutex
	st       producer.Stats
	drawn    bool // a progress line is on screen
	stopping bool
}

func newPutUI(w io.Writer, tty bool, src *putSource, stream string, retention int32) *putUI {
	acked := "persisted"
	if retention == 0 {
		acked = "received"
	}
	return &putUI{w: w, tty: tty, src: src, stream: stream, began: time.Now(), acked: acked}
}

// event receives the producer's events.
func (u *putUI) event(ev producer.Event) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.st = ev.Stats
	at := ev.Timecode.UTC().Format("15:04:05.000")
	switch ev.Kind {
	case producer.EventFragmentSkipped:
		u.printf("fragment at %s (%s, %d bytes) refused by the server and skipped: %v", at, ev.Duration, ev.Bytes, ev.Err)
	case producer.EventFragmentDropped:
		u.printf("buffer full: dropped the fragment at %s (%s) before it was sent; raise --buffer-mb or check the connection", at, ev.Duration)
	case producer.EventReconnect:
		u.printf("connection lost (%v); reconnecting and resending what was not persisted", ev.Err)
	case producer.EventWarning:
		u.printf("warning: %v", ev.Err)
	}
}

// printf prints a line above the progress line; the caller holds mu.
func (u *putUI) printf(format string, args ...any) {
	u.clear()
	fmt.Fprintf(u.w, "kvsd put: "+format+"\n", args...)
}

// clear erases the progress line; the caller holds mu.
func (u *putUI) clear() {
	if u.drawn {
		fmt.Fprint(u.w, "\r\033[K")
		u.drawn = false
	}
}

// run redraws the progress line until ctx ends; it says once when stopping begins.
func (u *putUI) run(ctx, runCtx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	stop := runCtx.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			stop = nil
			u.mu.Lock()
			u.stopping = true
			if !errors.Is(runCtx.Err(), context.DeadlineExceeded) {
				u.printf("stopping: sending the last fragment and waiting for its acknowledgements")
			}
			u.mu.Unlock()
		case <-t.C:
			if u.tty {
				u.mu.Lock()
				u.draw()
				u.mu.Unlock()
			}
		}
	}
}

// draw writes the progress line; the caller holds mu.
func (u *putUI) draw() {
	st := u.st
	el := time.Since(u.began)
	rate := float64(st.BytesSent) / max(el.Seconds(), 0.001)
	var line string
	if u.src.progress != nil {
		done, total := u.src.progress()
		frac := 0.0
		if total > 0 {
			frac = min(float64(done)/float64(total), 1)
		}
		const width = 24
		fill := int(frac * width)
		bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
		eta := "?"
		if frac > 0.01 {
			eta = (time.Duration(float64(el)/frac) - el).Round(time.Second).String()
		}
		line = fmt.Sprintf("[%s] %3.0f%%  %s/%s  %s %s  %s/s  ETA %s",
			bar, frac*100, mb(done), mb(total), fragments(st.Persisted), u.acked, mb(int64(rate)), eta)
	} else {
		line = fmt.Sprintf("live %s  %s %s (%s of video)  %d dropped  %.1f Mbit/s  %d waiting",
			el.Round(time.Second), fragments(st.Persisted), u.acked, st.Media.Round(time.Second), st.Dropped, rate*8/1e6, st.Fragments-st.Persisted-st.Skipped-st.Dropped)
	}
	if u.stopping {
		line = "stopping… " + line
	}
	fmt.Fprint(u.w, "\r\033[K"+line)
	u.drawn = true
}

func mb(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// summary prints the outcome and returns the exit status.
func (u *putUI) summary(st producer.Stats, runErr error, took time.Duration) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.clear()
	code := 0
	if runErr != nil {
		fmt.Fprintf(u.w, "kvsd put: %s\n", explainRunError(runErr, u.stream))
		code = 1
	}
	fmt.Fprintf(u.w, "kvsd put: %s: %d of %d fragments %s (%s of video, %d frames), %s sent in %s",
		u.stream, st.Persisted, st.Fragments, u.acked, st.Media.Round(time.Millisecond), st.Frames, mb(st.BytesSent), took.Round(100*time.Millisecond))
	if st.Reconnects > 0 {
		fmt.Fprintf(u.w, ", %d reconnects", st.Reconnects)
	}
	fmt.Fprintln(u.w)
	if st.Skipped > 0 {
		fmt.Fprintf(u.w, "kvsd put: %d fragments were refused by the server and are not in the stream (last reason: %v)\n", st.Skipped, st.LastError)
		code = 1
	}
	if st.Dropped > 0 {
		fmt.Fprintf(u.w, "kvsd put: %d fragments were dropped because the buffer was full\n", st.Dropped)
		code = 1
	}
	if st.Pending > 0 {
		fmt.Fprintf(u.w, "kvsd put: %d fragments were not confirmed before stopping; they may be missing from the stream", st.Pending)
		if n := len(st.Unconfirmed); n > 0 {
			const at = "2006-01-02T15:04:05.000Z"
			fmt.Fprintf(u.w, " (producer times %s to %s)", st.Unconfirmed[0].UTC().Format(at), st.Unconfirmed[n-1].UTC().Format(at))
		}
		fmt.Fprintln(u.w)
		code = 1
	}
	return code
}

// explainRunError puts the producer's fatal errors in plain words.
func explainRunError(err error, stream string) string {
	var ae *producer.AuthError
	switch {
	case errors.Is(err, producer.ErrStreamNotFound):
		return fmt.Sprintf("stream %s does not exist (any more): %v", stream, err)
	case errors.As(err, &ae):
		return fmt.Sprintf("the endpoint refused the credentials: %v", ae)
	}
	return err.Error()
}

// fragments says "1 fragment" or "N fragments".
func fragments[N int | int64](n N) string {
	if n == 1 {
		return "1 fragment"
	}
	return fmt.Sprintf("%d fragments", n)
}
