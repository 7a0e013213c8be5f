package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/kvsapi"
)

// doctor is `kvsd doctor STREAM`: it asks a running kvsd's status API why the stream does or
// does not produce images (and whatever else the server's components report) and prints the
// answer in plain words. Exit status: 0 healthy, 1 problems found or the call failed, 2 usage.
func doctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvsd doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpointDef := getenv("AWS_ENDPOINT_URL")
	if endpointDef == "" {
		endpointDef = "http://" + app.DefaultListen
	}
	endpoint := fs.String("endpoint-url", endpointDef, "kvsd's URL (env AWS_ENDPOINT_URL)")
	region := fs.String("region", "", "region to sign for (default: the AWS chain's, else us-east-1)")
	profile := fs.String("profile", "", "AWS profile with kvsd's credentials (default: the standard chain)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvsd doctor [flags] STREAM\n\nExplains why a stream does or does not produce images. Credentials come from the\nstandard AWS chain (AWS_ACCESS_KEY_ID …, AWS_PROFILE), as for the aws CLI; a private CA's\ncertificate for https, from AWS_CA_BUNDLE.\n\n")
		fs.PrintDefaults()
	}
	// Flags may follow the stream name too (kvsd doctor cam-1 --endpoint-url …).
	var names []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		names, rest = append(names, fs.Arg(0)), fs.Args()[1:]
	}
	if len(names) != 1 {
		fs.Usage()
		return 2
	}
	tr, err := clientTransport(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd doctor: %v\n", err)
		return 1
	}
	opts := []func(*awsconfig.LoadOptions) error{}
	if *profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(*profile))
	}
	if *region != "" {
		opts = append(opts, awsconfig.WithRegion(*region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "kvsd doctor: AWS configuration: %v\n", err)
		return 1
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	st, err := fetchStatus(ctx, cfg, strings.TrimRight(*endpoint, "/"), names[0])
	if err != nil {
		fmt.Fprintf(stderr, "kvsd doctor: %v\n", err)
		return 1
	}
	if printStatus(stdout, st, strings.TrimRight(*endpoint, "/")) {
		return 1
	}
	return 0
}

// fetchStatus calls the status API, signed like every KVS call, with cfg's HTTP client.
func fetchStatus(ctx context.Context, cfg aws.Config, endpoint, name string) (*kvsapi.StreamStatus, error) {
	body, _ := json.Marshal(map[string]string{"StreamName": name})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/"+kvsapi.StatusOperation, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("no AWS credentials for kvsd (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as kvsd printed them): %w", err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", cfg.Region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		if uerr := untrustedServer(err, endpoint); uerr != nil {
			return nil, uerr
		}
		return nil, fmt.Errorf("is kvsd running at %s? %w", endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message  string `json:"message"`
			Message2 string `json:"Message"`
		}
		_ = json.Unmarshal(raw, &e)
		code, _, _ := strings.Cut(resp.Header.Get("x-amzn-ErrorType"), ":")
		return nil, fmt.Errorf("%s (HTTP %d): %s%s", code, resp.StatusCode, e.Message, e.Message2)
	}
	var st kvsapi.StreamStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("unreadable answer from %s: %w", endpoint, err)
	}
	return &st, nil
}

// printStatus writes the report and says whether it found problems.
func printStatus(w io.Writer, st *kvsapi.StreamStatus, endpoint string) bool {
	fmt.Fprintf(w, "Stream %s (%s): %s, retention %d h\n", st.StreamName, st.StreamARN, st.Status, st.DataRetentionInHours)
	problems := 0
	for _, r := range st.Reports {
		fmt.Fprintf(w, "\n%s\n", r.Component)
		for _, f := range r.Findings {
			fmt.Fprintf(w, "  %-5s  %s [%s]\n", f.Level, f.Message, f.Code)
			if f.Fix != "" {
				fmt.Fprintf(w, "         fix: %s\n", strings.ReplaceAll(f.Fix, "--endpoint-url …", "--endpoint-url "+endpoint))
			}
			if f.Level == diag.Warn || f.Level == diag.Error {
				problems++
			}
		}
	}
	switch problems {
	case 0:
		fmt.Fprintln(w, "\nNo problems found.")
	case 1:
		fmt.Fprintln(w, "\n1 problem found.")
	default:
		fmt.Fprintf(w, "\n%d problems found.\n", problems)
	}
	return problems > 0
}
