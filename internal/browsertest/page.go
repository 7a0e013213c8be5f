package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Page is one headless Chromium page that a test drives step by step (web/drive.mjs): a web
// application such as kvsd's console, rather than a player run for a while like Play. Each
// method fails the test when the step fails.
type Page struct {
	t       testing.TB
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	profile string
	cancel  context.CancelFunc
	closed  bool
}

// PageLog is what the page did besides answering the steps: its console messages (type:
// text, and HTTP responses of status 400 or more), uncaught errors, every request's method and
// URL, and failed requests.
type PageLog struct {
	Console  []string `json:"console"`
	Errors   []string `json:"errors"`
	Requests []string `json:"requests"`
	Failed   []string `json:"failed"`
}

// RequirePage skips t, or fails it when CI=true, unless Chromium, node and playwright-core
// are installed.
func RequirePage(t testing.TB) {
	t.Helper()
	requireInstalled(t, "node_modules/playwright-core/package.json")
}

// Open starts Chromium with a width × height viewport and one blank page; it is closed when
// the test ends (or by Close).
func Open(t testing.TB, width, height int) *Page {
	t.Helper()
	RequirePage(t)
	profile, err := os.MkdirTemp("", "kvsd-browsertest-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	cmd := exec.CommandContext(ctx, "node", "drive.mjs")
	cmd.Dir = webDir()
	cmd.Stderr = &prefixWriter{t: t}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	killWithParent(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &Page{t: t, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), profile: profile, cancel: cancel}
	t.Cleanup(p.Close)
	p.send(map[string]any{"userDataDir": profile, "chromium": Chromium, "width": width, "height": height})
	return p
}

func (p *Page) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("browsertest: writing to drive.mjs: %v", err)
	}
}

// do runs one step and decodes its result into out (nil: ignored).
func (p *Page) do(out any, cmd map[string]any) {
	p.t.Helper()
	p.send(cmd)
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		p.t.Fatalf("browsertest: %v: drive.mjs ended: %v", cmd, err)
	}
	var r struct {
		OK    json.RawMessage `json:"ok"`
		Error *string         `json:"error"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		p.t.Fatalf("browsertest: %v: %v: %s", cmd, err, line)
	}
	if r.Error != nil {
		p.t.Fatalf("browsertest: %s %v: %s\n%s", cmd["op"], cmd, *r.Error, p.logText())
	}
	if out != nil {
		if err := json.Unmarshal(r.OK, out); err != nil {
			p.t.Fatalf("browsertest: %v: result %s: %v", cmd, r.OK, err)
		}
	}
}

// Goto loads url and waits for its load event.
func (p *Page) Goto(url string) { p.t.Helper(); p.do(nil, map[string]any{"op": "goto", "url": url}) }

// Fill types value into the input that sel (a Playwright selector) names.
func (p *Page) Fill(sel, value string) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "fill", "sel": sel, "value": value})
}

// Click clicks the element sel names, once it is visible and enabled.
func (p *Page) Click(sel string) { p.t.Helper(); p.do(nil, map[string]any{"op": "click", "sel": sel}) }

// ClickAt clicks sel at (x, y) CSS pixels from its top left corner.
func (p *Page) ClickAt(sel string, x, y float64) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "clickAt", "sel": sel, "x": x, "y": y})
}

// Hover moves the mouse over sel to (x, y) CSS pixels from its top left corner.
func (p *Page) Hover(sel string, x, y float64) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "hover", "sel": sel, "x": x, "y": y})
}

// Drag presses the mouse button at (x, y) CSS pixels from sel's top left corner, moves to
// (toX, toY) in a few steps and releases it there.
func (p *Page) Drag(sel string, x, y, toX, toY float64) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "drag", "sel": sel, "x": x, "y": y, "toX": toX, "toY": toY})
}

// Press focuses sel and presses key ("Enter", "ArrowLeft", "Tab" …).
func (p *Page) Press(sel, key string) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "press", "sel": sel, "key": key})
}

// Select chooses the option of value in the <select> sel names.
func (p *Page) Select(sel, value string) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "select", "sel": sel, "value": value})
}

// Wait waits up to timeout for sel to be visible.
func (p *Page) Wait(sel string, timeout time.Duration) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "wait", "sel": sel, "timeoutMs": timeout.Milliseconds()})
}

// WaitFor polls the JavaScript expression expr in the page until it is truthy (up to timeout)
// and decodes that value into out (nil: ignored).
func (p *Page) WaitFor(out any, expr string, timeout time.Duration) {
	p.t.Helper()
	p.do(out, map[string]any{"op": "waitFor", "expr": expr, "timeoutMs": timeout.Milliseconds()})
}

// Eval evaluates the JavaScript expression expr in the page and decodes its value into out.
func (p *Page) Eval(out any, expr string) {
	p.t.Helper()
	p.do(out, map[string]any{"op": "eval", "expr": expr})
}

// Text is the text content of the element sel names.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	var s string
	p.do(&s, map[string]any{"op": "text", "sel": sel})
	return s
}

// Screenshot writes a PNG of the viewport (or of the whole page) to path.
func (p *Page) Screenshot(path string, fullPage bool) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "screenshot", "path": path, "fullPage": fullPage})
}

// Viewport resizes the page.
func (p *Page) Viewport(width, height int) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "viewport", "width": width, "height": height})
}

// Download clicks sel, waits up to timeout for the download it starts, saves it to path and
// returns the file name the page suggested.
func (p *Page) Download(sel, path string, timeout time.Duration) string {
	p.t.Helper()
	var name string
	p.do(&name, map[string]any{"op": "download", "sel": sel, "path": path, "timeoutMs": timeout.Milliseconds()})
	return name
}

// SetClock makes the page's clock (Date, timers) start at t and run from there, for pages
// loaded afterwards too.
func (p *Page) SetClock(t time.Time) {
	p.t.Helper()
	p.do(nil, map[string]any{"op": "clock", "ms": t.UnixMilli()})
}

// Log is what the page did so far besides the steps.
func (p *Page) Log() PageLog {
	p.t.Helper()
	var l PageLog
	p.do(&l, map[string]any{"op": "log"})
	return l
}

func (p *Page) logText() string {
	p.send(map[string]any{"op": "log"})
	line, err := p.out.ReadBytes('\n')
	var r struct {
		OK PageLog `json:"ok"`
	}
	if err != nil || json.Unmarshal(line, &r) != nil {
		return ""
	}
	return r.OK.String()
}

// String summarises the log for a failing test: everything but the requests, of which the
// last 20.
func (l PageLog) String() string {
	var b strings.Builder
	for _, part := range []struct {
		name  string
		lines []string
	}{{"console", l.Console}, {"uncaught error", l.Errors}, {"failed request", l.Failed}, {"request", l.Requests[max(0, len(l.Requests)-20):]}} {
		for _, s := range part.lines {
			if len(s) > 300 {
				s = s[:300] + "…"
			}
			fmt.Fprintf(&b, "page %s: %s\n", part.name, s)
		}
	}
	return b.String()
}

// Close ends Chromium; the test's cleanup calls it too.
func (p *Page) Close() {
	if p.closed {
		return
	}
	p.closed = true
	_, _ = io.WriteString(p.in, `{"op":"close"}`+"\n")
	_ = p.in.Close()
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cancel()
		<-done
	}
	p.cancel()
	killProfile(p.t, p.profile)
	_ = os.RemoveAll(p.profile)
}

// prefixWriter logs drive.mjs's stderr through the test.
type prefixWriter struct{ t testing.TB }

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.t.Logf("drive.mjs: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
