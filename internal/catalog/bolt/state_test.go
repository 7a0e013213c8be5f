package bolt

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
)

func TestStateSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	require.NoError(t, err)
	ctx := context.Background()

	_, err = db.LoadState(ctx, "imagegen", "cam")
	require.ErrorIs(t, err, catalog.ErrNoState)
	var wg sync.WaitGroup
	for i, k := range []string{"b", "a", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, db.SaveState(ctx, "imagegen", k, []byte{byte(i)}))
		}()
	}
	wg.Wait()
	require.NoError(t, db.SaveState(ctx, "notify", "a", []byte("other component")))
	require.NoError(t, db.SaveState(ctx, "imagegen", "a", []byte("overwritten")))
	require.NoError(t, db.DeleteState(ctx, "imagegen", "c"))
	require.NoError(t, db.DeleteState(ctx, "imagegen", "never-saved"))
	require.NoError(t, db.Close())

	db, err = Open(path)
	require.NoError(t, err)
	defer db.Close()
	v, err := db.LoadState(ctx, "imagegen", "a")
	require.NoError(t, err)
	require.Equal(t, "overwritten", string(v))
	keys, err := db.StateKeys(ctx, "imagegen")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, keys)
	v, err = db.LoadState(ctx, "notify", "a")
	require.NoError(t, err)
	require.Equal(t, "other component", string(v))
}
