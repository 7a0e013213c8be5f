//go:build cgo

package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/rtspsrc/rtsptest"
)

// The rule for README.md: a ```sh block holds commands, which TestREADMECommands runs; a
// command ends at the end of its line unless the line ends in a backslash or a quote is still
// open, and lines starting with # are comments. What commands print goes in ```text blocks
// (```json and ```go blocks are not run either). A fence without a language fails the test.
//
// Every command must match exactly one entry here, by prefix, and every entry at least one
// command, so a new command fails the test until it gets an entry: one that runs it and checks
// what a user runs it for, or, where it cannot run here, skip with a one-line reason, e.g.
//
//	{prefix: "kvsd serve --tls-cert", skip: "binds the fixed port 4580 with a real certificate"},
//	{prefix: "aws kinesisvideo list-streams", check: func(t *testing.T, r *readme, out string) {…}},
//
// Commands run in README order, each in a fresh bash in one working directory (the user's,
// holding clip.mkv), after the assignments (E=…, export …) before it in its block, with kvsd's
// credentials exported as kvsd prints them, and with http://127.0.0.1:4580 replaced by the URL
// of the kvsd this test starts. Each must exit 0.
// tlsSkip is why the TLS section's client steps are not run here: this test's kvsd serves plain
// http. TestTLSServesRealClients runs the same steps (aws CLI with the bundle, kvsd put, kvsd
// doctor, /healthz) against a kvsd serving a test certificate.
const tlsSkip = "this test's kvsd serves plain http; TestTLSServesRealClients runs these steps against kvsd over https"

// backupSkip: the backup recipe stops and starts kvsd between its commands.
const backupSkip = "stops and restarts kvsd between its steps; TestBackupRecipe runs the README's backup and restore blocks against a kvsd process"

