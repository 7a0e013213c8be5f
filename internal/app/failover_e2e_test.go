package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/logtest"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// leaseTTL is the stream lease's expiry (ingest.DefaultLeaseTTL): the longest a dead node
// keeps its streams.
const leaseTTL = 5 * time.Second

// procCluster is three kvsd processes as the README's deployment runs them: the same --catalog (a
// fresh PostgreSQL database), the same --media (a versitygw bucket), --public-url set to the
// front door (deploy/haproxy.cfg in HAProxy) in front of them.
type procCluster struct {
	bin   string
	pgURL string
	s3    *s3test.Server
	fd    *kvstest.FrontDoor
	nodes []*clusterNode
}

// clusterNode is one kvsd of a cluster, reached directly at url (the front door is fd.URL).
type clusterNode struct {
	p    *process
	addr string
	url  string
}

func (n *clusterNode) server() *kvstest.Server { return kvstest.Attach(n.url) }

func startProcCluster(t *testing.T) *procCluster {
	t.Helper()
	return startProcClusterWith(t, func(u string) string { return u })
}

// startProcClusterWith is startProcCluster with the nodes' --catalog URL made by catalogURL from the
// test database's.
func startProcClusterWith(t *testing.T, catalogURL func(string) string) *procCluster {
	t.Helper()
	c := &procCluster{bin: buildKVSD(t), pgURL: pgtest.NewDatabase(t), s3: s3test.Start(t)}
	c.s3.CreateBucket(t, "kvsd-media")
	var addrs []string
	for range 3 {
		addrs = append(addrs, kvstest.FreeAddr(t))
	}
	c.fd = kvstest.StartFrontDoor(t, addrs...)
	for _, addr := range addrs {
		p := startProcess(t, c.bin, t.TempDir(), []string{"--listen", addr, "--catalog", catalogURL(c.pgURL),
			"--media", "s3://kvsd-media/site-a", "--s3-endpoint", c.s3.Endpoint, "--s3-path-style", "--public-url", c.fd.URL,
			"--key-file", clusterKeyFile(t, c.s3), "--max-conns-per-client", "0"},
			[]string{"AWS_ACCESS_KEY_ID=" + s3test.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3test.SecretAccessKey})
		require.Equal(t, c.fd.URL, p.url, "GetDataEndpoint answers the front door")
		c.nodes = append(c.nodes, &clusterNode{p: p, addr: addr, url: "http://" + addr})
	}
	// Every node in: the front door's checks passed for all of them.
	require.Eventually(t, func() bool {
		status, err := c.fd.Healthz()
		return err == nil && status == 200
	}, 10*time.Second, 20*time.Millisecond)
	c.front().CreateStream(t, "cam", 24)
	return c
}

func (c *procCluster) front() *kvstest.Server { return kvstest.Attach(c.fd.URL) }

// owner is the node holding the stream's live lease (its holder name carries the pid), or nil.
func (c *procCluster) owner(t *testing.T, stream string) *clusterNode {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.pgURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var holder string
	err = conn.QueryRow(context.Background(), `SELECT holder FROM stream_leases WHERE stream = $1 AND holder <> '' AND expires_at > now()`, stream).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	require.NoError(t, err)
	id, _, _ := strings.Cut(holder, " ") // host/pid/random, then the node's URL
	parts := strings.Split(id, "/")
	require.Len(t, parts, 3, holder)
	pid, err := strconv.Atoi(parts[1])
	require.NoError(t, err)
	for _, n := range c.nodes {
		if n.p.cmd.Process.Pid == pid {
			return n
		}
	}
	t.Fatalf("lease holder %s is none of the nodes", holder)
	return nil
}

