package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// DefaultListen is kvsd's port on loopback; --listen 0.0.0.0:4580 opens it to the network.
const DefaultListen = "127.0.0.1:4580"

// DefaultAccountID is the account in every ARN unless --account-id says otherwise. It is AWS's
// documentation example account, so it never collides with a real one.
const DefaultAccountID = "111122223333"

// Config is what `kvsd serve` needs; every field is a flag and a KVSD_ environment variable.
type Config struct {
	Listen          string
	DataDir         string
	Region          string
	AccountID       string
	PublicURL       string
	CredentialsFile string
	LogLevel        string
	LogFormat       string
	// S3Endpoint, when set, sends generated images to that S3-compatible endpoint (credentials
	// and region from the standard AWS chain: AWS_ACCESS_KEY_ID …, AWS_PROFILE, instance
	// roles). Empty: images go to the local folder <data-dir>/buckets.
	S3Endpoint  string
	S3PathStyle bool // bucket in the URL path (most self-hosted S3 servers)
	// Catalog, when set, is a PostgreSQL URL (postgres://user@host:port/db?…): streams, the
	// fragment index and component state live there instead of <data-dir>/catalog.db
	// (scale-out, in progress).
	Catalog string
	// Media, when set, is s3://bucket/prefix: fragment media goes to that bucket, on
	// S3Endpoint (AWS S3 when empty) with the standard AWS credential chain, instead of
	// <data-dir>/media (scale-out, in progress).
	Media string
	// SNSEndpoint, when set, publishes notifications for arn:aws:sns:… destinations to that
	// SNS-compatible endpoint instead of AWS (credentials from AWS_ACCESS_KEY_ID …).
	SNSEndpoint string
	// WebhookSecret, when set, signs every notification webhook body (X-Kvsd-Signature).
	WebhookSecret string
	// TLSCert and TLSKey, both set, serve the whole API over https with this PEM certificate
	// (chain) and key, read again when the files change.
	TLSCert string
	TLSKey  string

	// RetentionInterval is how often expired fragments are removed (default 10 s); not a flag.
	RetentionInterval time.Duration
	// GetMediaIdleClose ends a caught-up GetMedia after this long without a new fragment
	// (default 30 s); not a flag.
	GetMediaIdleClose time.Duration
	// IngestSupersededGrace is how long a PutMedia connection that a newer one of its stream
	// took over may go on finishing its fragments (default 10 s); not a flag.
	IngestSupersededGrace time.Duration
	// ImageRetryMax caps the image-delivery backoff and paces retries after permanent S3
	// errors (default 1 min); not a flag.
	ImageRetryMax time.Duration
	// Now is the clock of playback sessions (token expiry, LIVE_REPLAY pacing, range checks);
	// nil is time.Now. Not a flag: tests inject a clock.
	Now func() time.Time
}

var regionPattern = regexp.MustCompile(`^[a-z]+(-[a-z]+)?-[a-z]+-[0-9]$`)

// ParseServeFlags reads flags, falling back to KVSD_<NAME> variables, then defaults.
func ParseServeFlags(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("kvsd serve", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	str := func(p *string, name, def, usage string) {
		env := "KVSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v := getenv(env); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	str(&c.Listen, "listen", DefaultListen, "address to serve the KVS API on")
	str(&c.DataDir, "data-dir", "./data", "directory for the catalog, media and generated credentials")
	str(&c.Region, "region", "us-east-1", "the region clients sign for and ARNs carry")
	str(&c.AccountID, "account-id", DefaultAccountID, "12-digit account id in ARNs and image keys")
	str(&c.PublicURL, "public-url", "", "base URL GetDataEndpoint returns (default: http://<listen address>, https:// with --tls-cert)")
	str(&c.CredentialsFile, "credentials-file", "", "AWS-style credentials file with more accepted key pairs")
	str(&c.TLSCert, "tls-cert", "", "serve https with this PEM certificate `file` (with its chain); reloaded when it changes")
	str(&c.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text", "text or json")
	str(&c.S3Endpoint, "s3-endpoint", "", "send generated images to this S3-compatible endpoint, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:7070 (default: the local folder <data-dir>/buckets)")
	pathStyle := getenv("KVSD_S3_PATH_STYLE")
	fs.BoolVar(&c.S3PathStyle, "s3-path-style", pathStyle == "true" || pathStyle == "1",
		"address buckets in the URL path (http://host/bucket/key), as most self-hosted S3 servers need (env KVSD_S3_PATH_STYLE)")
	// Not through str: a catalog URL may hold a password, which --help must not print.
	fs.StringVar(&c.Catalog, "catalog", "", "PostgreSQL URL of the catalog, e.g. postgres://kvsd@db.example/kvsd (default: the file <data-dir>/catalog.db) (env KVSD_CATALOG)")
	str(&c.Media, "media", "", "where fragment media goes: s3://bucket/prefix on --s3-endpoint (AWS S3 when unset), credentials from the standard AWS chain (default: the folder <data-dir>/media)")
	str(&c.SNSEndpoint, "sns-endpoint", "", "publish SNS notifications to this SNS-compatible endpoint, e.g. http://127.0.0.1:9911 (default: AWS SNS of the topic's region)")
	// Not through str: its default would print the secret in --help.
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "key that signs notification webhooks: X-Kvsd-Signature: sha256=<HMAC-SHA256 of the body> (env KVSD_WEBHOOK_SECRET, preferred: flags show in ps)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.WebhookSecret == "" {
		c.WebhookSecret = getenv("KVSD_WEBHOOK_SECRET")
	}
	if c.Catalog == "" {
		c.Catalog = getenv("KVSD_CATALOG")
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.Validate()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: want host:port: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if !regionPattern.MatchString(c.Region) {
		errs = append(errs, fmt.Errorf("--region %q is not a region name such as us-east-1", c.Region))
	}
	if len(c.AccountID) != 12 || strings.Trim(c.AccountID, "0123456789") != "" {
		errs = append(errs, fmt.Errorf("--account-id %q must be 12 digits", c.AccountID))
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		errs = append(errs, fmt.Errorf("--public-url %q must start with http:// or https://", c.PublicURL))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together: set both to serve https, or neither"))
	}
	if c.S3Endpoint != "" {
		if u, err := url.Parse(c.S3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--s3-endpoint %q must be an http:// or https:// URL", c.S3Endpoint))
		}
	}
	if c.Catalog != "" {
		if u, err := url.Parse(c.Catalog); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("--catalog must be a postgres:// or postgresql:// URL"))
		}
	}
	if c.Media != "" {
		if _, _, err := mediaBucket(c.Media); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SNSEndpoint != "" {
		if u, err := url.Parse(c.SNSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--sns-endpoint %q must be an http:// or https:// URL", c.SNSEndpoint))
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q must be text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// publicURL is what clients should call back on: --public-url, or the bound address (https when
// kvsd serves TLS). A wildcard bind has no single address to hand out, so loopback stands in
// (and Start warns).
func publicURL(configured string, bound net.Addr, https bool) string {
	if configured != "" {
		return strings.TrimRight(configured, "/")
	}
	host, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port)
}

// mediaBucket splits --media s3://bucket/prefix.
func mediaBucket(media string) (bucket, prefix string, err error) {
	u, err := url.Parse(media)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("--media %q must be s3://bucket or s3://bucket/prefix", media)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}