var readmeSteps = []readmeStep{
	{prefix: "head -c 32 /dev/urandom | base64 >> data/kvsd.key", skip: "this test's kvsd keeps its key file in its own data dir; TestKeyFileRoundTripAndRotation (internal/keys) appends a key the same way and reads old and new data keys"},
	{prefix: "mkdir -p backup", skip: backupSkip},
	{prefix: "cp -p data/", skip: backupSkip},
	{prefix: "rsync -a ", skip: backupSkip},
	{prefix: "kvsd fsck --data-dir restored --repair", skip: backupSkip},
	{prefix: "make run", skip: "installs Debian packages with apt-get and serves on the fixed port 4580 until stopped; this test starts kvsd itself"},
	{prefix: "make test", skip: "runs every test, this one included"},
	{prefix: "make fuzz", skip: "fuzzes each target for a minute"},
	{prefix: "go test ./internal/kvsapi -run CLI", skip: "runs tests of the suite that make test runs anyway"},
	{prefix: "E=http://127.0.0.1:4580"}, // assignments run before the later commands of their block
	{prefix: "openssl req -x509 -newkey ec", check: func(t *testing.T, r *readme, _ string) {
		pemBytes, err := os.ReadFile(filepath.Join(r.dir, "cert.pem"))
		require.NoError(t, err)
		blk, _ := pem.Decode(pemBytes)
		require.NotNil(t, blk, "cert.pem holds a PEM certificate")
		cert, err := x509.ParseCertificate(blk.Bytes)
		require.NoError(t, err)
		require.NoError(t, cert.VerifyHostname("127.0.0.1"), "clients dialling 127.0.0.1 accept it")
		require.NoError(t, cert.VerifyHostname("localhost"))
		_, err = tls.LoadX509KeyPair(filepath.Join(r.dir, "cert.pem"), filepath.Join(r.dir, "key.pem"))
		require.NoError(t, err, "the pair kvsd serve --tls-cert/--tls-key loads")
	}},
	{prefix: "kvsd serve --tls-cert", skip: tlsSkip},
	{prefix: "head -c 32 /dev/urandom | base64 > /etc/kvsd/cluster.key", skip: "writes /etc; the cluster tests (TestNoFrameBytesInTheBucket) give their nodes one key file of this format"},
	{prefix: "kvsd serve --catalog postgres://", skip: "needs PostgreSQL and an S3 server at fixed example addresses; TestSingleNodeOnPostgresAndS3 runs kvsd configured so"},
	{prefix: "E=https://127.0.0.1:4580", skip: tlsSkip},
	{prefix: "aws --ca-bundle cert.pem", skip: tlsSkip},
	{prefix: "export AWS_CA_BUNDLE", skip: tlsSkip},
	{prefix: "aws kinesisvideo list-streams --endpoint-url $E", skip: tlsSkip},
	{prefix: "kvsd put --stream cam-1 --endpoint-url $E", skip: tlsSkip},
	{prefix: "kvsd doctor --endpoint-url $E cam-1", skip: tlsSkip},
	{prefix: "curl --cacert cert.pem", skip: tlsSkip},
	{prefix: "export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=…", rewrite: func(_ *testing.T, _ *readme, cmd string) string {
		// The user fills in the pair kvsd printed.
		return strings.NewReplacer("AWS_ACCESS_KEY_ID=…", "AWS_ACCESS_KEY_ID="+kvstest.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY=…", "AWS_SECRET_ACCESS_KEY="+kvstest.SecretAccessKey).Replace(cmd)
	}},

	{prefix: "aws kinesisvideo create-stream --stream-name cam-1 --data-retention-in-hours 24", check: func(t *testing.T, r *readme, _ string) {
		info := r.describe(t)
		require.Equal(t, kvtypes.StatusActive, info.Status)
		require.Equal(t, int32(24), aws.ToInt32(info.DataRetentionInHours))
	}},
	{prefix: "aws kinesisvideo describe-stream --stream-name cam-1", check: func(t *testing.T, r *readme, out string) {
		var got struct {
			StreamInfo struct{ StreamName, StreamARN, Status string }
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got), out)
		require.Equal(t, "cam-1", got.StreamInfo.StreamName)
		require.Equal(t, aws.ToString(r.describe(t).StreamARN), got.StreamInfo.StreamARN)
		require.Equal(t, "ACTIVE", got.StreamInfo.Status)
	}},
	{prefix: "gst-launch-1.0 -q videotestsrc", check: func(t *testing.T, r *readme, out string) {
		// curl prints kvsd's acknowledgements; each PERSISTED one is a stored fragment.
		var persisted []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ack struct{ EventType, FragmentNumber string }
			require.NoError(t, json.Unmarshal([]byte(line), &ack), "an ack line: %q", line)
			require.NotEmpty(t, ack.EventType, "an ack line: %q", line)
			require.NotEqual(t, "ERROR", ack.EventType, line)
			if ack.EventType == "PERSISTED" {
				persisted = append(persisted, ack.FragmentNumber)
			}
		}
		require.GreaterOrEqual(t, len(persisted), 3, "5 s of video, a keyframe a second:\n%s", out)
		require.Equal(t, persisted, numbers(r.added(t)))
	}},
	{prefix: "kvsd put --endpoint-url $E --stream cam-1 --create clip.mkv", check: func(t *testing.T, r *readme, out string) {
		require.Len(t, r.added(t), 1, "clip.mkv is one 2-s fragment")
	}},
	{prefix: "kvsd put --endpoint-url $E --stream cam-1 --fast --start-time \"$(date -u -d '2 hours ago' +%FT%TZ)\" clip.mkv", check: func(t *testing.T, r *readme, _ string) {
		added := r.added(t)
		require.Len(t, added, 1)
		// A date relative to today: a fixed one would be refused with ERROR 4007 once it is
		// more than --max-clock-skew (a year) in the past.
		require.InDelta(t, time.Now().Add(-2*time.Hour).UnixMilli(), added[0].Producer, float64(time.Minute.Milliseconds()))
	}},
	{prefix: "gst-launch-1.0 -q v4l2src", live: true, rewrite: func(_ *testing.T, _ *readme, cmd string) string {
		return strings.Replace(cmd, "v4l2src", "videotestsrc is-live=true", 1) // no camera here: a live test pattern
	}, check: func(t *testing.T, r *readme, _ string) {
		r.requireTagged(t, fragment.TagImageGeneration)
	}},
	{prefix: "ffmpeg -i rtsp://camera/stream", live: true, rewrite: func(_ *testing.T, r *readme, cmd string) string {
		return strings.Replace(cmd, "rtsp://camera/stream", r.camera, 1) // a test camera (rtsptest)
	}, check: func(t *testing.T, r *readme, _ string) {
		r.requireTagged(t, fragment.TagNotification)
	}},
	{prefix: "kvsd put --stream cam-1 clip.mkv", skip: "no endpoint: streams to AWS KVS, which needs an AWS account"},

	{prefix: "aws kinesis-video-archived-media list-fragments", check: func(t *testing.T, r *readme, out string) {
		var got struct {
			Fragments []struct{ FragmentNumber string }
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got), out)
		var listed []string
		for _, f := range got.Fragments {
			listed = append(listed, f.FragmentNumber)
		}
		slices.Sort(listed)
		require.Equal(t, numbers(r.fragments(t)), listed)
	}},
	{prefix: "aws kinesis-video-archived-media get-media-for-fragment-list out.mkv", rewrite: func(t *testing.T, r *readme, cmd string) string {
		return strings.Replace(cmd, "9…", r.fragments(t)[0].Number, 1) // the user picks one from list-fragments
	}, check: func(t *testing.T, r *readme, _ string) {
		require.Equal(t, numbers(r.fragments(t)[:1]), r.outMKV(t))
		out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", filepath.Join(r.dir, "out.mkv"), "-f", "null", "-").CombinedOutput()
		require.NoError(t, err, string(out))
		require.Empty(t, string(out), "ffmpeg decodes out.mkv without complaint")
	}},
	{prefix: "aws kinesis-video-media get-media out.mkv", check: func(t *testing.T, r *readme, _ string) {
		// No decoding check: cam-1 has had four producers with different SPS/PPS by now.
		got := r.outMKV(t)
		slices.Sort(got)
		require.Equal(t, numbers(r.fragments(t)), got, "EARLIEST: every stored fragment")
	}},
	{prefix: "aws kinesis-video-archived-media get-hls-streaming-session-url", check: func(t *testing.T, r *readme, out string) {
		var got struct{ HLSStreamingSessionURL string }
		require.NoError(t, json.Unmarshal([]byte(out), &got), out)
		require.True(t, strings.HasPrefix(got.HLSStreamingSessionURL, r.srv.URL+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="), got.HLSStreamingSessionURL)
		probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0", got.HLSStreamingSessionURL).Output()
		require.NoError(t, err)
		require.Equal(t, "h264", strings.Fields(string(probe))[0], "ffprobe opens the session")
	}},
	{prefix: "ffplay 'http", skip: "opens a window; the get-hls-streaming-session-url step opens the session with ffprobe instead"},
	{prefix: "aws kinesis-video-archived-media get-clip clip.mp4", check: func(t *testing.T, r *readme, _ string) {
		probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", filepath.Join(r.dir, "clip.mp4")).Output()
		require.NoError(t, err)
		require.Regexp(t, `^h264,[1-9][0-9]*$`, strings.TrimSpace(string(probe)), "a decodable MP4")
	}},
	{prefix: "ffplay out.mkv", skip: "opens a window; the get-media-for-fragment-list step decodes its out.mkv with ffmpeg instead"},

	{prefix: "aws kinesisvideo update-image-generation-configuration --stream-name cam-1", check: func(t *testing.T, r *readme, _ string) {
		out, err := r.srv.KinesisVideo().DescribeImageGenerationConfiguration(context.Background(),
			&kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("cam-1")})
		require.NoError(t, err)
		cfg := out.ImageGenerationConfiguration
		require.Equal(t, kvtypes.ConfigurationStatusEnabled, cfg.Status)
		require.Equal(t, "s3://images/cam-1", aws.ToString(cfg.DestinationConfig.Uri))
	}},
	{prefix: "aws kinesisvideo tag-stream --stream-name cam-1 --tags kvsd:ImageGeneration=ALL_FRAGMENTS", check: func(t *testing.T, r *readme, _ string) {
		// What the user wants: images of the next fragment, untagged, in the local folder. The
		// 2-s clip starts on a multiple of the 3-s sampling interval, where images are taken.
		start := time.Now().Add(3 * time.Second).Truncate(3 * time.Second)
		r.put(t, "--fast", "--start-time", strconv.FormatInt(start.Unix(), 10), "clip.mkv")
		dir := filepath.Join(r.srv.Config.DataDir, "buckets", "images", "cam-1")
		require.Eventually(t, func() bool {
			jpgs, _ := filepath.Glob(filepath.Join(dir, "111122223333_cam-1_*.jpg"))
			return len(jpgs) > 0
		}, 20*time.Second, 50*time.Millisecond, "an image in %s", dir)
	}},
	{prefix: "kvsd doctor cam-1", check: func(t *testing.T, r *readme, out string) {
		require.Contains(t, out, "configuration ENABLED")
		require.Contains(t, out, "images are being generated for this stream")
	}},

	{prefix: "aws kinesisvideo update-notification-configuration --stream-name cam-1", check: func(t *testing.T, r *readme, _ string) {
		// The README's broker is the one `make setup` starts: a fragment tagged for notification
		// must arrive there as a PERSISTED event.
		nc, err := nats.Connect("nats://127.0.0.1:4222", nats.Timeout(5*time.Second))
		require.NoError(t, err, "make setup starts nats-server on 127.0.0.1:4222")
		defer nc.Close()
		sub, err := nc.SubscribeSync("kvs.events")
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
		r.put(t, "--fast", "--notify", "clip.mkv")
		arn := aws.ToString(r.describe(t).StreamARN)
		deadline := time.Now().Add(20 * time.Second)
		for {
			msg, err := sub.NextMsg(time.Until(deadline))
			require.NoError(t, err, "a PERSISTED event for %s on kvs.events", arn)
			var ev struct{ StreamArn, NotificationType string }
			if json.Unmarshal(msg.Data, &ev) == nil && ev.StreamArn == arn && ev.NotificationType == "PERSISTED" {
				return
			}
		}
	}},
}