// others are the nodes but n.
func (c *procCluster) others(n *clusterNode) []*clusterNode {
	var out []*clusterNode
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// persistedMedia reads fragments back from srv: number → media.
func persistedMedia(t *testing.T, srv *kvstest.Server, stream string, numbers []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if len(numbers) == 0 {
		return out
	}
	status, _, body := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": stream, "Fragments": numbers})
	require.Equal(t, 200, status, string(body))
	for _, c := range parseChunks(t, body) {
		out[c.awsTags["AWS_KINESISVIDEO_FRAGMENT_NUMBER"]] = c.media
	}
	return out
}

// requireNoOverlap checks that the stream's index, as srv lists it, has no fragment twice and no
// two fragments whose producer time ranges overlap.
func requireNoOverlap(t *testing.T, srv *kvstest.Server, stream string) []kvstest.FragmentInfo {
	t.Helper()
	list := srv.ListFragments(t, stream)
	seen := map[string]bool{}
	for i, f := range list {
		require.False(t, seen[f.Number], "fragment %s listed twice", f.Number)
		seen[f.Number] = true
		for _, g := range list[:i] {
			overlap := f.Producer < g.Producer+g.Length && g.Producer < f.Producer+f.Length
			require.False(t, overlap, "fragments %s [%d+%d] and %s [%d+%d] overlap", g.Number, g.Producer, g.Length, f.Number, f.Producer, f.Length)
		}
	}
	return list
}

// kill -9 of the stream's owner while `kvsd put` (the binary, through the front door) streams a
// clip in real time: the producer reconnects through the front door by itself, another node
// takes the stream once the dead node's lease expired and acknowledges PERSISTED within a few
// seconds; every fragment persisted before the kill is listed and byte-identical on every
// surviving node, and `kvsd put` ends with everything persisted.
func TestClusterKillOwnerDuringKvsdPut(t *testing.T) {
	c := startProcCluster(t)
	path, _ := kvstest.H264File(t, "12")
	put := c.startPut(t, path)

	// A few fragments persisted; the owner is known.
	var owner *clusterNode
	require.Eventually(t, func() bool {
		owner = c.owner(t, "cam")
		return owner != nil && len(c.front().ListFragments(t, "cam")) >= 3
	}, 20*time.Second, 50*time.Millisecond, "kvsd put persists fragments\n%s", put.out)
	survivor := c.others(owner)[0].server()
	// Everything listed now was acknowledged or is about to be: it must survive the kill.
	before := survivor.ListFragments(t, "cam")
	var numbers []string
	for _, f := range before {
		numbers = append(numbers, f.Number)
	}
	want := persistedMedia(t, survivor, "cam", numbers)
	owner.p.kill()
	killed := time.Now()

	require.Eventually(t, func() bool { return len(survivor.ListFragments(t, "cam")) > len(before) }, 3*leaseTTL, 50*time.Millisecond,
		"a fragment persisted after the kill\n%s", put.out)
	failover := time.Since(killed)
	t.Logf("first fragment persisted on another node %v after kill -9 of the owner", failover.Round(10*time.Millisecond))
	require.Less(t, failover, leaseTTL+4*time.Second, "failover within the lease expiry and a bit")

	put.requireAllPersisted(t)
	require.Contains(t, put.out.String(), "ConnectionLimitExceededException", "the producer met the dead node's lease and waited it out")

	for _, n := range c.others(owner) {
		srv := n.server()
		got := persistedMedia(t, srv, "cam", numbers)
		for num, media := range want {
			require.True(t, bytes.Equal(media, got[num]), "fragment %s on %s", num, n.url)
		}
		requireNoOverlapOfDistinct(t, srv)
	}
}

// putRun is `kvsd put` (the binary) streaming a file in real time through the front door.
type putRun struct {
	out    *logtest.Buffer
	exited chan struct{}
	err    error
}

func (c *procCluster) startPut(t *testing.T, path string) *putRun {
	t.Helper()
	cmd := exec.Command(c.bin, "put", "--stream", "cam", "--endpoint-url", c.fd.URL, "--fragment-duration", "500ms", "--quiet", path)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+kvstest.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+kvstest.SecretAccessKey,
		"AWS_SESSION_TOKEN=", "AWS_REGION="+kvstest.Region, "AWS_PROFILE=", "AWS_ENDPOINT_URL=",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	r := &putRun{out: &logtest.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	require.NoError(t, cmd.Start())
	go func() { r.err = cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-r.exited })
	return r
}

// requireAllPersisted waits for kvsd put to end and checks that it says every fragment was
// persisted.
func (r *putRun) requireAllPersisted(t *testing.T) {
	t.Helper()
	select {
	case <-r.exited:
		require.NoError(t, r.err, "%s", r.out)
	case <-time.After(90 * time.Second):
		t.Fatalf("kvsd put did not finish\n%s", r.out)
	}
	m := regexp.MustCompile(`cam: (\d+) of (\d+) fragments persisted`).FindStringSubmatch(r.out.String())
	require.NotNil(t, m, r.out.String())
	require.Equal(t, m[1], m[2], "every fragment persisted\n%s", r.out)
}

// requireNoOverlapOfDistinct: after a failover the producer may resend the fragments it had
// not seen acknowledged, so the stream may hold a fragment twice (as on AWS); but each copy is
// whole: two listed fragments either cover the same producer time exactly or do not overlap.
func requireNoOverlapOfDistinct(t *testing.T, srv *kvstest.Server) {
	t.Helper()
	list := srv.ListFragments(t, "cam")
	for i, f := range list {
		for _, g := range list[:i] {
			same := f.Producer == g.Producer && f.Length == g.Length
			overlap := f.Producer < g.Producer+g.Length && g.Producer < f.Producer+f.Length
			require.True(t, same || !overlap, "fragments %s and %s overlap", g.Number, f.Number)
		}
	}
}

// kill -9 of the stream's owner during a PutMedia of an independent client (this repository's
// PutMedia client, as an SDK sends it, through the front door): the broken connection's
// fragments acknowledged PERSISTED are listed and byte-identical on every surviving node, and
// a new PutMedia through the front door is acknowledged PERSISTED within the lease expiry and
// a bit (ConnectionLimitExceeded until then).
func TestClusterKillOwnerDuringPutMedia(t *testing.T) {
	c := startProcCluster(t)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 10, start))
	client := c.front().PutMediaClient()

	pr, pw := io.Pipe()
	acks := make(chan putmedia.Ack, 100)
	putErr := make(chan error, 1)
	go func() {
		putErr <- client.Put(context.Background(), putmedia.Request{StreamName: "cam", Body: pr}, func(a putmedia.Ack) { acks <- a })
	}()
	want := map[string][]byte{}
	_, err := pw.Write(header)
	require.NoError(t, err)
	for i := range 4 {
		_, err := pw.Write(frags[i])
		require.NoError(t, err)
		if i == 0 {
			continue // a fragment is complete when the next one starts
		}
		for a := range acks {
			if a.EventType == "PERSISTED" {
				want[a.FragmentNumber] = frags[int((int64(a.FragmentTimecode)-start.UnixMilli())/1000)]
				break
			}
			require.NotEqual(t, "ERROR", a.EventType, "%+v", a)
		}
	}
	require.Len(t, want, 3)
	owner := c.owner(t, "cam")
	require.NotNil(t, owner)
	owner.p.kill()
	killed := time.Now()
	require.Error(t, <-putErr, "the connection broke with its node")
	pw.Close()

	// The producer's next connection, through the front door, with the fragment that was in
	// flight and the rest.
	var got []putmedia.Ack
	var refused int
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got = nil
		err := client.Put(context.Background(), putmedia.Request{StreamName: "cam", Body: bytes.NewReader(bytes.Join(append([][]byte{header}, frags[3:]...), nil))},
			func(a putmedia.Ack) { got = append(got, a) })
		var apiErr *putmedia.APIError
		if errors.As(err, &apiErr) && apiErr.Code == "ConnectionLimitExceededException" {
			refused++
		}
		assert.NoError(ct, err)
	}, 3*leaseTTL, 100*time.Millisecond)
	failover := time.Since(killed)
	t.Logf("PERSISTED on another node %v after kill -9 of the owner (%d refusals before)", failover.Round(10*time.Millisecond), refused)
	require.Less(t, failover, leaseTTL+4*time.Second)
	require.Len(t, kvstest.Persisted(t, got), len(frags)-3)

	for _, n := range c.others(owner) {
		verifyPersisted(t, n.server(), map[string]map[string][]byte{"cam": want})
		requireNoOverlap(t, n.server(), "cam")
		require.Len(t, n.server().ListFragments(t, "cam"), len(frags))
	}
}

