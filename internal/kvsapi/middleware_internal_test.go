package kvsapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readFromRecorder is a ResponseWriter with net/http's ReadFrom, recording what it was given.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	got io.Reader
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.got = src
	return io.Copy(r.ResponseRecorder, src)
}

// The observing wrapper hands a file to the ResponseWriter's ReadFrom as it is, so net/http
// can send it with sendfile (GetClip).
func TestStatusWriterKeepsReadFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("0123456789"), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(2, io.SeekStart)
	require.NoError(t, err)

	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	sw := &statusWriter{ResponseWriter: rec}
	lr := &io.LimitedReader{R: f, N: 5}
	n, err := io.Copy(sw, lr)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	require.Same(t, lr, rec.got)
	require.Equal(t, "23456", rec.Body.String())
	require.Equal(t, http.StatusOK, sw.status)
}

// With a write timeout the file goes in pieces (each under its own deadline), still to the
// ResponseWriter's ReadFrom as file sections, and the caller's LimitedReader is used up.
func TestStatusWriterReadFromInPieces(t *testing.T) {
	data := make([]byte, 2*stallPiece+100)
	for i := range data {
		data[i] = byte(i)
	}
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	for _, limit := range []int64{-1, stallPiece, 2*stallPiece + 50} {
		f, err := os.Open(path)
		require.NoError(t, err)
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		sw := newStatusWriter(rec, time.Second)
		var src io.Reader = f
		want := data
		if limit >= 0 {
			src, want = &io.LimitedReader{R: f, N: limit}, data[:limit]
		}
		n, err := sw.ReadFrom(src)
		require.NoError(t, err)
		require.EqualValues(t, len(want), n)
		require.Equal(t, want, rec.Body.Bytes())
		if lr, ok := src.(*io.LimitedReader); ok {
			require.Zero(t, lr.N)
			require.IsType(t, &io.LimitedReader{}, rec.got, "a file section, for sendfile")
		}
		f.Close()
	}
}
