// Package baseline is the HTTP side of the benchmarks' baseline servers (each program's
// -baseline-server child mode): what they share with kvsd's PutMedia, a full-duplex answer of
// one JSON line per fragment stored, and serving on a loopback port announced on stdout, as
// child.Start expects.
package baseline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Begin starts the answer to a request whose body is still arriving: full duplex, 200 and the
// JSON content type sent at once, as kvsd's PutMedia answers. On an error it has answered 500.
func Begin(w http.ResponseWriter) (*http.ResponseController, error) {
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return nil, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	return rc, nil
}

// Ack sends one PERSISTED line now.
func Ack(w io.Writer, rc *http.ResponseController) error {
	if _, err := io.WriteString(w, `{"EventType":"PERSISTED"}`+"\n"); err != nil {
		return err
	}
	return rc.Flush()
}

// Serve serves h on a free loopback port, announced on stdout, until ctx is done; then it
// gives the requests in flight 10 s to end.
func Serve(ctx context.Context, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("baseline: serving the baseline on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
