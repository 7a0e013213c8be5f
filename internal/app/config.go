package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kvsd/kvsd/internal/diskuse"
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
	// NodeURL is how the other nodes of a cluster reach this one directly (not through the
	// front door): GetMedia of a stream without retention is proxied to the node ingesting it.
	// "" is the listen URL.
	NodeURL string
	// SNSEndpoint, when set, publishes notifications for arn:aws:sns:… destinations to that
	// SNS-compatible endpoint instead of AWS (credentials from AWS_ACCESS_KEY_ID …).
	SNSEndpoint string
	// WebhookSecret, when set, signs every notification webhook body (X-Kvsd-Signature).
	WebhookSecret string
	// TLSCert and TLSKey, both set, serve the whole API over https with this PEM certificate
	// (chain) and key, read again when the files change.
	TLSCert string
	TLSKey  string
	// Encryption at rest of stored media (README, Encryption at rest): data keys are wrapped by
	// the key file KeyFile ("" is <data-dir>/kvsd.key, made on first start), or by KMS when
	// KMS or KMSEndpoint is set (credentials from the AWS chain); KMSKey is the KMS key of
	// streams created without KmsKeyId.
	KeyFile     string
	KMS         bool
	KMSEndpoint string
	KMSKey      string

	// ReadTimeout bounds how long a client may take to send a request's headers, and then a
	// JSON request's body (0: 10 s). PutMedia bodies follow KVS's rule instead: 30 s without a
	// byte ends the session.
	ReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no new request (0: 2 min).
	IdleTimeout time.Duration
	// WriteTimeout ends a response (GetMedia, playlists, PutMedia's acks …) whose client
	// accepts less than 256 KiB within it: a client that stopped reading (0: 30 s).
	WriteTimeout time.Duration
	// MaxConnsPerClient and MaxConns bound the connections open at once from one client IP and
	// in all; one more is refused at accept. 0: no bound (the flags' defaults are 256 and 4096).
	MaxConnsPerClient int
	MaxConns          int
	// MaxClockSkew refuses fragments whose producer timestamp is further than this from the
	// server clock, with ERROR 4007. 0: no check (the flag's default is one year).
	MaxClockSkew time.Duration
	// DenyPrivateDestinations also refuses notification destinations on loopback and private
	// addresses; link-local and cloud metadata addresses are always refused.
	DenyPrivateDestinations bool
	// MaxDiskUsage is the media's disk budget ("500GB", "20MiB", "90%"; "" none): past it the
	// oldest segments of all streams are evicted (internal/diskuse).
	MaxDiskUsage string

	// DiskCheckInterval is how often the disk budget is checked (default 1 s); not a flag.
	DiskCheckInterval time.Duration

	// RetentionInterval is how often expired fragments are removed (default 10 s); not a flag.
	RetentionInterval time.Duration
	// ClusterPoll is how often a node of a cluster (--catalog postgres://…) polls for other
	// nodes' changes behind the catalog's notifications (default 2 s); not a flag.
	ClusterPoll time.Duration
	// GetMediaIdleClose ends a caught-up GetMedia after this long without a new fragment
	// (default 30 s); not a flag.
	GetMediaIdleClose time.Duration
	// IngestSupersededGrace is how long a PutMedia connection that a newer one of its stream
	// took over may go on finishing its fragments (default 10 s); not a flag.
	IngestSupersededGrace time.Duration
	// ImageRetryMax caps the image-delivery backoff and paces retries after permanent S3
	// errors (default 1 min); not a flag.
	ImageRetryMax time.Duration
	// MediaInClear stores new media unencrypted (version 2 segments), as kvsd did before
	// encryption at rest; not a flag: tests make such data dirs to check they stay readable.
	MediaInClear bool
	// Now is the clock of playback sessions (token expiry, LIVE_REPLAY pacing, range checks);
	// nil is time.Now. Not a flag: tests inject a clock.
	Now func() time.Time
}