type readmeStep struct {
	prefix string // the commands it is for start with this
	skip   string // why this test cannot run them; empty: it runs them
	// rewrite fills in what the README leaves to the user (a camera, a fragment number).
	rewrite func(t *testing.T, r *readme, cmd string) string
	// live: the command streams until Ctrl-C. It gets one once it has stored a fragment.
	live bool
	// check asserts the command's effect; out is its standard output.
	check func(t *testing.T, r *readme, out string)
}

// readmeCommand is one command of a ```sh block.
type readmeCommand struct {
	line  int    // where it starts in README.md
	block int    // which ```sh block holds it
	text  string // as written, continuation lines included
}

const readmeURL = "http://127.0.0.1:4580"

// assignment is a command that only sets variables: later commands of its block run after it.
var assignment = regexp.MustCompile(`^(export\s+)?([A-Za-z_]\w*=\S*\s*)+(#.*)?$`)

// TestREADMECommands runs the commands of README.md's ```sh blocks against a kvsd it starts and
// checks their effects; readmeSteps says how, for each command.
func TestREADMECommands(t *testing.T) {
	t.Parallel() // Independent (its own server, camera and folders) and mostly waiting on real-time commands.
	cmds := readREADME(t, "../../README.md")
	steps := readmeStepsFor(t, cmds)
	r := startREADME(t)
	assigned := map[int][]string{} // block → its assignments so far
	for i, c := range cmds {
		s := steps[i]
		if s.skip != "" {
			t.Logf("README.md:%d not run (%s): %s", c.line, s.skip, firstLine(c.text))
			continue
		}
		cmd := strings.ReplaceAll(c.text, readmeURL, r.srv.URL)
		if s.rewrite != nil {
			cmd = s.rewrite(t, r, cmd)
		}
		if assignment.MatchString(cmd) {
			assigned[c.block] = append(assigned[c.block], cmd)
			continue
		}
		ok := t.Run(fmt.Sprintf("README.md:%d", c.line), func(t *testing.T) {
			r.before = r.fragments(t)
			out := r.run(t, strings.Join(append(slices.Clone(assigned[c.block]), cmd), "\n"), s.live)
			if s.check != nil {
				s.check(t, r, out)
			}
		})
		if !ok {
			break // later commands build on this one
		}
	}
}

