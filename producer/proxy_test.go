package producer_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy is a TCP proxy in front of a real kvsd that breaks the first
// PutMedia connection in one of three ways: cut it after cutAfter bytes;
// when it forwards the inject-th BUFFERING acknowledgement, answer an
// ERROR ack instead (built by errorAck from that fragment's timecode) and
// end the connection, as KVS does after an ERROR; or (silence) pass the
// body on but no answer back. Every other connection (later PutMedias,
// control-plane calls) passes through.
type faultProxy struct {
	ln       net.Listener
	target   atomic.Value // string: kvsd's address
	cutAfter int64
	inject   int
	silence  bool // forward no ack of the first PutMedia (a half-dead connection)
	errorAck func(timecode uint64) string

	putMedias  atomic.Int32
	faulted    atomic.Bool
	injectedAt atomic.Int64 // Unix ms when the ERROR replaced the inject-th BUFFERING
	wg         sync.WaitGroup
}

func newFaultProxy(t testing.TB) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.handle(c) })
	}
}

func (p *faultProxy) handle(client net.Conn) {
	defer client.Close()
	up, err := net.Dial("tcp", p.target.Load().(string))
	if err != nil {
		return
	}
	defer up.Close()
	br := bufio.NewReader(client)
	head, _ := br.Peek(16)
	first := bytes.HasPrefix(head, []byte("POST /putMedia")) && p.putMedias.Add(1) == 1
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			p.faulted.Store(true)
			client.Close()
			up.Close()
		})
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if first && p.cutAfter > 0 {
			// Headers plus cutAfter bytes, then the connection dies.
			if _, err := io.CopyN(up, br, p.cutAfter); err == nil {
				closeBoth()
			}
			return
		}
		_, _ = io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	})
	if first && p.inject > 0 {
		p.injectAcks(client, up, closeBoth)
		return
	}
	if first && p.silence {
		p.faulted.Store(true)
		_, _ = io.Copy(io.Discard, up)
		return
	}
	_, _ = io.Copy(client, up)
	// kvsd closed: end the client's side too, which ends the upload copy.
	client.Close()
	up.Close()
}

// injectAcks forwards the chunked ack stream chunk by chunk and replaces
// the inject-th BUFFERING ack with an ERROR.
func (p *faultProxy) injectAcks(client, up net.Conn, closeBoth func()) {
	r := bufio.NewReader(up)
	// Response headers.
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(client, line); err != nil || line == "\r\n" {
			if err != nil {
				return
			}
			break
		}
	}
	seen := 0
	for {
		sizeLine, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n, err := strconv.ParseInt(strings.TrimSpace(sizeLine), 16, 64)
		if err != nil || n == 0 {
			_, _ = io.WriteString(client, sizeLine)
			_, _ = io.Copy(client, r)
			return
		}
		data := make([]byte, n+2) // with the CRLF
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		var out []byte
		for line := range bytes.Lines(data[:n]) {
			var ack struct {
				EventType        string
				FragmentTimecode uint64
			}
			if json.Unmarshal(line, &ack) == nil && ack.EventType == "BUFFERING" {
				if seen++; seen == p.inject {
					p.injectedAt.Store(time.Now().UnixMilli())
					out = append(out, p.errorAck(ack.FragmentTimecode)+"\n"...)
					fmt.Fprintf(client, "%x\r\n%s\r\n0\r\n\r\n", len(out), out)
					closeBoth()
					return
				}
			}
			out = append(out, line...)
		}
		if _, err := fmt.Fprintf(client, "%x\r\n%s\r\n", len(out), out); err != nil {
			return
		}
	}
}

// errorAckJSON is an ERROR acknowledgement as KVS writes it.
func errorAckJSON(id int, code string) func(uint64) string {
	return func(tc uint64) string {
		return fmt.Sprintf(`{"EventType":"ERROR","FragmentTimecode":%d,"FragmentNumber":"91343852333181432392682062607743920146159169392","ErrorId":%d,"ErrorCode":"%s"}`, tc, id, code)
	}
}
