// Package keys is kvsd's envelope encryption of stored media: each stream gets data keys
// (AES-256-GCM, crypto/aes + crypto/cipher, hardware-accelerated) that encrypt its records, and
// a key-encryption key (KEK) wraps them, so that only wrapped data keys are ever stored.
//
// Two KEKs exist: a key file (File; generated in the data dir on first start) and AWS KMS
// (KMS: GenerateDataKey and Decrypt through the AWS SDK, against AWS or any KMS-compatible
// endpoint). A Wrapped data key names its KEK (source and key id), so a segment that stores it
// stays readable after the KEK rotates, as long as the old KEK is still there.
//
// Ring caches: one data key per stream for new records (for a day at most, and never across a
// restart, so a rotated KEK soon wraps every new data key) and the unwrapped keys of what was
// read, so that neither KMS nor the key file is asked once per record.
package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvsd/kvsd/internal/catalog"
)

// DataKeyLen is the length of a data key: AES-256.
const DataKeyLen = 32

// Source says which kind of KEK wrapped a data key; stored beside the wrapped key.
type Source byte

// The sources. Values are stored in segment headers: never renumber.
const (
	SourceFile Source = 1 // a key file (File)
	SourceKMS  Source = 2 // AWS KMS or a KMS-compatible service (KMS)
)

func (s Source) String() string {
	switch s {
	case SourceFile:
		return "key file"
	case SourceKMS:
		return "KMS"
	}
	return fmt.Sprintf("key source %d", byte(s))
}

// Wrapped is a data key as stored: the KEK that wrapped it and the wrapped bytes.
type Wrapped struct {
	Source Source
	KeyID  string // the key file key's id, or the KMS key (id, ARN or alias) it was generated under
	Blob   []byte // the data key encrypted by that KEK
}

// KEK is a key-encryption key: it makes new data keys and unwraps stored ones.
type KEK interface {
	Source() Source
	// GenerateDataKey returns a new data key, in clear and wrapped. keyID selects the KMS key
	// ("" is the KEK's default); the key file ignores it (it always wraps with its newest key).
	GenerateDataKey(ctx context.Context, keyID string) (plain []byte, w Wrapped, err error)
	// Decrypt unwraps w.
	Decrypt(ctx context.Context, w Wrapped) ([]byte, error)
	// Describe names the KEK for logs and doctor.
	Describe() string
}

// Code is one of KVS's KMS error ids (PutMedia acks and GetMedia error tags, 4500–4506).
type Code int

// The codes, as KVS numbers them.
const (
	AccessDenied    Code = 4500 // KMS_KEY_ACCESS_DENIED
	Disabled        Code = 4501 // KMS_KEY_DISABLED
	ValidationError Code = 4502 // KMS_KEY_VALIDATION_ERROR
	Unavailable     Code = 4503 // KMS_KEY_UNAVAILABLE
	InvalidUsage    Code = 4504 // KMS_KEY_INVALID_USAGE
	InvalidState    Code = 4505 // KMS_KEY_INVALID_STATE
	NotFound        Code = 4506 // KMS_KEY_NOT_FOUND
)

// String is KVS's error code string.
func (c Code) String() string {
	switch c {
	case AccessDenied:
		return "KMS_KEY_ACCESS_DENIED"
	case Disabled:
		return "KMS_KEY_DISABLED"
	case ValidationError:
		return "KMS_KEY_VALIDATION_ERROR"
	case Unavailable:
		return "KMS_KEY_UNAVAILABLE"
	case InvalidUsage:
		return "KMS_KEY_INVALID_USAGE"
	case InvalidState:
		return "KMS_KEY_INVALID_STATE"
	case NotFound:
		return "KMS_KEY_NOT_FOUND"
	}
	return fmt.Sprintf("KMS_KEY_ERROR_%d", int(c))
}

