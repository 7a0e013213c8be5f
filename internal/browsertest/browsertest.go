// Package browsertest plays a media URL (HLS or DASH) in headless Chromium with a real web
// player (hls.js, dash.js or Shaka Player) and reports what the player did: how far the playhead
// got, what it buffered and decoded, the errors the player raised, the audio tracks it found,
// and for hls.js each fragment's program date time. Tests in other packages point it at kvsd.
//
// The page and the player library are served from an httptest server of its own, so the media
// is always fetched cross-origin and CORS is exercised as in a browser of a real user. A node
// script (web/play.mjs, playwright-core) drives Debian's /usr/bin/chromium; web/player.js is the
// page's side. Both, and the players, come from web/ (pinned in web/package-lock.json).
// With Options.SDK the page first gets the session URL with the AWS SDK for JavaScript, as the
// AWS sample viewer does (web/kvs-sdk.mjs, bundled with esbuild at the first such Play).
//
// Open drives a web application (kvsd's console) step by step instead: a Page, whose commands
// (go to, fill, click, wait, evaluate, download …) web/drive.mjs carries out in one Chromium
// page, recording every request, console message and uncaught error for the test to check.
//
// Requirements: /usr/bin/chromium, node 20 or later, and web/node_modules, which
// `scripts/setup.sh --test` (make test) installs. Without them the test is skipped, unless the
// environment has CI=true: then it fails.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Player names a web player.
type Player string

// The players; web/player.js has the glue for each.
const (
	HLSJS  Player = "hlsjs"  // hls.js (full build: alternate audio renditions included)
	DashJS Player = "dashjs" // dash.js
	Shaka  Player = "shaka"  // Shaka Player (HLS and DASH)
)

// Chromium is the browser Play drives: Debian's package.
const Chromium = "/usr/bin/chromium"

// libs are the files web/player.js loads for each player, relative to web/.
var libs = map[Player]string{
	HLSJS:  "node_modules/hls.js/dist/hls.js",
	DashJS: "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
	Shaka:  "node_modules/shaka-player/dist/shaka-player.compiled.js",
}

// Options says what to play, with which player, for how long.
type Options struct {
	URL    string // the master playlist or manifest
	Player Player
	// Watch is how long to play (default 6 s), counted from when the player is started (its
	// library loaded); play stops early on a fatal error or at the end of the media.
	Watch time.Duration
	// Config is the player's configuration: new Hls(Config) for hls.js,
	// player.updateSettings(Config) for dash.js, player.configure(Config) for Shaka.
	Config map[string]any
	// SDK, when set, makes the page get the URL to play as the AWS sample viewer does, with the
	// AWS SDK for JavaScript v3 (web/kvs-sdk.mjs): GetDataEndpoint, then
	// Get{HLS,DASH}StreamingSessionURL at the data endpoint. URL is then ignored.
	SDK *SDKSession
}

// SDKSession is what the page's AWS SDK calls need.
type SDKSession struct {
	Endpoint, Region             string // the control plane
	AccessKeyID, SecretAccessKey string // static credentials
	Protocol                     string // "HLS" or "DASH"
	// Input is the Get{HLS,DASH}StreamingSessionURL input as the SDK's JSON (StreamName included);
	// fields named *Timestamp are epoch milliseconds.
	Input map[string]any
}

// Result is what the player did. Times of the media timeline (CurrentTime, Start, ranges) are
// seconds, as the <video> element and the players count them.
type Result struct {
	Player  Player
	Live    bool // the player took the stream for live
	Ended   bool // the <video> element reached the end
	Samples []Sample
	// Advanced: the playhead moved forward between the first sample and a later one.
	Advanced                     bool
	Buffered                     []TimeRange // the <video> element's buffered ranges at the end
	VideoWidth, VideoHeight      int
	DecodedFrames, DroppedFrames int   // getVideoPlaybackQuality()
	VideoDecodedBytes            int64 // Chromium's webkitVideoDecodedByteCount
	AudioDecodedBytes            int64 // Chromium's webkitAudioDecodedByteCount: audio really played
	Errors                       []PlayerError
	AudioTracks                  []AudioTrack
	SessionURL                   string // the URL the AWS SDK returned (Options.SDK)
	// Fragments are the segments hls.js loaded (other players leave it empty), sorted by Type
	// then SN; Start is where hls.js put each on the playhead's timeline.
	Fragments []Fragment
	// Latency is the wall clock minus the playhead's date at the last sample that had one
	// (hls.js: hls.playingDate from the program date times; dash.js and Shaka: live only);
	// HasLatency is false when no sample had a date.
	Latency    time.Duration
	HasLatency bool
	// Console holds the page's console messages, page errors, failed requests and HTTP
	// responses of status 400 or more, in order.
	Console []string

	profile string // Chromium's --user-data-dir, to find its processes
}

