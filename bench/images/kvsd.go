package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"

	"github.com/kvsd/kvsd/internal/app"
	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragment"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/imagegen"
	"github.com/kvsd/kvsd/internal/imaging"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/media"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/objstore"
	"github.com/kvsd/kvsd/internal/putmedia"
	"github.com/kvsd/kvsd/internal/stream"
)

const (
	benchAccount = "111122223333"
	benchRegion  = "us-east-1"
)

// measureKVSD is (a), kvsd's whole path from stored fragments to images in the local bucket.
// Untimed, the workload's fragments are stored as ingest stores them (fragstore: disk segments
// and the bbolt catalog) in a stream configured for one image per interval. Timed, the image
// generator of kvsd serve (internal/imagegen, one render worker) is woken and runs until the
// last image is in the local folder: per fragment it reads the bytes back from the store,
// demuxes them, decodes, scales and encodes through the media package, writes image and
// metadata files (atomically), makes them durable (syncfs) and commits its cursor to the
// catalog. The media is encrypted at rest, as kvsd serve stores it (a key file in dir); its
// reads decrypt it.
func measureKVSD(ctx context.Context, wl *workload, dir string) (measurement, error) {
	kf, err := keys.LoadFile(filepath.Join(dir, keys.DefaultKeyFile), true)
	if err != nil {
		return measurement{}, err
	}
	return measureKVSDWith(ctx, wl, dir, keys.NewRing(kf, nil))
}

// measureKVSDClear is measureKVSD with the media stored in clear: what encryption at rest
// costs the image path is the difference between the two, measured in the same run.
func measureKVSDClear(ctx context.Context, wl *workload, dir string) (measurement, error) {
	return measureKVSDWith(ctx, wl, dir, nil)
}

func measureKVSDWith(ctx context.Context, wl *workload, dir string, ring disk.Keys) (measurement, error) {
	db, err := bolt.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		return measurement{}, err
	}
	defer db.Close()
	segments, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "media"), Keys: ring})
	if err != nil {
		return measurement{}, err
	}
	store, err := fragstore.Open(fragstore.Config{Media: segments, Index: db})
	if err != nil {
		segments.Close()
		return measurement{}, err
	}
	defer store.Close()

	var delivered atomic.Int64
	done := make(chan struct{})
	// The generator's decoders, kept to report their stage times next to (d)'s.
	var decMu sync.Mutex
	var decs []imagegen.Decoder
	keepDecoder := func(codecID string, codecPrivate []byte) (imagegen.Decoder, error) {
		d, err := newDecoder(codecID, codecPrivate)
		if err == nil {
			decMu.Lock()
			decs = append(decs, d)
			decMu.Unlock()
		}
		return d, err
	}
	gen, err := imagegen.New(imagegen.Config{Catalog: db, Store: store, NewDecoder: keepDecoder, AccountID: benchAccount,
		Objects: &objstore.Dir{Root: filepath.Join(dir, "buckets")}, Workers: 1, RenderWorkers: 1,
		OnDelivered: func(context.Context, *stream.Stream, imagegen.Delivered) {
			if delivered.Add(1) == int64(wl.Images()) {
				close(done)
			}
		}})
	if err != nil {
		return measurement{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- gen.Run(runCtx) }()
	defer func() { stop(); <-ran }()
	<-gen.Ready() // a stream created from now on starts at its first fragment

	k, err := storeWorkload(ctx, db, store, wl)
	if err != nil {
		return measurement{}, err
	}
	runtime.GC() // start without the setup's garbage
	m, err := timeSelf(func() error {
		gen.Wake(k) // what ingest does after each PERSISTED fragment
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Minute):
			return fmt.Errorf("only %d of %d images after 10 minutes", delivered.Load(), wl.Images())
		}
	})
	if err != nil {
		return m, err
	}
	decMu.Lock()
	var stats imaging.Stats
	for _, d := range decs {
		s := d.Stats()
		stats.Decoded += s.Decoded
		stats.Unfiltered += s.Unfiltered
		stats.Skipped += s.Skipped
		stats.Decode += s.Decode
		stats.Scale += s.Scale
		stats.Encode += s.Encode
	}
	decMu.Unlock()
	m.Stages = &stats
	m.Images, err = countImages(filepath.Join(dir, "buckets", "bench"), wl.Spec)
	return m, err
}

