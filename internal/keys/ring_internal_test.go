package keys

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
)

// A stream keeps its data key for DataKeyAge, then gets a new one; the old one still opens.
func TestDataKeyAge(t *testing.T) {
	f, err := LoadFile(filepath.Join(t.TempDir(), "k"), true)
	require.NoError(t, err)
	now := time.Unix(1700000000, 0)
	r := NewRing(f, nil)
	r.now = func() time.Time { return now }
	k := catalog.Key{Name: "cam", CreatedMs: 1}
	a, err := r.DataKey(context.Background(), k)
	require.NoError(t, err)
	now = now.Add(DataKeyAge - time.Second)
	b, err := r.DataKey(context.Background(), k)
	require.NoError(t, err)
	require.Same(t, a, b)
	now = now.Add(time.Second)
	c, err := r.DataKey(context.Background(), k)
	require.NoError(t, err)
	require.NotEqual(t, a.Wrapped.Blob, c.Wrapped.Blob)
	_, err = r.Open(context.Background(), a.Wrapped)
	require.NoError(t, err)
}