// Sample is the playhead, taken every 250 ms.
type Sample struct {
	Wall         time.Time
	CurrentTime  float64
	PlayheadDate time.Time // zero when the player had none
	ReadyState   int
}

// TimeRange is one buffered range.
type TimeRange struct{ Start, End float64 }

// PlayerError is an error event of the player, or of the <video> element (Type "mediaError"),
// or of the harness's page glue (Type "harness").
type PlayerError struct {
	At    time.Time
	Fatal bool
	// hls.js: ErrorTypes (networkError, mediaError, ...) and ErrorDetails (manifestLoadError,
	// fragParsingError, ...); Shaka: "category N" and the numeric code; dash.js: "error" and its code.
	Type, Details string
	Message       string
	URL           string
	Code          int // the HTTP status where the player reports one (0: none, or a network/CORS failure)
}

// AudioTrack is an audio track (an alternate rendition or an adaptation set) as the player lists it.
type AudioTrack struct {
	ID, Name, Lang, GroupID string
	Default                 bool
	URL                     string // hls.js: the rendition's playlist
	Codec                   string
}

// Fragment is an HLS segment as hls.js saw it.
type Fragment struct {
	Type            string // "main", "audio"
	SN              int
	Start, Duration float64
	ProgramDateTime time.Time // zero without EXT-X-PROGRAM-DATE-TIME
	URL             string
}

// CurrentTime is the playhead at the last sample.
func (r Result) CurrentTime() float64 {
	if len(r.Samples) == 0 {
		return 0
	}
	return r.Samples[len(r.Samples)-1].CurrentTime
}

// Fatal returns the fatal errors.
func (r Result) Fatal() []PlayerError {
	var out []PlayerError
	for _, e := range r.Errors {
		if e.Fatal {
			out = append(out, e)
		}
	}
	return out
}

// String summarises the result for a test's log: the outcome, every error and the console.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: currentTime %.3f (advanced %v, ended %v, live %v), %dx%d, %d frames decoded (%d dropped), audio bytes %d, buffered %v\n",
		r.Player, r.CurrentTime(), r.Advanced, r.Ended, r.Live, r.VideoWidth, r.VideoHeight,
		r.DecodedFrames, r.DroppedFrames, r.AudioDecodedBytes, r.Buffered)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "player error (fatal %v): %s %s: %s %s (code %d)\n", e.Fatal, e.Type, e.Details, e.Message, e.URL, e.Code)
	}
	for _, t := range r.AudioTracks {
		fmt.Fprintf(&b, "audio track %+v\n", t)
	}
	for _, l := range r.Console {
		fmt.Fprintf(&b, "page: %s\n", l)
	}
	return b.String()
}

// sdkFiles are what Options.SDK needs besides the player, relative to web/.
var sdkFiles = []string{"node_modules/esbuild/package.json", "node_modules/@aws-sdk/client-kinesis-video/package.json",
	"node_modules/@aws-sdk/client-kinesis-video-archived-media/package.json"}

// Require skips t, or fails it when CI=true, unless everything Play needs for p is installed.
// Call it before setting up costly fixtures; Play calls it too.
func Require(t testing.TB, p Player) {
	t.Helper()
	needs(t, p, false)
}

// RequireSDK is Require for a Play with Options.SDK: the AWS SDK and esbuild too.
func RequireSDK(t testing.TB, p Player) {
	t.Helper()
	needs(t, p, true)
}

func needs(t testing.TB, p Player, sdk bool) {
	t.Helper()
	lib, ok := libs[p]
	if !ok {
		t.Fatalf("browsertest: unknown player %q", p)
	}
	files := []string{"node_modules/playwright-core/package.json", lib}
	if sdk {
		files = append(files, sdkFiles...)
	}
	requireInstalled(t, files...)
}

