package keys_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/keys/kmstest"
)

var cam = catalog.Key{Name: "cam", CreatedMs: 1700000000000}

// seal encrypts a record with a stream's current data key, as the disk media does.
func seal(t *testing.T, r *keys.Ring, msg []byte) (keys.Wrapped, []byte, []byte) {
	t.Helper()
	dk, err := r.DataKey(context.Background(), cam)
	require.NoError(t, err)
	nonce := make([]byte, dk.AEAD.NonceSize())
	nonce[0] = 7
	return dk.Wrapped, nonce, dk.AEAD.Seal(nil, nonce, msg, nil)
}

func open(t *testing.T, r *keys.Ring, w keys.Wrapped, nonce, ct []byte) ([]byte, error) {
	t.Helper()
	aead, err := r.Open(context.Background(), w)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, nonce, ct, nil)
}

func TestKeyFileCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), keys.DefaultKeyFile)
	f, err := keys.LoadFile(path, true)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	again, err := keys.LoadFile(path, true)
	require.NoError(t, err)
	require.Equal(t, f.Current(), again.Current(), "a second start reuses the key, never replaces it")

	_, err = keys.LoadFile(filepath.Join(t.TempDir(), "none"), false)
	require.ErrorIs(t, err, os.ErrNotExist, "a key file given by flag is never invented")
}

func TestKeyFileRoundTripAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), keys.DefaultKeyFile)
	f1, err := keys.LoadFile(path, true)
	require.NoError(t, err)
	msg := []byte("the producer's frames")
	w1, n1, ct1 := seal(t, keys.NewRing(f1, nil), msg)
	require.Equal(t, keys.SourceFile, w1.Source)
	require.Equal(t, f1.Current(), w1.KeyID)
	require.NotContains(t, string(w1.Blob), "frames")

	// Rotation: append a key; a restarted kvsd wraps new data keys with it and still reads
	// what the old one wrapped.
	line, err := keys.NewKeyLine()
	require.NoError(t, err)
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fh.WriteString(line)
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	f2, err := keys.LoadFile(path, false)
	require.NoError(t, err)
	require.NotEqual(t, f1.Current(), f2.Current())
	r2 := keys.NewRing(f2, nil)
	w2, n2, ct2 := seal(t, r2, msg)
	require.Equal(t, f2.Current(), w2.KeyID)
	got, err := open(t, r2, w1, n1, ct1)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	got, err = open(t, keys.NewRing(f2, nil), w2, n2, ct2)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

func TestKeyFileWrongOrMissingKey(t *testing.T) {
	dir := t.TempDir()
	f, err := keys.LoadFile(filepath.Join(dir, "a.key"), true)
	require.NoError(t, err)
	w, nonce, ct := seal(t, keys.NewRing(f, nil), []byte("media"))

	// Another file: the key that wrapped the data key is not in it.
	other, err := keys.LoadFile(filepath.Join(dir, "b.key"), true)
	require.NoError(t, err)
	_, err = open(t, keys.NewRing(other, nil), w, nonce, ct)
	code, ok := keys.CodeOf(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, keys.NotFound, code)
	require.Equal(t, "KMS_KEY_NOT_FOUND", code.String())

	// The right id with damaged material (someone edited the wrapped key): validation error.
	bad := w
	bad.Blob = bytes.Clone(w.Blob)
	bad.Blob[len(bad.Blob)-1] ^= 1
	_, err = open(t, keys.NewRing(f, nil), bad, nonce, ct)
	code, _ = keys.CodeOf(err)
	require.Equal(t, keys.ValidationError, code)

	// Nothing was lost: the right key still opens the record.
	got, err := open(t, keys.NewRing(f, nil), w, nonce, ct)
	require.NoError(t, err)
	require.Equal(t, []byte("media"), got)

	// A file that is not a key file is refused, not replaced.
	junk := filepath.Join(dir, "junk.key")
	require.NoError(t, os.WriteFile(junk, []byte("not a key\n"), 0o600))
	_, err = keys.LoadFile(junk, true)
	require.ErrorContains(t, err, "line 1")
	b, _ := os.ReadFile(junk)
	require.Equal(t, "not a key\n", string(b))
}