// storeWorkload creates the stream "bench" (every fragment eligible, one JPEG of wl.Spec per
// wl.Interval to s3://bench) and appends the workload's fragments as ingest would.
func storeWorkload(ctx context.Context, db *bolt.DB, store *fragstore.Store, wl *workload) (fragstore.Key, error) {
	svc := &stream.Service{Store: db, Region: benchRegion, AccountID: benchAccount}
	retention, interval, w, h := 24, int(wl.Interval.Milliseconds()), wl.Spec.Width, wl.Spec.Height
	st, err := svc.Create(ctx, stream.CreateInput{Name: "bench", RetentionHours: &retention,
		Tags: map[string]string{imagegen.StreamTag: imagegen.AllFragments}})
	if err != nil {
		return fragstore.Key{}, err
	}
	err = svc.SetImageGeneration(ctx, stream.Ref{Name: "bench"}, &stream.ImageGenerationConfiguration{
		Status: "ENABLED", ImageSelectorType: "PRODUCER_TIMESTAMP", SamplingInterval: &interval, Format: "JPEG",
		DestinationConfig: &stream.ImageGenerationDestinationConfig{Uri: "s3://bench", DestinationRegion: benchRegion},
		FormatConfig:      map[string]string{"JPEGQuality": strconv.Itoa(wl.Spec.Quality)}, WidthPixels: &w, HeightPixels: &h})
	if err != nil {
		return fragstore.Key{}, err
	}
	k := fragstore.KeyOf(st)
	// On a whole second, so on the sampling grid of every workload (images lie on the
	// multiples of the interval on the producer clock).
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	type split struct {
		header, cluster []byte
		tc              uint64
	}
	var frags []split
	for _, frag := range wl.Fragments {
		header, cluster, tc, err := splitFragment(frag)
		if err != nil {
			return k, err
		}
		frags = append(frags, split{header, cluster, tc})
	}
	for i, fr := range frags {
		header, cluster, tc := fr.header, fr.cluster, fr.tc
		// A fragment lasts until the next one starts (kvsd's ingest measures it so), so that
		// no sample time falls between two fragments.
		dur := wl.FragmentDuration.Truncate(time.Millisecond)
		if i+1 < len(frags) {
			dur = time.Duration(frags[i+1].tc-tc) * time.Millisecond
		}
		sum := sha256.Sum256(header)
		seq := uint64(i + 1)
		f := &fragment.Fragment{Seq: seq, Number: fragment.FormatNumber(k.CreatedMs, seq), Timecode: tc,
			ProducerTime: base.Add(time.Duration(tc) * time.Millisecond), ServerTime: base.Add(time.Duration(i) * time.Second),
			Duration: dur, HeaderID: hex.EncodeToString(sum[:16])}
		if err := store.Append(ctx, k, header, f, cluster); err != nil {
			return k, err
		}
	}
	return k, nil
}

// splitFragment splits a workload fragment (document header + one Cluster) and returns the
// Cluster's timecode (ms: the workload's TimecodeScale is Matroska's default).
func splitFragment(frag []byte) (header, cluster []byte, timecode uint64, err error) {
	r := mkv.NewReader(bytes.NewReader(frag), mkv.Limits{})
	for {
		ev, err := r.Next()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("fragment: %w", err)
		}
		if ev.Kind == mkv.KindClusterStart {
			if ev.Header != nil || ev.Offset <= 0 {
				return nil, nil, 0, errors.New("fragment: no header before the cluster")
			}
			return frag[:ev.Offset], frag[ev.Offset:], ev.Timecode, nil
		}
	}
}