// SIGSTOP of the owner past its lease, then SIGCONT: meanwhile another node took the stream and
// persisted fragments; the stopped node's fragment completed after the takeover (its bytes
// were in the node's socket when it stopped) is refused: no PERSISTED for it, an ERROR ack
// instead; nothing is acknowledged twice, and the index holds no fragment of the stale node
// after the takeover, and no overlap.
func TestClusterStoppedOwnerIsFenced(t *testing.T) {
	c := startProcCluster(t)
	a, b := c.nodes[0], c.nodes[1]
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 8, start))

	// The producer talks to a directly, so that nothing but a's pause ends its connection.
	pr, pw := io.Pipe()
	acks := make(chan putmedia.Ack, 100)
	putErr := make(chan error, 1)
	go func() {
		putErr <- a.server().PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam", Body: pr}, func(ack putmedia.Ack) { acks <- ack })
	}()
	acked := map[int64]int{} // producer timecode → PERSISTED acks, over every connection
	var mu sync.Mutex
	_, err := pw.Write(bytes.Join([][]byte{header, frags[0], frags[1], frags[2]}, nil))
	require.NoError(t, err)
	for n := 0; n < 2; {
		ack := <-acks
		require.NotEqual(t, "ERROR", ack.EventType, "%+v", ack)
		if ack.EventType == "PERSISTED" {
			acked[int64(ack.FragmentTimecode)]++
			n++
		}
	}
	require.Same(t, a, c.owner(t, "cam"))

	require.NoError(t, a.p.cmd.Process.Signal(syscall.SIGSTOP))
	defer func() { _ = a.p.cmd.Process.Signal(syscall.SIGCONT) }()
	// Fragment 2 is completed by fragment 3's start, which reaches a's socket while a is stopped.
	_, err = pw.Write(frags[3][:len(frags[3])/2])
	require.NoError(t, err)

	// a's lease expires (on the database's clock); b takes the stream with the producer's
	// other connection and persists fragments 4 and 5.
	var got []putmedia.Ack
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		got = nil
		err := b.server().PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: "cam",
			Body: bytes.NewReader(bytes.Join([][]byte{header, frags[4], frags[5]}, nil))}, func(ack putmedia.Ack) { got = append(got, ack) })
		assert.NoError(ct, err)
	}, 3*leaseTTL, 100*time.Millisecond)
	for _, ack := range got {
		if ack.EventType == "PERSISTED" {
			mu.Lock()
			acked[int64(ack.FragmentTimecode)]++
			mu.Unlock()
		}
	}
	require.Len(t, kvstest.Persisted(t, got), 2)

	// a resumes: fragment 2's commit (and fragment 3's, which never completes) is refused.
	require.NoError(t, a.p.cmd.Process.Signal(syscall.SIGCONT))
	var late []putmedia.Ack
	for done := false; !done; {
		select {
		case ack := <-acks:
			late = append(late, ack)
			done = ack.EventType == "ERROR"
		case err := <-putErr:
			t.Fatalf("a's connection ended without an ERROR ack: %v (acks %+v)", err, late)
		case <-time.After(30 * time.Second):
			t.Fatalf("no ERROR ack from the stale node; acks %+v\n%s", late, a.p.stderr.String())
		}
	}
	for _, ack := range late {
		require.NotEqual(t, "PERSISTED", ack.EventType, "the stale node acknowledged %+v", ack)
	}
	pw.Close()
	<-putErr
	for tc, n := range acked {
		require.Equal(t, 1, n, "fragment at %d acknowledged %d times", tc, n)
	}

	for _, n := range c.others(nil) {
		list := requireNoOverlap(t, n.server(), "cam")
		var producer []int64
		for _, f := range list {
			producer = append(producer, f.Producer-start.UnixMilli())
		}
		require.ElementsMatch(t, []int64{0, 1000, 4000, 5000}, producer, "a's fragments 0 and 1, then b's 4 and 5, on %s", n.url)
	}
	require.Contains(t, a.p.stderr.String(), "fenced", "a's commit was refused by the fence, not lost otherwise")
}