func TestKMSGenerateAndDecryptSigned(t *testing.T) {
	srv := kmstest.New(t)
	kek := keys.NewKMS(keys.KMSConfig{AWS: srv.AWS(), Endpoint: srv.URL})
	r := keys.NewRing(kek, nil)
	msg := []byte("the producer's frames")
	w, nonce, ct := seal(t, r, msg)
	require.Equal(t, keys.SourceKMS, w.Source)
	require.Contains(t, w.KeyID, ":key/", "the wrapped key names the key ARN, not the alias")

	// A fresh ring (a restart) asks KMS to Decrypt.
	before := srv.Signed()
	got, err := open(t, keys.NewRing(kek, nil), w, nonce, ct)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	require.Equal(t, before+1, srv.Signed())
	require.Zero(t, srv.Refused())

	// Rotation: the alias moves to a new key; new data keys use it, old ones still decrypt.
	newARN := srv.CreateKey()
	srv.SetAlias(keys.DefaultKMSKey, newARN)
	r2 := keys.NewRing(kek, nil)
	w2, _, _ := seal(t, r2, msg)
	require.Equal(t, newARN, w2.KeyID)
	got, err = open(t, r2, w, nonce, ct)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

func TestKMSSignatureIsVerified(t *testing.T) {
	srv := kmstest.New(t)
	wrong := aws.Config{Region: kmstest.Region, Credentials: credentials.NewStaticCredentialsProvider(kmstest.AccessKey, "not the secret", "")}
	kek := keys.NewKMS(keys.KMSConfig{AWS: wrong, Endpoint: srv.URL})
	_, _, err := kek.GenerateDataKey(context.Background(), "")
	code, ok := keys.CodeOf(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, keys.AccessDenied, code)
	require.Equal(t, int64(1), srv.Refused())
	require.Zero(t, srv.Signed())
}

func TestKMSErrors(t *testing.T) {
	srv := kmstest.New(t)
	kek := keys.NewKMS(keys.KMSConfig{AWS: srv.AWS(), Endpoint: srv.URL})
	ctx := context.Background()
	codeOf := func(err error) keys.Code {
		t.Helper()
		c, ok := keys.CodeOf(err)
		require.True(t, ok, "%v", err)
		return c
	}

	_, _, err := kek.GenerateDataKey(ctx, "alias/none")
	require.Equal(t, keys.NotFound, codeOf(err))

	arn := srv.CreateKey()
	r := keys.NewRing(kek, func(context.Context, catalog.Key) (string, error) { return arn, nil })
	w, nonce, ct := seal(t, r, []byte("media"))
	require.Equal(t, arn, w.KeyID, "the stream's own key")

	srv.SetDisabled(arn, true)
	_, _, err = kek.GenerateDataKey(ctx, arn)
	require.Equal(t, keys.Disabled, codeOf(err))
	_, err = open(t, keys.NewRing(kek, nil), w, nonce, ct)
	require.Equal(t, keys.Disabled, codeOf(err))

	srv.SetDisabled(arn, false)
	srv.SetDown(true)
	_, err = open(t, keys.NewRing(kek, nil), w, nonce, ct)
	require.Equal(t, keys.Unavailable, codeOf(err))

	// Nothing was lost: once KMS is back the record opens.
	srv.SetDown(false)
	got, err := open(t, keys.NewRing(kek, nil), w, nonce, ct)
	require.NoError(t, err)
	require.Equal(t, []byte("media"), got)

	// A key file's data key handed to KMS is refused before any call.
	f, err := keys.LoadFile(filepath.Join(t.TempDir(), "k"), true)
	require.NoError(t, err)
	fw, _, _ := seal(t, keys.NewRing(f, nil), []byte("x"))
	_, err = keys.NewRing(kek, nil).Open(ctx, fw)
	require.Equal(t, keys.NotFound, codeOf(err))
}
