package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kvsd/kvsd/bench/internal/child"
	"github.com/kvsd/kvsd/bench/internal/kvsdproc"
	"github.com/kvsd/kvsd/bench/internal/machine"
	"github.com/kvsd/kvsd/internal/putmedia"
)

// startKvsd runs kvsd serve on dataDir (kvsdproc.Launcher.Start). name tells its log and
// profile apart from the others of the run.
func (b *bench) startKvsd(name, dataDir string) (*kvsd, error) {
	p, err := b.kvsd.Start(name, dataDir)
	if err != nil {
		return nil, err
	}
	return &kvsd{Proc: p, http: kvsdproc.NewHTTPClient()}, nil
}

// kvsd is a running kvsd.
type kvsd struct {
	*child.Proc
	http *http.Client
}

func (k *kvsd) putClient() *putmedia.Client { return kvsdproc.PutClient(k.URL, k.http) }

// apiError is an AWS JSON error answer.
type apiError struct {
	op, code, msg string
	status        int
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %d %s: %s", e.op, e.status, e.code, e.msg) }

// post sends a SigV4-signed KVS JSON request (POST /<op>) and returns the response, whose body
// the caller closes; a non-200 answer is an *apiError.
func (k *kvsd) post(ctx context.Context, op string, in any) (*http.Response, error) {
	req, err := kvsdproc.NewRequest(ctx, k.URL, op, in)
	if err != nil {
		return nil, err
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return nil, &apiError{op: op, code: strings.SplitN(resp.Header.Get("x-amzn-ErrorType"), ":", 2)[0], msg: e.Message, status: resp.StatusCode}
	}
	return resp, nil
}

// call is post for requests with a JSON answer, decoded into out.
func (k *kvsd) call(ctx context.Context, op string, in, out any) error {
	resp, err := k.post(ctx, op, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}

// get fetches a playback resource (unsigned, as players do) and returns its body.
func (k *kvsd) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d: %.300s", url, resp.StatusCode, body)
	}
	return body, nil
}

// createStreams creates streams with the given retention.
func (k *kvsd) createStreams(ctx context.Context, names []string, retentionHours int) error {
	for _, n := range names {
		var out struct{ StreamARN string }
		if err := k.call(ctx, "createStream", map[string]any{"StreamName": n, "DataRetentionInHours": retentionHours,
			"MediaType": "video/h264"}, &out); err != nil {
			return fmt.Errorf("create stream %s: %w", n, err)
		}
	}
	return nil
}

// epoch is a timestamp as the AWS JSON protocol writes it: seconds, fractional.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// cpuSnap is a moment's CPU counters: the machine's busy time, this program's and kvsd's.
type cpuSnap struct {
	at                    time.Time
	machine, self, server time.Duration
}

func snapCPU(serverPID int) cpuSnap {
	busy, _ := machine.Busy()
	self, _ := child.CPUTime(os.Getpid())
	server, _ := child.CPUTime(serverPID) // 0 once it has exited
	return cpuSnap{at: time.Now(), machine: busy, self: self, server: server}
}

// cpuUse is what was used between two snaps: kvsd's CPU time, and in cores (CPU seconds per
// wall second) this program's and everything else's (other processes and the kernel's own
// threads), extra being CPU time of children the caller accounts for itself (ffmpeg).
type cpuUse struct {
	wall        time.Duration
	server      time.Duration
	self, other float64
}

func (a cpuSnap) to(b cpuSnap, extra time.Duration) cpuUse {
	wall := b.at.Sub(a.at)
	u := cpuUse{wall: wall, server: b.server - a.server, self: (b.self - a.self).Seconds() / wall.Seconds()}
	rest := b.machine - a.machine - u.server - (b.self - a.self) - extra
	u.other = max(0, rest.Seconds()/wall.Seconds())
	return u
}

func (u cpuUse) serverCores() float64 { return u.server.Seconds() / u.wall.Seconds() }