// Error is a key that cannot be used: its Code says why as KVS would.
type Error struct {
	Code  Code
	KeyID string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: key %q: %v", e.Code, e.KeyID, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrKey matches every *Error (errors.Is), for callers that map errors by sentinel.
var ErrKey = errors.New("key cannot be used")

// Is makes errors.Is(err, ErrKey) true.
func (e *Error) Is(target error) bool { return target == ErrKey }

// CodeOf returns the KVS code of a key error in err's chain.
func CodeOf(err error) (Code, bool) {
	var ke *Error
	if errors.As(err, &ke) {
		return ke.Code, true
	}
	return 0, false
}

// DataKey is a stream's current data key: the cipher for new records and what to store so
// they can be read again.
type DataKey struct {
	AEAD    cipher.AEAD
	Wrapped Wrapped
	made    time.Time
}

// DataKeyAge is how long a stream keeps a data key for new segments: a KMS key rotated or an
// alias moved wraps the stream's new data keys within a day, without a restart.
const DataKeyAge = 24 * time.Hour

// Ring hands out data keys: the current one of each stream, and unwrapped stored ones. It is
// safe for concurrent use.
type Ring struct {
	kek   KEK
	keyOf func(ctx context.Context, k catalog.Key) (string, error)

	now func() time.Time

	mu      sync.Mutex
	current map[catalog.Key]*DataKey
	opened  map[openKey]cipher.AEAD
}

type openKey struct {
	source Source
	keyID  string
	blob   string
}

// NewRing returns a Ring over kek. keyOf returns the KMS key of a stream (its CreateStream
// KmsKeyId; "" for the default); nil means the default for all.
func NewRing(kek KEK, keyOf func(ctx context.Context, k catalog.Key) (string, error)) *Ring {
	return &Ring{kek: kek, keyOf: keyOf, now: time.Now, current: map[catalog.Key]*DataKey{}, opened: map[openKey]cipher.AEAD{}}
}

// KEK returns the Ring's key-encryption key.
func (r *Ring) KEK() KEK { return r.kek }

// DataKey returns k's current data key, generating it on first use and once it is DataKeyAge
// old. A failed generation is not cached: the next call asks the KEK again.
func (r *Ring) DataKey(ctx context.Context, k catalog.Key) (*DataKey, error) {
	now := r.now()
	r.mu.Lock()
	dk := r.current[k]
	r.mu.Unlock()
	if dk != nil && now.Sub(dk.made) < DataKeyAge {
		return dk, nil
	}
	keyID := ""
	if r.keyOf != nil {
		id, err := r.keyOf(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("key of stream %s: %w", k.Name, err)
		}
		keyID = id
	}
	plain, w, err := r.kek.GenerateDataKey(ctx, keyID)
	if err != nil {
		return nil, err
	}
	aead, err := NewAEAD(plain)
	if err != nil {
		return nil, err
	}
	dk = &DataKey{AEAD: aead, Wrapped: w, made: now}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.current[k]; cur != nil && now.Sub(cur.made) < DataKeyAge {
		return cur, nil // a concurrent caller won; one key per stream
	}
	r.current[k] = dk
	r.opened[openKey{w.Source, w.KeyID, string(w.Blob)}] = aead
	return dk, nil
}

// Open returns the cipher of a stored data key, unwrapping it on first use.
func (r *Ring) Open(ctx context.Context, w Wrapped) (cipher.AEAD, error) {
	ok := openKey{w.Source, w.KeyID, string(w.Blob)}
	r.mu.Lock()
	aead := r.opened[ok]
	r.mu.Unlock()
	if aead != nil {
		return aead, nil
	}
	if w.Source != r.kek.Source() {
		return nil, &Error{Code: NotFound, KeyID: w.KeyID, Err: fmt.Errorf("data key was wrapped by a %s, kvsd is configured with a %s", w.Source, r.kek.Source())}
	}
	plain, err := r.kek.Decrypt(ctx, w)
	if err != nil {
		return nil, err
	}
	if aead, err = NewAEAD(plain); err != nil {
		return nil, &Error{Code: ValidationError, KeyID: w.KeyID, Err: err}
	}
	r.mu.Lock()
	r.opened[ok] = aead
	r.mu.Unlock()
	return aead, nil
}

// Forget drops k's current data key (the stream was deleted); its next DataKey is a new one.
func (r *Ring) Forget(k catalog.Key) {
	r.mu.Lock()
	delete(r.current, k)
	r.mu.Unlock()
}

// NewAEAD returns AES-256-GCM with key.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != DataKeyLen {
		return nil, fmt.Errorf("data key of %d bytes, want %d", len(key), DataKeyLen)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Limits of a stored Wrapped's fields, as the media formats bound them.
const (
	MaxKeyIDLen   = 2048 // KVS's KmsKeyId limit
	MaxWrappedLen = 4096 // KMS ciphertext blobs are under 200 bytes
)

// DecodeWrapped reads a data key in the form the media formats store it (docs/format): source
// (1 byte), key id length (2, big-endian), key id, blob length (2), blob. It returns the key and
// the bytes it took from b; ok is false when b is cut short or a length passes its limit.
func DecodeWrapped(b []byte) (w Wrapped, n int, ok bool) {
	if len(b) < 3 {
		return Wrapped{}, 0, false
	}
	w.Source = Source(b[0])
	idLen := int(binary.BigEndian.Uint16(b[1:]))
	at := 3
	if idLen > MaxKeyIDLen || at+idLen+2 > len(b) {
		return Wrapped{}, 0, false
	}
	w.KeyID = string(b[at : at+idLen])
	at += idLen
	wLen := int(binary.BigEndian.Uint16(b[at:]))
	at += 2
	if wLen > MaxWrappedLen || at+wLen > len(b) {
		return Wrapped{}, 0, false
	}
	w.Blob = bytes.Clone(b[at : at+wLen])
	return w, at + wLen, true
}
