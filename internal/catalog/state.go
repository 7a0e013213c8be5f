package catalog

import (
	"context"
	"errors"
)

// ErrNoState is State.LoadState's answer for a key never saved.
var ErrNoState = errors.New("no saved state")

// State keeps small durable records of background components (image generation,
// notifications): one namespace per component, key → value. Their cursors over the fragment
// index live here, which is what makes their work survive restarts.
//
// Contract (catalogtest.TestState checks it): SaveState is durable when it returns and
// overwrites; concurrent callers may share commits. Components do not see each other's keys.
type State interface {
	// LoadState returns a copy of the value saved under component/key, or ErrNoState.
	LoadState(ctx context.Context, component, key string) ([]byte, error)
	// SaveState durably stores value under component/key.
	SaveState(ctx context.Context, component, key string, value []byte) error
	// DeleteState removes component/key; a missing key is not an error.
	DeleteState(ctx context.Context, component, key string) error
	// StateKeys lists the keys saved for component, in byte order.
	StateKeys(ctx context.Context, component string) ([]string, error)
}
