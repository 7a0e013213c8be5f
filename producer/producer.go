package producer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/smithy-go"
)

// Errors Run returns, wrapped with details.
var (
	// ErrStreamNotFound: the stream does not exist (create it first).
	ErrStreamNotFound = errors.New("stream not found")
	// ErrUnsupportedCodec: the source is not H.264 or H.265.
	ErrUnsupportedCodec = errors.New("unsupported codec")
)

// UnsupportedCodecError says that a source's video is neither H.264 nor
// H.265, in the words a user of `kvsd put` reads. It matches
// ErrUnsupportedCodec with errors.Is.
type UnsupportedCodecError struct {
	Source string // the file name or URL
	Codec  string // what it is, e.g. "VP8"
}

func (e *UnsupportedCodecError) Error() string {
	return fmt.Sprintf("kvsd streams H.264/H.265; %s is %s", e.Source, e.Codec)
}

// Is makes errors.Is(err, ErrUnsupportedCodec) hold for every source.
func (e *UnsupportedCodecError) Is(target error) bool { return target == ErrUnsupportedCodec }

// AuthError is a request the endpoint refused because of the credentials.
type AuthError struct {
	Code, Message string
}

func (e *AuthError) Error() string {
	what := "the credentials were refused"
	switch e.Code {
	case "UnrecognizedClientException", "InvalidClientTokenId":
		what = "the access key ID is unknown to the endpoint"
	case "InvalidSignatureException", "SignatureDoesNotMatch":
		what = "the signature does not match: wrong secret access key, clock off by more than 5 minutes, or wrong region"
	case "MissingAuthenticationTokenException":
		what = "the request carried no credentials"
	case "ExpiredTokenException":
		what = "the session token has expired"
	case "AccessDeniedException", "NotAuthorizedException":
		what = "the credentials are not allowed to do this"
	}
	return fmt.Sprintf("%s (%s: %s)", what, e.Code, e.Message)
}

// authCodes are the AWS error codes of credential problems.
var authCodes = map[string]bool{
	"UnrecognizedClientException": true, "InvalidSignatureException": true, "IncompleteSignatureException": true,
	"MissingAuthenticationTokenException": true, "ExpiredTokenException": true, "AccessDeniedException": true,
	"NotAuthorizedException": true, "InvalidClientTokenId": true, "SignatureDoesNotMatch": true,
}

// Producer streams a Source to one KVS stream. Create it with New.
type Producer struct {
	cfg  Config
	tags tagPlan
	kv   *kinesisvideo.Client
	put  *http.Client // PutMedia
}

// New checks cfg and returns a Producer. It does no I/O.
func New(cfg Config) (*Producer, error) {
	cfg = cfg.withDefaults()
	tags, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	awsCfg := aws.Config{Region: cfg.Region, Credentials: cfg.Credentials}
	put := cfg.HTTPClient
	if put != nil {
		awsCfg.HTTPClient = put
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableKeepAlives = true
		put = &http.Client{Transport: tr}
	}
	kv := kinesisvideo.NewFromConfig(awsCfg, func(o *kinesisvideo.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Producer{cfg: cfg, tags: tags, kv: kv, put: put}, nil
}

// CheckCodec returns an error wrapping ErrUnsupportedCodec unless codecID is
// H.264 or H.265.
func CheckCodec(codecID string) error {
	if codecID == CodecH264 || codecID == CodecH265 {
		return nil
	}
	return fmt.Errorf("%w: kvsd streams H.264/H.265, this is %s", ErrUnsupportedCodec, codecName(codecID))
}

// codecName turns a Matroska codec ID into the name people know.
func codecName(id string) string {
	switch {
	case id == "V_VP8":
		return "VP8"
	case id == "V_VP9":
		return "VP9"
	case id == "V_AV1":
		return "AV1"
	case id == "V_THEORA":
		return "Theora"
	case strings.HasPrefix(id, "V_MPEG4/ISO/"):
		return "MPEG-4 Part 2 (" + id + ")"
	case id == "V_MPEG2" || id == "V_MPEG1":
		return strings.TrimPrefix(id, "V_") + " video"
	case id == "V_MJPEG":
		return "Motion JPEG"
	case id == "":
		return "an unknown codec"
	}
	return id
}

// describe checks the stream and returns its retention.
func (p *Producer) describe(ctx context.Context) (int32, error) {
	out, err := p.kv.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String(p.cfg.StreamName)})
	if err != nil {
		return 0, p.apiError("DescribeStream", err)
	}
	if out.StreamInfo == nil {
		return 0, fmt.Errorf("DescribeStream %s: no StreamInfo in the answer", p.cfg.StreamName)
	}
	if out.StreamInfo.Status != kvtypes.StatusActive {
		return 0, fmt.Errorf("stream %s is %s, not ACTIVE", p.cfg.StreamName, out.StreamInfo.Status)
	}
	return aws.ToInt32(out.StreamInfo.DataRetentionInHours), nil
}

