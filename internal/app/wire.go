package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/connlimit"
	"github.com/kvsd/kvsd/internal/console"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/diskuse"
	"github.com/kvsd/kvsd/internal/egress"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/ingest"
	"github.com/kvsd/kvsd/internal/kvsapi"
	"github.com/kvsd/kvsd/internal/notify"
	"github.com/kvsd/kvsd/internal/orphans"
	"github.com/kvsd/kvsd/internal/playback"
	"github.com/kvsd/kvsd/internal/retention"
	"github.com/kvsd/kvsd/internal/sigv4"
	"github.com/kvsd/kvsd/internal/stream"
	"github.com/kvsd/kvsd/internal/streamwork"
)

// built is what build hands back to Start: the loops to run and what announce tells.
type built struct {
	loops       []loop
	destination string // where images go, in words
	storage     string // where the catalog and the media live, in words
	https       bool
}

// build makes every component in dependency order, pushing each one's Close as it goes.
func (s *Server) build(ctx context.Context, cfg Config, env Env) (built, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return built{}, fmt.Errorf("data dir: %w", err)
	}
	keys, err := loadCredentials(cfg, env.Getenv, env.Stdout)
	if err != nil {
		return built{}, err
	}
	tlsCfg, err := serverTLS(cfg, s.log)
	if err != nil {
		return built{}, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	storage, err := s.openStorage(ctx, cfg, env.Getenv, reg)
	if err != nil {
		return built{}, err
	}
	ln, err := s.listen(cfg, tlsCfg, reg)
	if err != nil {
		return built{}, err
	}
	s.node = nodeID(publicURL(cfg.NodeURL, ln.Addr(), tlsCfg != nil))
	streams := &stream.Service{Store: s.catalog, Region: cfg.Region, AccountID: cfg.AccountID, PublicURL: s.URL}
	if s.atRest != nil {
		streams.DefaultKmsKeyID, streams.CheckKmsKey = s.atRest.defaultKmsKeyID(), s.atRest.checkKmsKey
	}
	destination, err := s.newWorkers(ctx, cfg, env, reg)
	if err != nil {
		return built{}, err
	}
	streams.Destinations = s.notifier
	if cfg.Catalog != "" {
		s.cluster = &clusterStatus{claims: s.catalog, log: s.log, store: s.Store, node: s.node, work: []clusterWork{
			{"imagegen", "images", s.images.Cursors()}, {"notify", "notifications", s.notifier.Cursors()}}}
		if err := reg.Register(s.cluster); err != nil {
			return built{}, err
		}
	}
	var loops []loop
	if s.cluster != nil {
		loops = append(loops, loop{"cluster", s.cluster.announce})
	}
	if s.media != nil { // the disk budget and the full-disk watch are of media on disk
		if s.disk, err = newDiskGuard(cfg, s.Store, s.catalog, s.media.Usage, s.log, reg); err != nil {
			return built{}, err
		}
		loops = append(loops, loop{"disk", s.disk.Run})
	}
	if s.bucket != nil {
		// Objects a node wrote but never committed (killed in between, or fenced): one node
		// of the cluster at a time deletes them.
		sweep := orphans.New(orphans.Config{Streams: s.catalog, Index: s.catalog, Media: s.bucket, Leases: s.catalog, Holder: s.node, Logger: s.log})
		loops = append(loops, loop{"orphans", sweep.Run})
	}
	hub := playback.NewHub(liveBufferBytes)
	s.newIngest(cfg, streams, hub, reg)
	api := s.newAPI(cfg, streams, hub, keys, reg)
	s.api = api
	s.http = s.newHTTP(ctx, cfg, api, console.New(console.Config{Region: cfg.Region}), reg)
	if db, ok := s.catalog.(*postgres.DB); ok {
		loops = append(loops, loop{"cluster", newClusterWatch(db, streams, hub, cfg.ClusterPoll, s.log, reg).Run})
	}
	sweeper := &retention.Sweeper{Store: s.Store, Catalog: s.catalog, Interval: cfg.RetentionInterval, Logger: s.log}
	if cfg.Catalog != "" { // nodes sharing the catalog: one of them sweeps
		sweeper.Leases, sweeper.Holder = s.catalog, s.node
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kvsd_retention_sweeps_total",
		Help: "Retention sweeps this node made (in a cluster, only the node holding the cluster:retention lease sweeps)."},
		func() float64 { return float64(sweeper.Sweeps()) }))
	return built{destination: destination, storage: storage, https: tlsCfg != nil, loops: append([]loop{
		{"http", func(context.Context) error { return serveUntilShutdown(s.http, ln) }},
		{"retention", sweeper.Run},
		{"images", s.images.Run},
		{"notify", s.notifier.Run},
	}, loops...)}, nil
}