// newDecoder is what kvsd serve passes to the generator.
func newDecoder(codecID string, codecPrivate []byte) (imagegen.Decoder, error) {
	d, err := media.NewDecoder(codecID, codecPrivate)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// latency is the delivery-latency run's result.
type latency struct {
	Streams, Images int
	Duration        time.Duration
	P50, P90, P99   time.Duration
	Max             time.Duration
	Missing         int // images that never appeared
	MachineCPU      time.Duration
}

// measureLatency runs kvsd (in this process, the same internal/app code as kvsd serve) with
// n streams, each fed the workload in real time through PutMedia (one 1-s fragment per second,
// starts staggered across the first second), every fragment eligible, one wl.Spec JPEG per
// second to the local folder. Each image's latency is from the PERSISTED ack reaching the
// producer to the image file appearing in its bucket (inotify IN_CREATE or IN_MOVED_TO: the
// local folder links a new file in, or renames a replacement into place, only once it is
// whole).
func measureLatency(ctx context.Context, wl *workload, dir string, n int, seconds int) (latency, error) {
	frags := wl.Fragments[:min(seconds, len(wl.Fragments))]
	_, _, tc0, err := splitFragment(frags[0])
	if err != nil {
		return latency{}, err
	}
	env := map[string]string{"KVSD_ACCESS_KEY_ID": "AKIABENCHIMAGES00001", "KVSD_SECRET_ACCESS_KEY": "bench-images-secret-key-0123456789abcdef"}
	srv, err := app.Start(app.Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "kvsd"), Region: benchRegion,
		AccountID: benchAccount, LogLevel: "warn", LogFormat: "text"},
		app.Env{Getenv: func(k string) string { return env[k] }, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return latency{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	creds := aws.Credentials{AccessKeyID: env["KVSD_ACCESS_KEY_ID"], SecretAccessKey: env["KVSD_SECRET_ACCESS_KEY"]}
	kv := kinesisvideo.New(kinesisvideo.Options{Region: benchRegion, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.StaticCredentialsProvider{Value: creds}})
	names := make([]string, n)
	watch, err := newWatcher()
	if err != nil {
		return latency{}, err
	}
	defer watch.close()
	for i := range names {
		names[i] = fmt.Sprintf("cam-%03d", i)
		if err := createLatencyStream(ctx, kv, wl, names[i]); err != nil {
			return latency{}, err
		}
		// The local folder makes the directory on first use; make it now so it can be watched.
		bucketDir := filepath.Join(dir, "kvsd", "buckets", "latency", names[i])
		if err := os.MkdirAll(bucketDir, 0o755); err != nil {
			return latency{}, err
		}
		if err := watch.add(bucketDir, names[i]); err != nil {
			return latency{}, err
		}
	}

	rec := newLatencyRecord(n, len(frags), int64(tc0))
	go watch.run(func(name string, file string, at time.Time) {
		if ms, ok := imageMillis(file); ok {
			rec.image(slices.Index(names, name), ms, at)
		}
	})
	client := &putmedia.Client{Endpoint: srv.URL, Region: benchRegion, Credentials: creds}
	t0 := time.Now().Add(500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	busy := machineBusy()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range names {
		start := t0.Add(time.Duration(i) * time.Second / time.Duration(n)) // staggered over one second
		producerStart := rec.start(i, start.Truncate(time.Second))         // what the header carries
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, pw := io.Pipe()
			go feed(ctx, pw, frags, start)
			err := client.Put(ctx, putmedia.Request{StreamName: names[i], TimecodeType: "RELATIVE", ProducerStart: producerStart, Body: body},
				func(a putmedia.Ack) {
					if a.EventType == "PERSISTED" {
						rec.persisted(i, int64(a.FragmentTimecode), time.Now())
					}
				})
			body.Close()
			if err != nil {
				errs <- fmt.Errorf("%s: %w", names[i], err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return latency{}, err
	}
	time.Sleep(2 * time.Second) // the last images
	res := rec.result()
	res.Streams, res.Duration, res.MachineCPU = n, time.Since(t0), machineBusy()-busy
	if res.Images == 0 {
		return res, errors.New("no image was delivered")
	}
	return res, nil
}

// latencyRecord pairs each fragment's PERSISTED ack with its image, by stream and fragment
// index (cluster timecode − the first one, in seconds).
type latencyRecord struct {
	mu        sync.Mutex
	tc0       int64
	starts    []time.Time   // per stream: the producer start (RELATIVE timecodes count from it)
	acked     [][]time.Time // [stream][fragment]: when the PERSISTED ack arrived
	delivered [][]time.Time // [stream][fragment]: when the image file appeared
}

func newLatencyRecord(streams, frags int, tc0 int64) *latencyRecord {
	r := &latencyRecord{tc0: tc0, starts: make([]time.Time, streams), acked: make([][]time.Time, streams), delivered: make([][]time.Time, streams)}
	for i := range r.acked {
		r.acked[i], r.delivered[i] = make([]time.Time, frags), make([]time.Time, frags)
	}
	return r
}

func (r *latencyRecord) start(stream int, t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts[stream] = t
	return t
}

func (r *latencyRecord) index(timecode int64) int { return int((timecode - r.tc0 + 500) / 1000) }

func (r *latencyRecord) persisted(stream int, timecode int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j := r.index(timecode); j >= 0 && j < len(r.acked[stream]) {
		r.acked[stream][j] = at
	}
}

// image records an image file; ms is its time from the key: producer start + timecode.
func (r *latencyRecord) image(stream int, ms int64, at time.Time) {
	if stream < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if j := r.index(ms - r.starts[stream].UnixMilli()); j >= 0 && j < len(r.delivered[stream]) && r.delivered[stream][j].IsZero() {
		r.delivered[stream][j] = at
	}
}

// result computes the percentiles over the fragments acknowledged PERSISTED.
func (r *latencyRecord) result() latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	var res latency
	var lat []time.Duration
	for i := range r.acked {
		for j, p := range r.acked[i] {
			switch {
			case p.IsZero():
			case r.delivered[i][j].IsZero():
				res.Missing++
			default:
				lat = append(lat, max(r.delivered[i][j].Sub(p), 0))
			}
		}
	}
	if len(lat) == 0 {
		return res
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res.Images, res.P50, res.P90, res.P99, res.Max = len(lat), q(0.5), q(0.9), q(0.99), lat[len(lat)-1]
	return res
}

// createLatencyStream makes a stream whose every fragment gets one wl.Spec JPEG per
// wl.Interval, delivered to s3://latency/<name> (the local folder).
func createLatencyStream(ctx context.Context, kv *kinesisvideo.Client, wl *workload, name string) error {
	_, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(24),
		Tags: map[string]string{imagegen.StreamTag: imagegen.AllFragments}})
	if err != nil {
		return err
	}
	w, h := int32(wl.Spec.Width), int32(wl.Spec.Height)
	cfg := &types.ImageGenerationConfiguration{
		Status:            types.ConfigurationStatusEnabled,
		ImageSelectorType: types.ImageSelectorTypeProducerTimestamp,
		SamplingInterval:  aws.Int32(int32(wl.Interval.Milliseconds())),
		Format:            types.FormatJpeg,
		FormatConfig:      map[string]string{"JPEGQuality": strconv.Itoa(wl.Spec.Quality)},
		WidthPixels:       &w,
		HeightPixels:      &h,
		DestinationConfig: &types.ImageGenerationDestinationConfig{Uri: aws.String("s3://latency/" + name), DestinationRegion: aws.String(benchRegion)},
	}
	_, err = kv.UpdateImageGenerationConfiguration(ctx, &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String(name), ImageGenerationConfiguration: cfg})
	return err
}

// feed writes the fragments to w in real time: fragment i (its header only with the first) at
// start + i seconds, as a camera would.
func feed(ctx context.Context, w *io.PipeWriter, frags [][]byte, start time.Time) {
	for i, frag := range frags {
		if d := time.Until(start.Add(time.Duration(i) * time.Second)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				w.CloseWithError(ctx.Err())
				return
			}
		}
		header, cluster, _, err := splitFragment(frag)
		if err != nil {
			w.CloseWithError(err)
			return
		}
		if i == 0 {
			cluster = append(slices.Clip(header), cluster...)
		}
		if _, err := w.Write(cluster); err != nil {
			return
		}
	}
	w.Close()
}

// imageMillis reads the image time out of a KVS image key's file name
// (…_<account>_<stream>_<ms>_<uuid>.jpg).
func imageMillis(file string) (int64, bool) {
	parts := bytes.Split([]byte(file), []byte("_"))
	if len(parts) < 4 {
		return 0, false
	}
	ms, err := strconv.ParseInt(string(parts[len(parts)-2]), 10, 64)
	return ms, err == nil
}

// watcher reports files linked or renamed into watched directories (inotify), with the time it read
// the event.
type watcher struct {
	f     *os.File
	fd    int
	mu    sync.Mutex
	names map[int32]string // watch descriptor → stream
}

func newWatcher() (*watcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// A non-blocking descriptor in an *os.File goes through Go's poller, so Close ends Read.
	return &watcher{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, names: map[int32]string{}}, nil
}

func (w *watcher) add(dir, name string) error {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO)
	if err != nil {
		return fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	w.mu.Lock()
	w.names[int32(wd)] = name
	w.mu.Unlock()
	return nil
}

// run reads events until the watcher is closed.
func (w *watcher) run(fn func(name, file string, at time.Time)) {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil || n <= 0 {
			return
		}
		at := time.Now()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			file := string(bytes.TrimRight(nameBytes, "\x00"))
			w.mu.Lock()
			name := w.names[ev.Wd]
			w.mu.Unlock()
			if filepath.Ext(file) == ".jpg" {
				fn(name, file, at)
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

func (w *watcher) close() { w.f.Close() }