// requireInstalled skips t, or fails it when CI=true, unless Chromium, node and the files of
// web/ are installed.
func requireInstalled(t testing.TB, webFiles ...string) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(Chromium); err != nil {
		missing = append(missing, Chromium)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	for _, f := range webFiles {
		if _, err := os.Stat(filepath.Join(webDir(), f)); err != nil {
			missing = append(missing, filepath.Join("web", f))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("browsertest: %s not installed (scripts/setup.sh --test, which make test runs, installs them)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so this fails instead of skipping")
	}
	t.Skip(msg)
}

// Play plays o.URL in headless Chromium and returns what the player did. It fails t when the
// harness itself fails (Chromium does not start, the page does not load); what the player does
// is for the caller to assert on. When t fails, Play's result is logged. Chromium is gone when
// Play returns.
func Play(t testing.TB, o Options) Result {
	t.Helper()
	needs(t, o.Player, o.SDK != nil)
	if o.Watch <= 0 {
		o.Watch = 6 * time.Second
	}
	web := webDir()
	if o.SDK != nil {
		bundleSDK(t, web)
	}
	page := httptest.NewServer(pageHandler(web))
	defer page.Close()
	profile, err := os.MkdirTemp("", "kvsd-browsertest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)

	job, err := json.Marshal(map[string]any{
		"page": page.URL + "/play.html", "player": o.Player, "url": o.URL, "config": o.Config,
		"watchMs": o.Watch.Milliseconds(), "sampleMs": 250, "userDataDir": profile, "chromium": Chromium,
		"sdk": sdkJob(o.SDK),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Watch+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "play.mjs")
	cmd.Dir = web
	cmd.Stdin = bytes.NewReader(job)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// playwright closes Chromium on SIGTERM; SIGKILL follows if it does not exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	killWithParent(cmd) // should the test binary die first
	runErr := cmd.Run()
	killProfile(t, profile) // Chromium exits with node (its pipe closes); make sure of it

	var out struct {
		Report  *wireReport `json:"report"`
		Console []string    `json:"console"`
		Error   string      `json:"error"`
	}
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &out); err != nil || out.Report == nil || out.Error != "" {
		t.Fatalf("browsertest: playing %s with %s: node play.mjs: %v; %s\nstderr:\n%s\nconsole:\n%s",
			o.URL, o.Player, runErr, out.Error, stderr.String(), strings.Join(out.Console, "\n"))
	}
	r := out.Report.result()
	r.Console = out.Console
	r.profile = profile
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browsertest: %s\n%s", o.URL, r)
		}
	})
	return r
}

func sdkJob(s *SDKSession) any {
	if s == nil {
		return nil
	}
	return map[string]any{"endpoint": s.Endpoint, "region": s.Region, "accessKeyId": s.AccessKeyID,
		"secretAccessKey": s.SecretAccessKey, "protocol": s.Protocol, "input": s.Input}
}

// bundleSDK builds web/kvs-sdk.mjs and the AWS SDK into the browser script the page loads,
// node_modules/.kvsd/kvs-sdk.js, once per test binary. It is written under a temporary name
// and renamed, so test binaries running at once never see half a file.
func bundleSDK(t testing.TB, web string) {
	t.Helper()
	sdkOnce.Do(func() {
		dir := filepath.Join(web, "node_modules", ".kvsd")
		if sdkErr = os.MkdirAll(dir, 0o755); sdkErr != nil {
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("kvs-sdk.%d.js", os.Getpid()))
		cmd := exec.Command(filepath.Join(web, "node_modules", ".bin", "esbuild"), "kvs-sdk.mjs", "--bundle", "--format=iife",
			"--platform=browser", "--target=chrome120", "--log-level=warning", "--outfile="+tmp)
		cmd.Dir = web
		if out, err := cmd.CombinedOutput(); err != nil {
			sdkErr = fmt.Errorf("esbuild: %v: %s", err, out)
			return
		}
		sdkErr = os.Rename(tmp, filepath.Join(dir, "kvs-sdk.js"))
	})
	if sdkErr != nil {
		t.Fatalf("browsertest: bundling the AWS SDK: %v", sdkErr)
	}
}

var (
	sdkOnce sync.Once
	sdkErr  error
)

// pageHandler serves the page, its script and the players from web/, and nothing else there.
func pageHandler(web string) http.Handler {
	files := http.FileServer(http.Dir(web))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/play.html", r.URL.Path == "/player.js", strings.HasPrefix(r.URL.Path, "/node_modules/"):
			w.Header().Set("Cache-Control", "no-store")
			files.ServeHTTP(w, r)
		case r.URL.Path == "/favicon.ico":
			w.WriteHeader(http.StatusNoContent) // keeps a 404 out of the console
		default:
			http.NotFound(w, r)
		}
	})
}

// webDir is the repository's web/ directory, found from this source file.
func webDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "web")
}

// killProfile kills every process still running with profile on its command line: Chromium's
// (it was started with --user-data-dir=profile), should one have outlived node.
func killProfile(t testing.TB, profile string) {
	for _, pid := range profilePIDs(profile) {
		t.Logf("browsertest: killing Chromium process %d left running", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// profilePIDs lists the live processes whose command line contains profile.
func profilePIDs(profile string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(profile)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}