// budgetBytes is --max-disk-usage in bytes, 0 for none.
func budgetBytes(cfg Config) (int64, error) {
	size, err := diskuse.ParseSize(cfg.MaxDiskUsage)
	if err != nil {
		return 0, err
	}
	return size.Limit(cfg.DataDir)
}

// newDiskGuard builds the disk budget's loop (it reports a full disk without a budget too).
func newDiskGuard(cfg Config, store *fragstore.Store, db catalog.Catalog, usage func() int64, log *slog.Logger, reg prometheus.Registerer) (*diskuse.Guard, error) {
	limit, err := diskuse.ParseSize(cfg.MaxDiskUsage)
	if err != nil {
		return nil, err
	}
	if !limit.IsZero() {
		log.Info("disk budget: the oldest video of all streams is evicted past it", "max_disk_usage", limit.String(), "keep_tag", diskuse.KeepTag)
	}
	return diskuse.New(diskuse.Config{Store: store, Catalog: db, Usage: usage, Dir: cfg.DataDir, Limit: limit,
		Interval: cfg.DiskCheckInterval, Logger: log, Registerer: reg})
}

// serveUntilShutdown serves ln; Shutdown's ending of Serve is no failure.
func serveUntilShutdown(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listen binds cfg.Listen (with the connection limits, and TLS when tlsCfg is set) and sets
// the server's URL and address.
func (s *Server) listen(cfg Config, tlsCfg *tls.Config, reg prometheus.Registerer) (net.Listener, error) {
	tcp, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	limits := connlimit.Config{PerClient: cfg.MaxConnsPerClient, Total: cfg.MaxConns, Logger: s.log, Registerer: reg}
	if tlsCfg == nil { // under TLS nothing readable can be said before the handshake: the close is the answer
		limits.Refusal = connectionRefusal(cfg)
	}
	var ln net.Listener
	ln, err = connlimit.New(tcp, limits)
	if err != nil {
		tcp.Close()
		return nil, err
	}
	limited := ln
	s.closers.push(func() error { // the HTTP server closes it first once it serves
		if err := limited.Close(); !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.Addr, s.URL = ln.Addr(), publicURL(cfg.PublicURL, ln.Addr(), tlsCfg != nil)
	return ln, nil
}

// connectionRefusal is the answer a connection over a limit gets: KVS's error for too many
// connections, naming the flag to raise.
func connectionRefusal(cfg Config) func(reason string) []byte {
	return func(reason string) []byte {
		msg := fmt.Sprintf("kvsd holds %d connections, its limit (--max-conns); try again later", cfg.MaxConns)
		if reason == connlimit.PerClient {
			msg = fmt.Sprintf("this client already holds %d connections to kvsd, its limit (--max-conns-per-client); close some or try again later", cfg.MaxConnsPerClient)
		}
		return awsapi.RawResponse(awsapi.Errorf("ConnectionLimitExceededException", http.StatusBadRequest, "%s", msg))
	}
}

// workClaimTTL is how long a node's claim on a stream's image or notification work lasts
// without renewal: the stream lease's ttl, so a dead node's ingest and work move on together.
const workClaimTTL = ingest.DefaultLeaseTTL

// newWorkers builds the notifier and the image generator, and says where images go.
func (s *Server) newWorkers(ctx context.Context, cfg Config, env Env, reg prometheus.Registerer) (string, error) {
	snsCreds, _, credErr := s3Credentials(ctx, env.Getenv) // the standard AWS chain, as for S3
	if credErr != nil {
		s.log.Warn("SNS notifications: no AWS credential chain, using AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY only", "err", credErr)
		snsCreds = notify.EnvCredentials(env.Getenv)
	}
	var cluster *streamwork.Cluster
	if cfg.Catalog != "" {
		// A shared catalog: the nodes share the streams' image and notification work, each
		// stream's held by one node at a time, passed on within the claim's ttl if it dies.
		cluster = &streamwork.Cluster{Claims: s.catalog, Holder: s.node, TTL: workClaimTTL}
	}
	var err error
	s.notifier, err = notify.New(notify.Config{Streams: s.catalog, Fragments: s.Store, State: s.catalog, Cluster: cluster,
		SNSEndpoint: cfg.SNSEndpoint, AWSCredentials: snsCreds,
		WebhookSecret:  []byte(cfg.WebhookSecret),
		WebhookSecrets: func(name string) []byte { return []byte(env.Getenv(notify.SecretEnv(name))) },
		Egress:         egress.Policy{DenyPrivate: cfg.DenyPrivateDestinations},
		Logger:         s.log, Registerer: reg})
	if err != nil {
		return "", err
	}
	objects, destination, err := imageObjects(ctx, cfg, env.Getenv)
	if err != nil {
		return "", err
	}
	s.images, err = imagegen.New(imagegen.Config{Catalog: s.catalog, Store: s.Store, Objects: objects, NewDecoder: newDecoder,
		AccountID: cfg.AccountID, Destination: "images are " + destination, RetryMax: cfg.ImageRetryMax, Cluster: cluster,
		Logger: s.log, Registerer: reg,
		OnDelivered: func(ctx context.Context, st *stream.Stream, d imagegen.Delivered) {
			if err := s.notifier.ImageDelivered(ctx, st, d.URI, d.ImageTime, d.FragmentNumber); err != nil {
				s.log.Error("recording IMAGE_DELIVERED notification", "stream", st.Name, "uri", d.URI, "err", err)
			}
		}})
	return destination, err
}

// newIngest builds the PutMedia sessions' manager: persisted fragments wake the image
// generator and the notifier, and every fragment goes to the live hub. A deleted stream's
// sessions, buffers and data go too.
func (s *Server) newIngest(cfg Config, streams *stream.Service, hub *playback.Hub, reg prometheus.Registerer) {
	var leases ingest.Leases
	if cfg.Catalog != "" {
		// A shared catalog: other nodes may ingest the same streams, so each stream's
		// commits are fenced by its lease. The embedded catalog needs none.
		leases = s.catalog
	}
	s.ingest = ingest.NewManager(ingest.Config{
		Streams: streams, Store: s.Store, Logger: s.log, Registerer: reg, SupersededGrace: cfg.IngestSupersededGrace,
		MaxClockSkew: cfg.MaxClockSkew,
		Leases:       leases, NodeID: s.node,
		Publish: func(ev ingest.Event) {
			hub.Publish(ev.Key, playback.Item{Fragment: ev.Fragment, Header: ev.Header, Media: ev.Media}, ev.Persisted)
			if ev.Persisted {
				s.images.Wake(ev.Key) // the fragment index is the durable work list
				s.notifier.Wake(ev.Key, ev.Fragment.Seq)
			}
		},
	})
	streams.OnDelete = func(ctx context.Context, st *stream.Stream) {
		k := fragstore.KeyOf(st)
		s.ingest.EndStream(st.Name)
		hub.Forget(k)
		if err := s.Store.DeleteStream(ctx, k); err != nil {
			s.log.Error("removing data of deleted stream; the retention loop retries", "stream", st.Name, "err", err)
		}
		s.images.Wake(k)      // drops the stream's cursor and decoder
		s.notifier.Wake(k, 0) // drops the stream's notification cursor and outbox
		if s.atRest != nil {
			s.atRest.ring.Forget(k) // its data key: nothing will be written with it again
		}
	}
}

// newAPI builds the KVS API (control plane, PutMedia, playback, status).
func (s *Server) newAPI(cfg Config, streams *stream.Service, hub *playback.Hub, keys keyring, reg *prometheus.Registry) *kvsapi.Handler {
	var liveOwner func(*http.Request, stream.Ref) func(http.ResponseWriter, *http.Request) error
	if db, ok := s.catalog.(*postgres.DB); ok {
		liveOwner = newLiveOwners(db, streams, s.node, s.log).owner
	}
	api := kvsapi.New(kvsapi.Config{
		LiveOwner: liveOwner,
		Streams:   streams,
		Playback: &playback.Service{Streams: streams, Store: s.Store, Hub: hub, IdleClose: cfg.GetMediaIdleClose, Now: cfg.Now,
			Tokens: playback.NewTokens(playback.SessionKey(keys.secrets())), Muxer: muxer{}},
		PublicURL: s.URL,
		Images:    s.images,
		Status:    s.diagSources(),
		Auth:      &sigv4.Verifier{Region: cfg.Region, Service: "kinesisvideo", Lookup: keys.lookup},
		Logger:    s.log,
		Registry:  reg,
		// The JSON body follows the headers under the same bound; PutMedia's has its own.
		BodyReadTimeout: cmp.Or(cfg.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:    cmp.Or(cfg.WriteTimeout, DefaultWriteTimeout),
	})
	api.Handle("putMedia", api.PutMedia(s.ingest))
	return api
}

// MaxHeaderBytes bounds a request's line and headers: a SigV4-signed KVS request needs a few
// KiB; a larger one is answered 431.
const MaxHeaderBytes = 64 << 10

// diagSources are what doctor asks about each stream.
func (s *Server) diagSources() []diag.Source {
	sources := []diag.Source{s.ingest}
	if s.disk != nil {
		sources = append(sources, s.disk)
	}
	sources = append(sources, s.images, s.notifier, storageDoctor{s.Store, s.atRest})
	if s.cluster != nil {
		sources = append(sources, s.cluster)
	}
	return sources
}

// newHTTP serves the API beside /healthz, /metrics and the web console.
func (s *Server) newHTTP(ctx context.Context, cfg Config, api, ui http.Handler, reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET "+console.Prefix, ui)
	mux.Handle("/", api)
	// No write timeout: PutMedia and GetMedia responses stream for up to 45 minutes. Request
	// contexts derive from ctx, so Shutdown can end those long requests. ReadHeaderTimeout also
	// bounds the TLS handshake.
	return &http.Server{Handler: mux, ReadHeaderTimeout: cmp.Or(cfg.ReadTimeout, DefaultReadTimeout),
		IdleTimeout: cmp.Or(cfg.IdleTimeout, DefaultIdleTimeout), MaxHeaderBytes: MaxHeaderBytes,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
}

// announce logs the start and tells the person running kvsd how to reach it.
func (s *Server) announce(cfg Config, env Env, b built) {
	if host, _, _ := net.SplitHostPort(cfg.Listen); cfg.PublicURL == "" && net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		s.log.Warn("listening on all interfaces without --public-url: GetDataEndpoint answers a loopback URL that remote producers cannot reach", "url", s.URL)
	}
	if host, _, _ := net.SplitHostPort(cfg.Listen); cfg.Catalog != "" && cfg.NodeURL == "" && net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		s.log.Warn("listening on all interfaces without --node-url: other nodes proxy GetMedia of streams without retention to a loopback URL; set --node-url to this node's address", "node", s.node)
	}
	s.log.Info("kvsd serving", "addr", s.Addr.String(), "url", s.URL, "console", s.URL+"/console/", "region", cfg.Region, "account", cfg.AccountID, "data_dir", cfg.DataDir, "storage", b.storage)
	s.log.Info("images for s3:// destinations are " + b.destination)
	fmt.Fprintf(env.Stdout, "kvsd: serving the KVS API on %s (region %s). Point clients at it, e.g.\n  /usr/bin/aws kinesisvideo list-streams --endpoint-url %s\n", s.URL, cfg.Region, s.URL)
	if b.https {
		fmt.Fprintln(env.Stdout, "  adding --ca-bundle CA.pem (or AWS_CA_BUNDLE=CA.pem) when the certificate is self-signed or from a private CA")
	}
}

// nodeID names this process as a lease holder: host, process id and a random part, so that a
// restarted node is a new holder (its predecessor's grants are not its own), then the URL the
// other nodes reach it on (--node-url), so that a lease row says where its holder serves.
func nodeID(nodeURL string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "kvsd"
	}
	return fmt.Sprintf("%s/%d/%s %s", host, os.Getpid(), rand.Text()[:8], nodeURL)
}

// nodeURLOf is the URL in a holder written by nodeID, "" if it has none.
func nodeURLOf(holder string) string {
	_, u, ok := strings.Cut(holder, " ")
	if !ok || (!strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://")) {
		return ""
	}
	return u
}
