package app_test

import (
	"bytes"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/postgres/pgtest"
	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
)

// The object store stopped mid-ingest (versitygw killed) and started again on the same
// directory and port: the fragment in flight is not acknowledged PERSISTED but answered ERROR
// 5001 once the node's S3 client gave up (acks are held meanwhile), the producer (`kvsd put`
// through the front door) reconnects and resends, the nodes carry on by themselves once the
// store is back, and no frame of the source is lost.
func TestClusterObjectStoreOutage(t *testing.T) {
	c := startProcCluster(t)
	testOutage(t, c, c.s3.Stop, func() { c.s3.Resume(t) })
}

// The object store hung (versitygw stopped with SIGSTOP: connections accepted, nothing
// answered): the PUT in flight is given up after its timeout (10 s), so the fragment gets ERROR
// 5001 while the store still hangs instead of its ack waiting for TCP; the producer resends, and
// everything is stored once the store answers again.
func TestClusterObjectStoreHangs(t *testing.T) {
	c := startProcCluster(t)
	var frozen time.Time
	testOutage(t, c, func() { frozen = time.Now(); c.s3.Freeze(t) }, func() {
		held := time.Since(frozen)
		t.Logf("ERROR 5001 %v after the object store hung", held.Round(10*time.Millisecond))
		require.Less(t, held, 30*time.Second, "acks held up to the PUT timeout and a bit (without it: until TCP gives up, minutes)")
		c.s3.Thaw(t)
	})
}

// PostgreSQL itself stopped mid-ingest and started again (`pg_ctl stop -m fast`, as an
// administrator's restart; a server of the test's own, since other tests use the machine's):
// ERROR 5001 for the fragment whose commit failed, the producer resends, nothing is lost, and
// the nodes reconnect by themselves.
func TestClusterDatabaseRestart(t *testing.T) {
	pg := pgtest.StartServer(t)
	c := startProcClusterWith(t, func(string) string { return pg.URL })
	testOutage(t, c, func() { pg.Stop(t) }, func() { pg.Start(t) })
}

// PostgreSQL stopped mid-ingest, as the nodes see it: every connection to it cut and new ones
// refused, then accepted again (a restart). The machine's shared PostgreSQL server is not
// stopped (other tests use it): the nodes reach it through a relay this test cuts and restores.
// The same as for the object store: ERROR 5001 for the fragment whose commit failed, the
// producer resends, nothing is lost, and the nodes recover by themselves.
func TestClusterDatabaseOutage(t *testing.T) {
	relay := startRelay(t, "127.0.0.1:5432")
	c := startProcClusterWith(t, func(pgURL string) string {
		u, err := url.Parse(pgURL)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:5432", u.Host, "the test database is on the machine's server")
		u.Host = relay.addr
		return u.String()
	})
	testOutage(t, c, relay.cut, func() { relay.restore(t) })
}

// PostgreSQL that stops answering without closing its connections (a hung server, a network
// black hole): the commit in flight is given up after fragstore's commit timeout (10 s), so the
// fragment gets ERROR 5001 while the database still hangs, instead of its ack waiting for TCP to
// give up; the producer resends, and everything is stored once the database answers again.
func TestClusterDatabaseHangs(t *testing.T) {
	relay := startRelay(t, "127.0.0.1:5432")
	c := startProcClusterWith(t, func(pgURL string) string {
		u, err := url.Parse(pgURL)
		require.NoError(t, err)
		u.Host = relay.addr
		return u.String()
	})
	var frozen time.Time
	testOutage(t, c, func() { frozen = time.Now(); relay.freeze() }, func() {
		held := time.Since(frozen)
		t.Logf("ERROR 5001 %v after the database hung", held.Round(10*time.Millisecond))
		require.Less(t, held, 30*time.Second, "acks held up to the commit timeout and a bit (without it: until TCP gives up, minutes)")
		relay.thaw()
	})
}

func testOutage(t *testing.T, c *procCluster, stop, resume func()) {
	path, data := kvstest.H264File(t, "12")
	put := c.startPut(t, path)
	require.Eventually(t, func() bool { return len(c.front().ListFragments(t, "cam")) >= 3 }, 20*time.Second, 50*time.Millisecond,
		"kvsd put persists fragments\n%s", put.out)
	stop()
	require.Eventually(t, func() bool { return strings.Contains(put.out.String(), "ERROR 5001") }, 90*time.Second, 50*time.Millisecond,
		"the fragment in flight is answered ERROR 5001\n%s", put.out)
	resume()
	put.requireAllPersisted(t)
	t.Logf("kvsd put:\n%s", put.out)

	// Nothing lost: every frame of the source is stored, byte for byte and in order (a fragment
	// the producer resent after an unanswered commit may be stored twice, as on AWS).
	_, src, err := mkv.ReadFrames(data, mkv.Limits{})
	require.NoError(t, err)
	for _, n := range c.nodes {
		stored, _ := n.server().StoredMedia(t, "cam")
		i := 0
		for _, f := range stored {
			if i < len(src) && bytes.Equal(f.Data, src[i].Data) {
				i++
			}
		}
		require.Equal(t, len(src), i, "frames of the source stored in order, read from %s", n.url)
		requireNoOverlapOfDistinct(t, n.server())
	}
}

// relay forwards TCP connections to a server; cut closes them all and refuses new ones until
// restore listens again on the same address.
type relay struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
	thawed       chan struct{} // closed unless frozen: forwarding waits on it
	wg           sync.WaitGroup
}

func startRelay(t *testing.T, target string) *relay {
	r := &relay{target: target, conns: map[net.Conn]bool{}, thawed: make(chan struct{})}
	close(r.thawed)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() { r.cut(); r.wg.Wait() })
	return r
}

func (r *relay) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", r.target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns[in], r.conns[out] = true, true
			r.mu.Unlock()
			r.wg.Go(func() { r.pipe(out, in) })
			r.wg.Go(func() { r.pipe(in, out) })
		}
	})
}

// pipe forwards src to dst, holding what it read while the relay is frozen.
func (r *relay) pipe(dst, src net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			thawed := r.thawed
			r.mu.Unlock()
			<-thawed
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze stops forwarding, keeping every connection open and accepting new ones: the server
// seems to hang.
func (r *relay) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.thawed = make(chan struct{})
}

// thaw forwards again, what was held first.
func (r *relay) thaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.thawed:
	default:
		close(r.thawed)
	}
}

func (r *relay) cut() {
	r.thaw()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
		delete(r.conns, c)
	}
}

func (r *relay) restore(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	require.NoError(t, err)
	r.serve(ln)
}
