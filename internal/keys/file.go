package keys

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// DefaultKeyFile is the key file's name in the data dir.
const DefaultKeyFile = "kvsd.key"

// keyFileHeader opens every generated key file, so that whoever finds it knows what it is.
const keyFileHeader = `# kvsd key-encryption keys: one base64 AES-256 key a line. The last line wraps new data keys;
# the others keep unwrapping what they wrapped: never remove a line while kvsd's stored media
# may use it (see README, Encryption at rest). Losing this file loses the video.
`

// File is a KEK kept in a key file: lines of base64 32-byte keys, the last the current one.
// Each key is named by a fingerprint (the first 8 bytes of the SHA-256 of the key, in hex),
// stored beside every data key it wraps, so appending a key (rotation) keeps the older data
// keys readable.
type File struct {
	path    string
	current string            // id of the last key
	keys    map[string][]byte // id → key
}

var _ KEK = (*File)(nil)

// LoadFile reads the key file at path. When it does not exist and create is set, a new file
// with one fresh key is written first (mode 0600, never over an existing file).
func LoadFile(path string, create bool) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := writeNewKeyFile(path); err != nil {
			return nil, fmt.Errorf("create key file %s: %w", path, err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	f, err := parseKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	f.path = path
	return f, nil
}

func writeNewKeyFile(path string) error {
	var key [DataKeyLen]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(fh, "%s%s\n", keyFileHeader, base64.StdEncoding.EncodeToString(key[:]))
	if err == nil {
		err = fh.Sync() // a key lost to a crash would lose every record it wrapped
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// NewKeyLine returns a line to append to a key file to rotate it: a fresh random key.
func NewKeyLine() (string, error) {
	var key [DataKeyLen]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key[:]) + "\n", nil
}

func parseKeyFile(b []byte) (*File, error) {
	f := &File{keys: map[string][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(key) != DataKeyLen {
			return nil, fmt.Errorf("line %d is not a base64 %d-byte key", n, DataKeyLen)
		}
		id := KeyFingerprint(key)
		f.keys[id] = key
		f.current = id
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if f.current == "" {
		return nil, errors.New("holds no key")
	}
	return f, nil
}

// KeyFingerprint names a key file key: the first 8 bytes of its SHA-256, in hex. It says which
// key wrapped a data key without revealing anything usable about the key.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// Source is SourceFile.
func (f *File) Source() Source { return SourceFile }

// Describe names the file and its current key.
func (f *File) Describe() string {
	return fmt.Sprintf("key file %s (%d keys, current %s)", f.path, len(f.keys), f.current)
}

// Current returns the id of the key that wraps new data keys.
func (f *File) Current() string { return f.current }

// GenerateDataKey makes a random data key and wraps it with the file's current key.
func (f *File) GenerateDataKey(_ context.Context, _ string) ([]byte, Wrapped, error) {
	plain := make([]byte, DataKeyLen)
	if _, err := rand.Read(plain); err != nil {
		return nil, Wrapped{}, err
	}
	kek, err := NewAEAD(f.keys[f.current])
	if err != nil {
		return nil, Wrapped{}, err
	}
	nonce := make([]byte, kek.NonceSize(), kek.NonceSize()+DataKeyLen+kek.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, Wrapped{}, err
	}
	blob := kek.Seal(nonce, nonce, plain, wrapAAD(f.current))
	return plain, Wrapped{Source: SourceFile, KeyID: f.current, Blob: blob}, nil
}

// Decrypt unwraps w with the file's key of that id: NotFound when the file lacks it (a key
// removed too early, or another node's file), ValidationError when it does not open w.
func (f *File) Decrypt(_ context.Context, w Wrapped) ([]byte, error) {
	key := f.keys[w.KeyID]
	if key == nil {
		return nil, &Error{Code: NotFound, KeyID: w.KeyID, Err: fmt.Errorf("key file %s has no key %s", f.path, w.KeyID)}
	}
	kek, err := NewAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(w.Blob) < kek.NonceSize()+kek.Overhead() {
		return nil, &Error{Code: ValidationError, KeyID: w.KeyID, Err: errors.New("wrapped data key cut short")}
	}
	ns := kek.NonceSize()
	plain, err := kek.Open(nil, w.Blob[:ns], w.Blob[ns:], wrapAAD(w.KeyID))
	if err != nil {
		return nil, &Error{Code: ValidationError, KeyID: w.KeyID, Err: fmt.Errorf("key %s does not unwrap this data key: %w", w.KeyID, err)}
	}
	return plain, nil
}

// wrapAAD binds a wrapped data key to the key id stored with it.
func wrapAAD(id string) []byte { return []byte("kvsd data key\x00" + id) }
