package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/smithy-go"
	"golang.org/x/term"

	"github.com/kvsd/kvsd/producer"
)

// PutEnv is what `kvsd put` takes from its surroundings; tests pass their own.
type PutEnv struct {
	Getenv   func(string) string
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Terminal bool // Stderr is a terminal: draw a progress line
}

// putFlags are the parsed flags of kvsd put.
type putFlags struct {
	stream, endpoint, region, profile string
	create                            bool
	fps                               float64 // raw Annex-B timing and testsrc rate; 0: defaults
	width, height                     int     // testsrc picture size; 0: default
	retention                         int
	fragment                          time.Duration
	bufferMB                          int
	image, notify, fast, quiet        bool
	imageEvery                        int
	imagePrefix, startTime            string
	tags                              tagList
	duration, stopTimeout             time.Duration
	source                            string
	retentionSet                      bool
}

// tagList collects repeated --tag key=value.
type tagList []producer.Tag

func (l *tagList) String() string { return fmt.Sprint(*l) }

func (l *tagList) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, not %q", s)
	}
	*l = append(*l, producer.Tag{Name: k, Value: v})
	return nil
}

const putUsage = `Usage: kvsd put --stream NAME [flags] SOURCE

Streams video to a Kinesis Video stream on kvsd or AWS, the way the KVS producer SDK does
(DescribeStream, GetDataEndpoint, PutMedia), with fragments on keyframes, tags for image
generation and notifications, and resends after network or server failures.

SOURCE (H.264 or H.265 video) is one of
  a file: Matroska/WebM, MP4/MOV, MPEG-TS, raw Annex-B .h264/.h265 (timed at --fps, default 25)
  rtsp://[user:pass@]camera/stream   an RTSP camera, dialled again when it drops
  testsrc                            a moving test pattern (libx264; --size, --fps; 1280x720 30 fps 2 Mbit/s)
  -                                  a Matroska stream on stdin, e.g.
  gst-launch-1.0 -q v4l2src ! x264enc tune=zerolatency ! h264parse ! matroskamux streamable=true ! fdsink fd=1 | kvsd put --stream cam-1 -

Endpoint: --endpoint-url, else AWS_ENDPOINT_URL_KINESIS_VIDEO, else AWS_ENDPOINT_URL, else AWS.
Credentials and region: the standard AWS chain (AWS_ACCESS_KEY_ID …, AWS_PROFILE, AWS_REGION).
An https endpoint with a certificate from a private CA: AWS_CA_BUNDLE=/path/ca.pem.

Flags:
`

// parsePutFlags parses the arguments; flags may follow SOURCE too.
func parsePutFlags(args []string, stderr io.Writer) (*putFlags, error) {
	f := &putFlags{}
	fs := flag.NewFlagSet("kvsd put", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.stream, "stream", "", "stream `name` (required)")
	fs.StringVar(&f.endpoint, "endpoint-url", "", "control-plane `URL`, e.g. http://127.0.0.1:4580 for a local kvsd")
	fs.StringVar(&f.region, "region", "", "region to sign for (default: the AWS chain's; us-east-1 with a custom endpoint)")
	fs.StringVar(&f.profile, "profile", "", "AWS `profile` for credentials and region")
	fs.BoolVar(&f.create, "create", false, "create the stream if it does not exist")
	fs.Func("retention", "data retention of a stream made by --create, in `hours` (default 24; 0 keeps nothing)", func(s string) error {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > 87600 {
			return fmt.Errorf("want hours from 0 to 87600, not %q", s)
		}
		f.retention, f.retentionSet = v, true
		return nil
	})
	fs.DurationVar(&f.fragment, "fragment-duration", producer.DefaultFragmentDuration,
		"target fragment `duration`; fragments start on keyframes, so with longer GOPs a fragment lasts a whole GOP (it cannot be cut shorter without re-encoding)")
	fs.IntVar(&f.bufferMB, "buffer-mb", producer.DefaultBufferBytes>>20, "`MiB` of fragments kept until the server persisted them (a file waits when full; a live source drops the oldest)")
	fs.BoolVar(&f.image, "image-generation", false, "tag fragments for image generation (AWS_KINESISVIDEO_IMAGE_GENERATION)")
	fs.IntVar(&f.imageEvery, "image-every", 0, "tag only every `N`th fragment for image generation (implies --image-generation)")
	fs.StringVar(&f.imagePrefix, "image-prefix", "", "image `prefix` (AWS_KINESISVIDEO_IMAGE_PREFIX) for the generated images' keys")
	fs.BoolVar(&f.notify, "notify", false, "tag every fragment for notifications (AWS_KINESISVIDEO_NOTIFICATION)")
	fs.Var(&f.tags, "tag", "custom fragment metadata `key=value` (repeat for more, at most 10)")
	fs.BoolVar(&f.fast, "fast", false, "send a file as fast as the server takes it instead of in real time")
	fs.StringVar(&f.startTime, "start-time", "", "producer `time` of a file's start: RFC 3339 or epoch seconds (default: now)")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this `duration` (default: at the end of the source, or Ctrl-C)")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", producer.DefaultStopTimeout, "how long to wait for the last acknowledgements when stopping")
	fs.Float64Var(&f.fps, "fps", 0, "frame `rate` of a raw Annex-B file (default 25) or of testsrc (default 30)")
	fs.Func("size", "testsrc picture size `WxH` (default 1280x720)", func(s string) error {
		w, h, ok := strings.Cut(s, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || wi < 16 || hi < 16 || wi > 7680 || hi > 4320 {
			return fmt.Errorf("want WIDTHxHEIGHT between 16x16 and 7680x4320, not %q", s)
		}
		f.width, f.height = wi, hi
		return nil
	})
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line, only warnings and the summary")
	fs.Usage = func() {
		fmt.Fprint(stderr, putUsage)
		fs.PrintDefaults()
	}
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case f.stream == "":
		return nil, errors.New("--stream is required")
	case len(pos) == 0:
		return nil, errors.New("no SOURCE: name a Matroska file, or - for stdin")
	case len(pos) > 1:
		return nil, fmt.Errorf("one SOURCE at a time, not %d (%s)", len(pos), strings.Join(pos, " "))
	case f.retentionSet && !f.create:
		return nil, errors.New("--retention applies to a stream made by --create")
	case f.fragment <= 0 || f.fragment > producer.MaxFragmentDuration:
		return nil, fmt.Errorf("--fragment-duration %s: want more than 0 and at most %s (the KVS fragment limit)", f.fragment, producer.MaxFragmentDuration)
	case f.bufferMB < 1:
		return nil, fmt.Errorf("--buffer-mb %d: want at least 1", f.bufferMB)
	case f.imageEvery < 0:
		return nil, fmt.Errorf("--image-every %d: want 1 or more", f.imageEvery)
	case f.imagePrefix != "" && !f.image && f.imageEvery == 0:
		return nil, errors.New("--image-prefix needs --image-generation (or --image-every)")
	case f.duration < 0 || f.stopTimeout < 0:
		return nil, errors.New("--duration and --stop-timeout must not be negative")
	case f.fps < 0 || f.fps > 240:
		return nil, fmt.Errorf("--fps %g: want a frame rate up to 240", f.fps)
	}
	if !f.retentionSet {
		f.retention = 24
	}
	f.source = pos[0]
	return f, nil
}