// readREADME returns the commands of README.md's ```sh blocks, checking that every fence
// names its language.
func readREADME(t *testing.T, path string) []readmeCommand {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var (
		cmds  []readmeCommand
		lang  string // of the open fence; "" outside one
		block = -1
		open  bool // the last command goes on on the next line
		quote byte // the quote open at the end of the last line
	)
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if rest, ok := strings.CutPrefix(line, "```"); ok {
			switch {
			case lang != "":
				require.False(t, open, "README.md:%d: the block ends inside a command", n)
				lang = ""
			case rest == "":
				t.Fatalf("README.md:%d: a fence without a language: ```sh for commands (this test runs them), ```text for output", n)
			default:
				lang = rest
				if lang == "sh" {
					block++
				}
			}
			continue
		}
		if lang != "sh" {
			continue
		}
		if open {
			cmds[len(cmds)-1].text += "\n" + line
		} else {
			if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			cmds = append(cmds, readmeCommand{line: n, block: block, text: strings.TrimSpace(line)})
		}
		quote = openQuote(line, quote)
		open = quote != 0 || strings.HasSuffix(line, `\`)
	}
	require.NotEmpty(t, cmds, "no ```sh block in %s", path)
	return cmds
}

// openQuote returns the quote (' or ") still open at the end of a line of shell, given the one
// open at its start (0 for none). A # that starts a word outside quotes starts a comment.
func openQuote(line string, quote byte) byte {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			i++
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return quote
		}
	}
	return quote
}