// dataEndpoint asks where to PutMedia, as the SDK does before every
// connection.
func (p *Producer) dataEndpoint(ctx context.Context) (string, error) {
	out, err := p.kv.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{
		StreamName: aws.String(p.cfg.StreamName), APIName: kvtypes.APINamePutMedia})
	if err != nil {
		return "", p.apiError("GetDataEndpoint", err)
	}
	return aws.ToString(out.DataEndpoint), nil
}

// fatal marks errors that reconnecting cannot fix.
type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

// apiError classifies a control-plane error: missing stream and credential
// problems are fatal, the rest is retried.
func (p *Producer) apiError(op string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.ErrorCode() == "ResourceNotFoundException":
			return fatal{fmt.Errorf("%w: %s (%s)", ErrStreamNotFound, p.cfg.StreamName, ae.ErrorMessage())}
		case authCodes[ae.ErrorCode()]:
			return fatal{fmt.Errorf("%s: %w", op, &AuthError{Code: ae.ErrorCode(), Message: ae.ErrorMessage()})}
		case ae.ErrorFault() == smithy.FaultClient && ae.ErrorCode() != "ClientLimitExceededException":
			return fatal{fmt.Errorf("%s: %w", op, err)}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Run streams src until it ends or ctx is done, then waits (at most
// Config.StopTimeout after ctx is done) for the remaining fragments to be
// confirmed. It returns the counts; Stats.Pending fragments were not
// confirmed. The error is nil unless streaming could not go on: the stream
// is missing or was deleted, the credentials were refused, the source
// failed or is not H.264/H.265. Run does not close src.
func (p *Producer) Run(ctx context.Context, src Source) (Stats, error) {
	track, err := src.Track(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("read the source: %w", err)
	}
	if err := CheckCodec(track.CodecID); err != nil {
		return Stats{}, err
	}
	retention := p.cfg.RetentionHours
	if retention == nil {
		h, err := p.describe(ctx)
		if err != nil {
			return Stats{}, err
		}
		retention = &h
	}
	live := src.Live()
	buf := newBuffer(p.cfg.BufferBytes, live, p.cfg.OnEvent)
	start := p.cfg.StartTime
	if start.IsZero() {
		start = time.Now()
	}
	b := &builder{src: src, buf: buf, target: p.cfg.FragmentDuration, tags: p.tags, live: live,
		fast: p.cfg.Fast, start: start, now: time.Now, sleep: sleepCtx}

	// The builder stops with ctx; connections outlive it by StopTimeout to
	// deliver what was read.
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	cctx, ccancel := context.WithCancel(context.WithoutCancel(ctx))
	defer ccancel()
	var wg sync.WaitGroup
	var buildErr error
	wg.Go(func() { buildErr = b.run(bctx) })
	stopTimer := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stopTimer:
			return
		}
		t := time.NewTimer(p.cfg.StopTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			ccancel()
		case <-stopTimer:
		}
	})

	s := &session{p: p, buf: buf, track: track, persist: *retention > 0}
	connErr := s.loop(cctx)
	close(stopTimer)
	bcancel()
	wg.Wait()

	st := buf.snapshot()
	if st.Pending > 0 {
		st.Unconfirmed = buf.unconfirmed()
		p.cfg.Logger.Warn("fragments not confirmed", "stream", p.cfg.StreamName, "count", st.Pending,
			"first", st.Unconfirmed[0], "last", st.Unconfirmed[len(st.Unconfirmed)-1])
	}
	switch {
	case connErr != nil:
		return st, connErr
	case buildErr != nil:
		return st, buildErr
	}
	return st, nil
}

// randomUIDs returns a SegmentUID and a TrackUID for a new connection.
func randomUIDs() ([16]byte, uint64) {
	var uid [16]byte
	_, _ = rand.Read(uid[:])
	var t [8]byte
	_, _ = rand.Read(t[:])
	return uid, binary.BigEndian.Uint64(t[:]) | 1
}