// parseStartTime reads --start-time.
func parseStartTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil && v > 0 {
		return time.UnixMilli(int64(v * 1000)), nil
	}
	return time.Time{}, fmt.Errorf("--start-time %q: want RFC 3339 (2026-01-02T15:04:05Z) or epoch seconds", s)
}

// Put is `kvsd put`. It returns the exit status: 0 when every fragment was persisted, 1 when
// something was lost or failed, 2 for usage errors.
func Put(ctx context.Context, args []string, env PutEnv) int {
	stderr := env.Stderr
	f, err := parsePutFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvsd put: %v (kvsd put -h lists the flags)\n", err)
		return 2
	}
	start, err := parseStartTime(f.startTime)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd put: %v\n", err)
		return 2
	}
	cfg := producer.Config{
		StreamName: f.stream, FragmentDuration: f.fragment, BufferBytes: int64(f.bufferMB) << 20,
		ImageGeneration: f.image || f.imageEvery > 0, ImageEvery: f.imageEvery, ImagePrefix: f.imagePrefix,
		Notify: f.notify, Metadata: f.tags, Fast: f.fast, StartTime: start, StopTimeout: f.stopTimeout,
	}
	if err := cfg.ValidateTags(); err != nil { // before anything is opened
		fmt.Fprintf(stderr, "kvsd put: %v\n", strings.TrimPrefix(err.Error(), producer.ErrInvalidConfig.Error()+": "))
		return 2
	}

	if f.source == "-" && isTerminalReader(env.Stdin) {
		fmt.Fprintln(stderr, "kvsd put: stdin is a terminal; pipe a Matroska stream in (… ! matroskamux streamable=true ! fdsink fd=1 | kvsd put … -)")
		return 2
	}
	// A camera source says when it drops and comes back, on stderr like kvsd serve's log.
	src, err := openSource(ctx, f, env.Stdin, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		fmt.Fprintf(stderr, "kvsd put: %v\n", err)
		return 1
	}
	defer src.Close()
	if src.Live() && (f.startTime != "" || f.fast) {
		fmt.Fprintln(stderr, "kvsd put: --start-time and --fast apply to files; a live source is stamped with the wall clock")
		return 2
	}

	awsCfg, endpoint, err := putAWSConfig(ctx, f, env.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd put: %v\n", err)
		return 1
	}
	cfg.Endpoint, cfg.Region, cfg.Credentials = endpoint, awsCfg.Region, awsCfg.Credentials
	cfg.HTTPClient, _ = awsCfg.HTTPClient.(*http.Client) // putAWSConfig's, which trusts AWS_CA_BUNDLE
	retention, err := ensureStream(ctx, awsCfg, endpoint, f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd put: %v\n", err)
		return 1
	}
	cfg.RetentionHours = &retention
	if retention == 0 {
		fmt.Fprintf(stderr, "kvsd put: stream %s keeps no data (retention 0): fragments count as delivered once RECEIVED\n", f.stream)
	}

	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	ui := newPutUI(stderr, env.Terminal && !f.quiet, src, f.stream, retention)
	cfg.OnEvent = ui.event
	p, err := producer.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd put: %v\n", err)
		return 2
	}
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	uiDone := make(chan struct{})
	go func() {
		defer close(uiDone)
		ui.run(uiCtx, ctx)
	}()
	began := time.Now()
	st, runErr := p.Run(ctx, src)
	stopUI()
	<-uiDone
	return ui.summary(st, runErr, time.Since(began))
}

