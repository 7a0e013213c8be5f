package streamwork

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/kvsd/kvsd/internal/catalog"
)

// State is the catalog's store of small durable records (catalog.State): one namespace per
// component, key → value. LoadState answers catalog.ErrNoState for a key never saved.
type State = catalog.State

// Cursors are the durable cursors of one component: per stream, the sequence of the last
// fragment whose work is done, under StateKey(k). Work resumes after it; a stream without
// a cursor has no work the engine must resume.
type Cursors struct {
	State     State
	Component string // the catalog namespace: "imagegen", "notify"
	// Encode and Decode write and read a cursor's value; nil: decimal text.
	Encode func(seq uint64) []byte
	Decode func(b []byte) (uint64, error)

	shared *Shared // set by New when the engine's claims are shared: Save is fenced by the claim
}

// StateKey names a stream incarnation in the state store: creation ms first, so a re-created
// stream of the same name never inherits a cursor, and one stream's keys sort together.
func StateKey(k Key) string { return strconv.FormatInt(k.CreatedMs, 10) + "_" + k.Name }

// ParseStateKey reverses StateKey.
func ParseStateKey(s string) (Key, bool) {
	ms, name, ok := strings.Cut(s, "_")
	created, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || name == "" {
		return Key{}, false
	}
	return Key{Name: name, CreatedMs: created}, true
}

// Load returns k's cursor; ok is false when k has none.
func (c *Cursors) Load(ctx context.Context, k Key) (seq uint64, ok bool, err error) {
	b, err := c.State.LoadState(ctx, c.Component, StateKey(k))
	if errors.Is(err, catalog.ErrNoState) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	decode := c.Decode
	if decode == nil {
		decode = func(b []byte) (uint64, error) { return strconv.ParseUint(string(b), 10, 64) }
	}
	seq, err = decode(b)
	if err != nil {
		return 0, false, &DamagedError{Component: c.Component, Key: k, Value: b, Err: err}
	}
	return seq, true, nil
}

// DamagedError is a cursor that cannot be read.
type DamagedError struct {
	Component string
	Key       Key
	Value     []byte
	Err       error
}

func (e *DamagedError) Error() string {
	return e.Component + " cursor of " + e.Key.Name + " is damaged (" + strconv.Quote(string(e.Value)) + "): " + e.Err.Error()
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Save durably records seq as k's cursor; with Shared claims, only under k's claim.
func (c *Cursors) Save(ctx context.Context, k Key, seq uint64) error {
	b := []byte(strconv.FormatUint(seq, 10))
	if c.Encode != nil {
		b = c.Encode(seq)
	}
	if c.shared != nil {
		// Refused (catalog.ErrFenced) unless this node holds k's work claim.
		return c.shared.saveFenced(ctx, k, c.Component, StateKey(k), b)
	}
	return c.State.SaveState(ctx, c.Component, StateKey(k), b)
}

// Delete removes k's cursor; a missing one is not an error.
func (c *Cursors) Delete(ctx context.Context, k Key) error {
	return c.State.DeleteState(ctx, c.Component, StateKey(k))
}

// Keys lists the streams that have a cursor; keys in another format are skipped.
func (c *Cursors) Keys(ctx context.Context) ([]Key, error) {
	names, err := c.State.StateKeys(ctx, c.Component)
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, s := range names {
		if k, ok := ParseStateKey(s); ok {
			out = append(out, k)
		}
	}
	return out, nil
}
