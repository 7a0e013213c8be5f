package catalogtest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
)

// TestState runs the catalog.State conformance suite. open must return an empty store.
func TestState(t *testing.T, open func(t *testing.T) catalog.State) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.State)
	}{
		{"Missing", testStateMissing},
		{"RoundTrip", testStateRoundTrip},
		{"ComponentsApart", testStateComponents},
		{"Keys", testStateKeys},
		{"Concurrent", testStateConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func testStateMissing(t *testing.T, s catalog.State) {
	ctx := context.Background()
	_, err := s.LoadState(ctx, "imagegen", "cam")
	require.ErrorIs(t, err, catalog.ErrNoState)
	require.NoError(t, s.SaveState(ctx, "imagegen", "other", []byte("1")))
	_, err = s.LoadState(ctx, "imagegen", "cam")
	require.ErrorIs(t, err, catalog.ErrNoState)
	require.NoError(t, s.DeleteState(ctx, "imagegen", "never-saved"))
	require.NoError(t, s.DeleteState(ctx, "never-used", "cam"))
	keys, err := s.StateKeys(ctx, "never-used")
	require.NoError(t, err)
	require.Empty(t, keys)
}

func testStateRoundTrip(t *testing.T, s catalog.State) {
	ctx := context.Background()
	val := []byte("first")
	require.NoError(t, s.SaveState(ctx, "imagegen", "cam", val))
	val[0] = 'X' // the store keeps its own copy
	v, err := s.LoadState(ctx, "imagegen", "cam")
	require.NoError(t, err)
	require.Equal(t, "first", string(v))
	v[0] = 'Y' // and hands out copies
	require.NoError(t, s.SaveState(ctx, "imagegen", "cam", []byte("second")))
	v, err = s.LoadState(ctx, "imagegen", "cam")
	require.NoError(t, err)
	require.Equal(t, "second", string(v))
	require.NoError(t, s.DeleteState(ctx, "imagegen", "cam"))
	_, err = s.LoadState(ctx, "imagegen", "cam")
	require.ErrorIs(t, err, catalog.ErrNoState)
}

func testStateComponents(t *testing.T, s catalog.State) {
	ctx := context.Background()
	require.NoError(t, s.SaveState(ctx, "imagegen", "cam", []byte("i")))
	require.NoError(t, s.SaveState(ctx, "notify", "cam", []byte("n")))
	require.NoError(t, s.DeleteState(ctx, "imagegen", "cam"))
	v, err := s.LoadState(ctx, "notify", "cam")
	require.NoError(t, err)
	require.Equal(t, "n", string(v))
	keys, err := s.StateKeys(ctx, "imagegen")
	require.NoError(t, err)
	require.Empty(t, keys)
}

func testStateKeys(t *testing.T, s catalog.State) {
	ctx := context.Background()
	for _, k := range []string{"b", "a/2", "a", "1700_cam", "a/10"} {
		require.NoError(t, s.SaveState(ctx, "notify-outbox", k, nil))
	}
	keys, err := s.StateKeys(ctx, "notify-outbox")
	require.NoError(t, err)
	require.Equal(t, []string{"1700_cam", "a", "a/10", "a/2", "b"}, keys) // byte order
}

func testStateConcurrent(t *testing.T, s catalog.State) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, s.SaveState(ctx, "imagegen", fmt.Sprintf("k%02d", i), []byte{byte(i)}))
		}()
	}
	wg.Wait()
	keys, err := s.StateKeys(ctx, "imagegen")
	require.NoError(t, err)
	require.Len(t, keys, 16)
	v, err := s.LoadState(ctx, "imagegen", "k07")
	require.NoError(t, err)
	require.Equal(t, []byte{7}, v)
}