// putAWSConfig loads region and credentials from the AWS chain, picks the endpoint and makes
// the HTTP client of both planes.
func putAWSConfig(ctx context.Context, f *putFlags, getenv func(string) string) (aws.Config, string, error) {
	tr, err := clientTransport(getenv)
	if err != nil {
		return aws.Config{}, "", err
	}
	// As the producer's own PutMedia client: a streamed body leaves no connection worth reusing.
	tr.DisableKeepAlives = true
	endpoint := f.endpoint
	for _, v := range []string{"AWS_ENDPOINT_URL_KINESIS_VIDEO", "AWS_ENDPOINT_URL"} {
		if endpoint == "" {
			endpoint = getenv(v)
		}
	}
	endpoint = strings.TrimRight(endpoint, "/")
	opts := []func(*awsconfig.LoadOptions) error{}
	if f.profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(f.profile))
	}
	if f.region != "" {
		opts = append(opts, awsconfig.WithRegion(f.region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, "", fmt.Errorf("AWS configuration: %w", err)
	}
	cfg.HTTPClient = &http.Client{Transport: tr}
	if cfg.Region == "" {
		if endpoint == "" {
			return aws.Config{}, "", errors.New("no region: set AWS_REGION (or --region, or a profile's region)")
		}
		cfg.Region = "us-east-1" // kvsd's default region
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, "", fmt.Errorf("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (kvsd prints them at its first start) or use --profile (%v)", err)
	}
	return cfg, endpoint, nil
}

// ensureStream describes the stream (creating it with --create) and returns its retention.
func ensureStream(ctx context.Context, cfg aws.Config, endpoint string, f *putFlags, stderr io.Writer) (int32, error) {
	kv := kinesisvideo.NewFromConfig(cfg, func(o *kinesisvideo.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	where := endpoint
	if where == "" {
		where = "AWS (" + cfg.Region + ")"
	}
	created := false
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String(f.stream)})
		var ae smithy.APIError
		switch {
		case err == nil && out.StreamInfo != nil && out.StreamInfo.Status == kvtypes.StatusActive:
			if created {
				fmt.Fprintf(stderr, "kvsd put: created stream %s (retention %d h)\n", f.stream, f.retention)
			}
			return aws.ToInt32(out.StreamInfo.DataRetentionInHours), nil
		case err == nil && out.StreamInfo != nil && out.StreamInfo.Status == kvtypes.StatusDeleting:
			return 0, fmt.Errorf("stream %s is being deleted", f.stream)
		case err == nil:
			// CREATING or UPDATING: wait, as the SDK does.
		case errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" && !created:
			if !f.create {
				return 0, fmt.Errorf("stream %s does not exist at %s; run again with --create to create it (--retention HOURS, default 24)", f.stream, where)
			}
			_, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(f.stream),
				DataRetentionInHours: aws.Int32(int32(f.retention)), MediaType: aws.String("video/h264")})
			if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "ResourceInUseException") {
				return 0, explainAPIError("CreateStream", err, where)
			}
			created = true
			continue
		default:
			return 0, explainAPIError("DescribeStream", err, where)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("stream %s did not become ACTIVE within 2 minutes", f.stream)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// explainAPIError puts control-plane failures in plain words.
func explainAPIError(op string, err error, where string) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
			"MissingAuthenticationTokenException", "ExpiredTokenException", "AccessDeniedException", "NotAuthorizedException":
			return fmt.Errorf("%s refused the credentials: %w; use the key pair it accepts (kvsd prints it at its first start, in <data-dir>/credentials)",
				where, &producer.AuthError{Code: ae.ErrorCode(), Message: ae.ErrorMessage()})
		}
		return fmt.Errorf("%s at %s: %s: %s", op, where, ae.ErrorCode(), ae.ErrorMessage())
	}
	if err := untrustedServer(err, where); err != nil {
		return err
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return fmt.Errorf("cannot reach %s (%v); is kvsd running there?", where, ne.Err)
	}
	return fmt.Errorf("%s at %s: %w", op, where, err)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// isTerminalReader reports whether r is a terminal.
func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