// readmeStepsFor returns the step of each command, failing the test when a command has none or
// several, or a step matches no command.
func readmeStepsFor(t *testing.T, cmds []readmeCommand) []readmeStep {
	t.Helper()
	out := make([]readmeStep, len(cmds))
	used := make([]bool, len(readmeSteps))
	for i, c := range cmds {
		var found []int
		for j, s := range readmeSteps {
			if strings.HasPrefix(c.text, s.prefix) {
				found = append(found, j)
			}
		}
		switch len(found) {
		case 0:
			t.Errorf("README.md:%d: %q is neither run nor skipped: add it to readmeSteps in internal/app/readme_test.go", c.line, firstLine(c.text))
		case 1:
			out[i], used[found[0]] = readmeSteps[found[0]], true
		default:
			t.Errorf("README.md:%d: %q matches %d readmeSteps; make their prefixes longer", c.line, firstLine(c.text), len(found))
		}
	}
	for j, s := range readmeSteps {
		if !used[j] {
			t.Errorf("readmeSteps: no command in README.md starts with %q; remove the entry or fix its prefix", s.prefix)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// readme is the user's side of TestREADMECommands: a kvsd, a working directory and a shell
// environment.
type readme struct {
	srv    *kvstest.Server
	dir    string                 // working directory: clip.mkv, out.mkv
	env    []string               // the commands' environment
	kvsd   string                 // the kvsd binary built from this tree
	camera string                 // rtsp:// URL of a test camera
	before []kvstest.FragmentInfo // cam-1's fragments when the running step began
}

func startREADME(t *testing.T) *readme {
	for _, tool := range []string{kvstest.AWSCLIPath, "gst-launch-1.0", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run `make setup`", tool)
		}
	}
	r := &readme{srv: kvstest.Start(t)}
	r.kvsd = buildKVSD(t)
	clip := kvstest.SourceFile(t, "clip.mkv", kvstest.X264...) // 2 s of H.264, a keyframe every second
	r.dir = filepath.Dir(clip)
	track, frames, err := rtsptest.Load(context.Background(), clip)
	require.NoError(t, err)
	cam, err := rtsptest.Start(rtsptest.Config{Track: track, Frames: frames, Loop: true})
	require.NoError(t, err)
	t.Cleanup(cam.Close)
	r.camera = cam.URL()

	awsConfig := filepath.Join(t.TempDir(), "aws-config")
	require.NoError(t, os.WriteFile(awsConfig, []byte("[default]\n"), 0o600))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KVSD_") && !strings.HasPrefix(kv, "PATH=") {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env,
		// kvsd put and doctor from this tree; Debian's aws CLI v2 before any other aws.
		"PATH="+filepath.Dir(r.kvsd)+":/usr/bin:/bin:"+os.Getenv("PATH"),
		// As kvsd prints them at its first start.
		"AWS_ACCESS_KEY_ID="+kvstest.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+kvstest.SecretAccessKey,
		"AWS_DEFAULT_REGION="+kvstest.Region,
		// No profile of this machine's user.
		"AWS_CONFIG_FILE="+awsConfig, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(r.dir, "no-credentials"))
	return r
}

// run runs script in bash and returns its standard output. A live script gets a Ctrl-C (SIGINT
// to its process group) once it has stored a fragment; any script gets a minute.
func (r *readme) run(t *testing.T, script string, live bool) string {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir, cmd.Env = r.dir, r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // signals reach the whole pipeline
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	signal := func(sig syscall.Signal) { _ = syscall.Kill(-cmd.Process.Pid, sig) }
	exited := false
	defer func() { // a failed check below leaves nothing running
		if !exited {
			signal(syscall.SIGKILL)
			<-done
		}
	}()

	deadline := time.After(time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			exited = true
			require.NoError(t, err, "%s\nstdout:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())
			return stdout.String()
		case <-tick.C:
			if live && len(r.added(t)) > 0 {
				signal(syscall.SIGINT)
				live = false
			}
		case <-deadline:
			signal(syscall.SIGKILL)
			<-done
			exited = true
			t.Fatalf("%s\nstill running after a minute; stdout:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())
		}
	}
}

// put runs the built kvsd put against cam-1, for checks that need fragments the README's
// commands do not send.
func (r *readme) put(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(r.kvsd, append([]string{"put", "--endpoint-url", r.srv.URL, "--stream", "cam-1"}, args...)...)
	cmd.Dir, cmd.Env = r.dir, r.env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}

// fragments lists cam-1's stored fragments, in fragment-number order (none before it exists).
func (r *readme) fragments(t *testing.T) []kvstest.FragmentInfo {
	t.Helper()
	_, err := r.srv.KinesisVideo().DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	var notFound *kvtypes.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return nil
	}
	require.NoError(t, err)
	return r.srv.ListFragments(t, "cam-1")
}

// added returns the fragments stored since the running step began.
func (r *readme) added(t *testing.T) []kvstest.FragmentInfo {
	t.Helper()
	var out []kvstest.FragmentInfo
	for _, f := range r.fragments(t) {
		if !slices.ContainsFunc(r.before, func(b kvstest.FragmentInfo) bool { return b.Number == f.Number }) {
			out = append(out, f)
		}
	}
	return out
}

func (r *readme) describe(t *testing.T) *kvtypes.StreamInfo {
	t.Helper()
	out, err := r.srv.KinesisVideo().DescribeStream(context.Background(), &kinesisvideo.DescribeStreamInput{StreamName: aws.String("cam-1")})
	require.NoError(t, err)
	return out.StreamInfo
}

// requireTagged checks that every fragment the step stored carries the producer tag name.
func (r *readme) requireTagged(t *testing.T, name string) {
	t.Helper()
	added := r.added(t)
	require.NotEmpty(t, added)
	for _, f := range added {
		status, _, media := r.srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam-1", "Fragments": []string{f.Number}})
		require.Equal(t, 200, status, string(media))
		require.True(t, slices.ContainsFunc(mkvTags(t, media), func(s mkv.SimpleTag) bool { return s.Name == name }),
			"fragment %s carries %s", f.Number, name)
	}
}

// outMKV returns the fragment numbers in out.mkv, in order.
func (r *readme) outMKV(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, "out.mkv"))
	require.NoError(t, err)
	var got []string
	for _, c := range parseChunks(t, data) {
		got = append(got, c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"])
	}
	return got
}

// mkvTags returns every SimpleTag of a Matroska stream (several documents may follow each other).
func mkvTags(t *testing.T, data []byte) []mkv.SimpleTag {
	t.Helper()
	var tags []mkv.SimpleTag
	rd := mkv.NewReader(bytes.NewReader(data), mkv.Limits{})
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return tags
		}
		require.NoError(t, err)
		if ev.Kind == mkv.KindTags {
			tags = append(tags, ev.Tags...)
		}
	}
}

func numbers(frags []kvstest.FragmentInfo) []string {
	out := make([]string, len(frags))
	for i, f := range frags {
		out[i] = f.Number
	}
	return out
}