// Defaults of the flags that guard against broken and hostile clients (README, "Running the
// server"). 256 connections per client leave room for a gateway that runs a few hundred
// cameras; a reverse proxy on the same host needs --max-conns-per-client 0.
const (
	DefaultReadTimeout       = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultWriteTimeout      = 30 * time.Second
	DefaultMaxConnsPerClient = 256
	DefaultMaxConns          = 4096
	// DefaultMaxClockSkew catches cameras whose clock reset (to 1970, 2000 or their firmware's
	// date) or runs years ahead, and still takes recordings uploaded late (kvsd put --start-time).
	DefaultMaxClockSkew = 365 * 24 * time.Hour
)

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
	var envErrs []error
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		env := "KVSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: want a duration such as 10s or 2m: %w", env, v, err))
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" (env "+env+")")
	}
	num := func(p *int, name string, def int, usage string) {
		env := "KVSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v := getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: want a whole number: %w", env, v, err))
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+env+")")
	}
	boolean := func(p *bool, name, usage string) {
		env := "KVSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		v := getenv(env)
		fs.BoolVar(p, name, v == "true" || v == "1", usage+" (env "+env+")")
	}
	str(&c.Listen, "listen", DefaultListen, "address to serve the KVS API on")
	str(&c.DataDir, "data-dir", "./data", "directory for the catalog, media and generated credentials")
	str(&c.Region, "region", "us-east-1", "the region clients sign for and ARNs carry")
	str(&c.AccountID, "account-id", DefaultAccountID, "12-digit account id in ARNs and image keys")
	str(&c.PublicURL, "public-url", "", "base URL GetDataEndpoint returns (default: http://<listen address>, https:// with --tls-cert)")
	str(&c.NodeURL, "node-url", "", "base URL the other nodes of a cluster (--catalog) reach this node on, bypassing the front door (default: http://<listen address>, https:// with --tls-cert)")
	str(&c.CredentialsFile, "credentials-file", "", "AWS-style credentials file with more accepted key pairs")
	str(&c.TLSCert, "tls-cert", "", "serve https with this PEM certificate `file` (with its chain); reloaded when it changes")
	str(&c.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	str(&c.MaxDiskUsage, "max-disk-usage", "", "disk budget of the media, e.g. 500GB, 20MiB or 90% (of the data dir's file system): past it the oldest video of all streams is evicted (default: none)")
	str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text", "text or json")
	str(&c.S3Endpoint, "s3-endpoint", "", "send generated images to this S3-compatible endpoint, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:7070 (default: the local folder <data-dir>/buckets)")
	pathStyle := getenv("KVSD_S3_PATH_STYLE")
	fs.BoolVar(&c.S3PathStyle, "s3-path-style", pathStyle == "true" || pathStyle == "1",
		"address buckets in the URL path (http://host/bucket/key), as most self-hosted S3 servers need (env KVSD_S3_PATH_STYLE)")
	dur(&c.ReadTimeout, "read-timeout", DefaultReadTimeout, "a client has this long to send a request's headers, then a JSON request's body (PutMedia: 30 s without a byte ends the session)")
	dur(&c.WriteTimeout, "write-timeout", DefaultWriteTimeout, "end a response whose client accepts less than 256 KiB within this (a client that stopped reading)")
	dur(&c.IdleTimeout, "idle-timeout", DefaultIdleTimeout, "close a kept-alive connection after this long without a request")
	num(&c.MaxConnsPerClient, "max-conns-per-client", DefaultMaxConnsPerClient, "connections open at once from one client IP address; more are refused (0: no bound)")
	num(&c.MaxConns, "max-conns", DefaultMaxConns, "connections open at once in all; more are refused (0: no bound)")
	dur(&c.MaxClockSkew, "max-clock-skew", DefaultMaxClockSkew, "refuse fragments whose producer timestamp is further than this from the server clock, with ERROR 4007 (0: no check)")
	boolean(&c.DenyPrivateDestinations, "deny-private-destinations", "refuse notification destinations on loopback and private addresses too (link-local and cloud metadata addresses are always refused)")
	str(&c.KeyFile, "key-file", "", "key file whose keys wrap the data keys of stored media (default: <data-dir>/kvsd.key, made on first start)")
	useKMS := getenv("KVSD_KMS")
	fs.BoolVar(&c.KMS, "kms", useKMS == "true" || useKMS == "1", "wrap the data keys of stored media with AWS KMS instead of a key file (credentials from the AWS chain) (env KVSD_KMS)")
	str(&c.KMSEndpoint, "kms-endpoint", "", "use this KMS-compatible endpoint, e.g. http://127.0.0.1:8080; implies --kms (default: AWS KMS of the region)")
	str(&c.KMSKey, "kms-key", "alias/aws/kinesisvideo", "with --kms: the KMS key (id, ARN or alias) of streams created without KmsKeyId")
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
	if len(envErrs) > 0 {
		return c, errors.Join(envErrs...)
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
	if u, err := url.Parse(c.NodeURL); c.NodeURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(c.NodeURL, " \t")) {
		errs = append(errs, fmt.Errorf("--node-url %q must be an http:// or https:// URL", c.NodeURL))
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
	if c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 || c.MaxClockSkew < 0 {
		errs = append(errs, errors.New("--read-timeout, --write-timeout, --idle-timeout and --max-clock-skew must not be negative"))
	}
	if c.MaxConnsPerClient < 0 || c.MaxConns < 0 {
		errs = append(errs, errors.New("--max-conns-per-client and --max-conns must not be negative (0: no bound)"))
	}
	if c.KMSEndpoint != "" {
		if u, err := url.Parse(c.KMSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--kms-endpoint %q must be an http:// or https:// URL", c.KMSEndpoint))
		}
	}
	if c.KeyFile != "" && (c.KMS || c.KMSEndpoint != "") {
		errs = append(errs, errors.New("--key-file and --kms exclude each other: data keys are wrapped by one or the other"))
	}
	if c.Catalog != "" && c.Media != "" && !c.MediaInClear && c.KeyFile == "" && !c.keyConfig().useKMS() {
		// A key file made in each node's data dir would wrap each node's media with its own key:
		// the other nodes could not read it.
		errs = append(errs, errors.New("--catalog with --media encrypts the shared media: give every node the same key file "+
			"(--key-file; make one with `head -c 32 /dev/urandom | base64 > kvsd.key`) or use --kms"))
	}
	if _, err := diskuse.ParseSize(c.MaxDiskUsage); err != nil {
		errs = append(errs, fmt.Errorf("--max-disk-usage %w", err))
	}
	if c.MaxDiskUsage != "" && c.Media != "" {
		errs = append(errs, errors.New("--max-disk-usage budgets media on disk; with --media s3://… the bucket holds it (use S3 lifecycle rules or retention)"))
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
