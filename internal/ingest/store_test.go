package ingest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog/bolt"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
)

// openStore opens the real fragment store: disk media in a temp dir, the index in db.
func openStore(t *testing.T, db *bolt.DB) testStore {
	t.Helper()
	media, err := disk.Open(disk.Config{Dir: filepath.Join(t.TempDir(), "media")})
	require.NoError(t, err)
	st, err := fragstore.Open(fragstore.Config{Media: media, Index: db})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}
