package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
	"github.com/kvsd/kvsd/internal/mkv"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// What kvssink sends under faults, replayed on the wire against the kvsd binary (issue #12).

// blocksEnd is the length of the first n blocks of cluster c (its ID, size, Timecode included).
func blocksEnd(t *testing.T, header, c []byte, n int) int {
	t.Helper()
	r := mkv.NewReader(bytes.NewReader(append(bytes.Clone(header), c...)), mkv.Limits{})
	for {
		ev, err := r.Next()
		require.NoError(t, err)
		if ev.Kind == mkv.KindBlock {
			if n--; n == 0 {
				return int(r.Offset()) - len(header)
			}
		}
	}
}

// livePut is a PutMedia fed through a pipe, its acks on a channel.
type livePut struct {
	pw   *io.PipeWriter
	acks chan putmedia.Ack
	done chan error
}

func startPut(srv *kvstest.Server, name string) *livePut {
	pr, pw := io.Pipe()
	p := &livePut{pw: pw, acks: make(chan putmedia.Ack, 100), done: make(chan error, 1)}
	go func() {
		p.done <- srv.PutMediaClient().Put(context.Background(), putmedia.Request{StreamName: name, Body: pr},
			func(a putmedia.Ack) { p.acks <- a })
		close(p.acks)
	}()
	return p
}

// until returns the acks up to the first of event.
func (p *livePut) until(t *testing.T, event string) []putmedia.Ack {
	t.Helper()
	var got []putmedia.Ack
	for a := range p.acks {
		got = append(got, a)
		if a.EventType == event {
			return got
		}
	}
	t.Fatalf("no %s ack; got %+v", event, got)
	return nil
}

// After kill -9, kvssink reconnects and goes on where it was: its body starts with the
// SimpleBlocks of the fragment in flight, no header. kvsd continues the stream with the
// header it stored, skips what it cannot place (that fragment's start died with the process),
// says so (WARN, /metrics, doctor), and stores everything from the next Cluster on.
func TestContinuationAfterKill9(t *testing.T) {
	bin := buildKVSD(t)
	dir := t.TempDir()
	p := startProcess(t, bin, dir, nil, nil)
	srv := p.server()
	srv.CreateStream(t, "cam", 24)
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 4, start))
	cut := blocksEnd(t, header, frags[1], 10)

	put := startPut(srv, "cam")
	_, err := put.pw.Write(bytes.Join([][]byte{header, frags[0], frags[1][:cut]}, nil))
	require.NoError(t, err)
	put.until(t, "PERSISTED") // fragment 0
	p.kill()
	put.pw.Close()
	<-put.done

	p = startProcess(t, bin, dir, nil, nil)
	srv = p.server()
	acks := srv.PutMedia(t, "cam", bytes.NewReader(bytes.Join([][]byte{frags[1][cut:], frags[2], frags[3]}, nil)))
	persisted := 0
	for _, a := range acks {
		require.NotEqual(t, "ERROR", a.EventType, "%+v", a)
		if a.EventType == "PERSISTED" {
			persisted++
		}
	}
	require.Equal(t, 2, persisted)
	numbers := listNumbers(t, srv, "cam")
	require.Len(t, numbers, 3)
	status, _, body := srv.Call(t, "getMediaForFragmentList", map[string]any{"StreamName": "cam", "Fragments": numbers})
	require.Equal(t, 200, status)
	chunks := parseChunks(t, body)
	require.Equal(t, frags[0], chunks[0].media)
	require.Equal(t, frags[2], chunks[1].media)
	require.Equal(t, frags[3], chunks[2].media)

	require.Contains(t, p.stderr.String(), "level=WARN") // the process logs at warn and above
	require.Contains(t, p.stderr.String(), "code=INGEST_CONTINUATION_SKIPPED")
	resp, err := http.Get(p.url + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), `kvsd_ingest_continuations_total{fragment="none"} 1`)
	require.Contains(t, string(metrics), `kvsd_ingest_frames_lost_total{why="continuation"} 15`)
	out, _ := kvstest.Doctor(t, p.url, "cam")
	require.Contains(t, out, "[INGEST_CONTINUATION_SKIPPED]")
	require.Contains(t, out, "fix: ")
}

// SIGTERM mid-fragment: kvsd persists what it received and ends with ERROR 5000 naming the
// fragment in flight, which the producer SDK resends (it rewinds to that timecode).
func TestSIGTERMErrorNamesTheFragmentInFlight(t *testing.T) {
	bin := buildKVSD(t)
	p := startProcess(t, bin, t.TempDir(), nil, nil)
	srv := p.server()
	srv.CreateStream(t, "cam", 24)
	header, frags := kvstest.Clusters(t, kvstest.TestPattern(t, 2, time.Now().Add(-time.Minute).Truncate(time.Second)))
	put := startPut(srv, "cam")
	defer put.pw.Close()
	_, err := put.pw.Write(bytes.Join([][]byte{header, frags[0], frags[1][:blocksEnd(t, header, frags[1], 3)]}, nil))
	require.NoError(t, err)
	acks := put.until(t, "PERSISTED")
	var inFlight uint64
	for _, a := range acks {
		if a.EventType == "BUFFERING" {
			inFlight = a.FragmentTimecode
		}
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	last := put.until(t, "ERROR")
	e := last[len(last)-1]
	require.Equal(t, 5000, e.ErrorID)
	require.Equal(t, inFlight, e.FragmentTimecode)
	require.NotEmpty(t, e.FragmentNumber)
}

// listedFragment is one fragment as ListFragments lists it.
type listedFragment struct {
	FragmentNumber    string
	ProducerTimestamp float64 // epoch seconds
}

// listAll lists every fragment of the stream (by server time, up to now).
func listAll(t *testing.T, srv *kvstest.Server, name string) []listedFragment {
	t.Helper()
	status, _, body := srv.Call(t, "listFragments", map[string]any{"StreamName": name,
		"FragmentSelector": map[string]any{"FragmentSelectorType": "SERVER_TIMESTAMP",
			"TimestampRange": map[string]any{"StartTimestamp": 0, "EndTimestamp": time.Now().Unix() + 60}}})
	require.Equal(t, 200, status, string(body))
	var out struct{ Fragments []listedFragment }
	require.NoError(t, json.Unmarshal(body, &out))
	return out.Fragments
}

// listNumbers lists the stream's fragment numbers, oldest first.
func listNumbers(t *testing.T, srv *kvstest.Server, name string) []string {
	t.Helper()
	var numbers []string
	for _, f := range listAll(t, srv, name) {
		numbers = append(numbers, f.FragmentNumber)
	}
	slices.Sort(numbers)
	return numbers
}
