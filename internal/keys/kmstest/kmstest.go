// Package kmstest is a KMS-compatible endpoint for tests: GenerateDataKey and Decrypt over
// AWS's JSON 1.1 protocol, every request's SigV4 signature verified (internal/sigv4) before it
// is answered. No KMS server can be installed here; this one keeps real keys (AES-256-GCM) and
// answers KMS's errors (NotFoundException, DisabledException, IncorrectKeyException, ...).
package kmstest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kvsd/kvsd/internal/sigv4"
)

// The credentials and region the server accepts.
const (
	Region    = "us-east-1"
	Account   = "111122223333"
	AccessKey = "AKIDKMSTEST00000"
	SecretKey = "kmstest/Secret+Key0123456789abcdefEXAMPLE"
)

// Server is the endpoint. URL is its base URL.
type Server struct {
	URL string

	srv      *httptest.Server
	verifier *sigv4.Verifier
	signed   atomic.Int64 // requests whose signature verified
	refused  atomic.Int64 // requests refused for their signature

	mu      sync.Mutex
	keys    map[string]*key   // key ARN → key
	aliases map[string]string // alias name (alias/…) → key ARN
	down    bool
}

type key struct {
	aead     cipher.AEAD
	disabled bool
}

// New starts a server with one key behind KVS's default alias alias/aws/kinesisvideo; Close
// runs at the test's end.
func New(t testing.TB) *Server {
	s := &Server{keys: map[string]*key{}, aliases: map[string]string{}}
	s.verifier = &sigv4.Verifier{Region: Region, Service: "kms", Lookup: func(id string) (sigv4.Credential, bool) {
		return sigv4.Credential{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}, id == AccessKey
	}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	s.SetAlias("alias/aws/kinesisvideo", s.CreateKey())
	return s
}

// AWS returns an aws.Config that signs for this server.
func (s *Server) AWS() aws.Config {
	return aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")}
}

// CreateKey makes a new key and returns its ARN.
func (s *Server) CreateKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	blk, _ := aes.NewCipher(b[:])
	aead, _ := cipher.NewGCM(blk)
	sum := sha256.Sum256(b[:])
	arn := fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", Region, Account, hex.EncodeToString(sum[:16]))
	s.mu.Lock()
	s.keys[arn] = &key{aead: aead}
	s.mu.Unlock()
	return arn
}

// SetAlias points alias (alias/…) at the key arn, as KMS's UpdateAlias does.
func (s *Server) SetAlias(alias, arn string) {
	s.mu.Lock()
	s.aliases[alias] = arn
	s.mu.Unlock()
}

// SetDisabled disables or enables a key.
func (s *Server) SetDisabled(arn string, disabled bool) {
	s.mu.Lock()
	s.keys[arn].disabled = disabled
	s.mu.Unlock()
}

// SetDown makes every call fail with KMSInternalException (500), or work again.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Signed is the number of requests answered after their signature verified.
func (s *Server) Signed() int64 { return s.signed.Load() }

// Refused is the number of requests refused for their signature.
func (s *Server) Refused() int64 { return s.refused.Load() }

// resolve finds the ARN of a KeyId: key id, key ARN, alias name or alias ARN.
func (s *Server) resolve(id string) (string, *key) {
	if i := strings.Index(id, ":alias/"); strings.HasPrefix(id, "arn:") && i >= 0 {
		id = id[i+1:]
	}
	if strings.HasPrefix(id, "alias/") {
		id = s.aliases[id]
	}
	if !strings.HasPrefix(id, "arn:") {
		id = fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", Region, Account, id)
	}
	return id, s.keys[id]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	sum := sha256.Sum256(body)
	if _, err := s.verifier.Verify(r, hex.EncodeToString(sum[:])); err != nil {
		s.refused.Add(1)
		fail(w, http.StatusBadRequest, "InvalidSignatureException", err.Error())
		return
	}
	s.signed.Add(1)
	var in struct {
		KeyId          string
		KeySpec        string
		NumberOfBytes  int
		CiphertextBlob []byte
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		fail(w, http.StatusInternalServerError, "KMSInternalException", "the service is down")
		return
	}
	switch op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService."); op {
	case "GenerateDataKey":
		s.generate(w, in.KeyId, in.KeySpec)
	case "Decrypt":
		s.decrypt(w, in.KeyId, in.CiphertextBlob)
	default:
		fail(w, http.StatusBadRequest, "UnknownOperationException", op)
	}
}

func (s *Server) generate(w http.ResponseWriter, keyID, spec string) {
	arn, k := s.resolve(keyID)
	switch {
	case k == nil:
		fail(w, http.StatusBadRequest, "NotFoundException", "Key '"+keyID+"' does not exist")
		return
	case k.disabled:
		fail(w, http.StatusBadRequest, "DisabledException", arn+" is disabled.")
		return
	case spec != "AES_256":
		fail(w, http.StatusBadRequest, "ValidationException", "KeySpec must be AES_256 here")
		return
	}
	plain := make([]byte, 32)
	_, _ = rand.Read(plain)
	answer(w, map[string]any{"KeyId": arn, "Plaintext": plain, "CiphertextBlob": seal(k, arn, plain)})
}

// seal makes a ciphertext blob that names its key, as KMS's do: ARN length, ARN, nonce, sealed.
func seal(k *key, arn string, plain []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(arn)))
	b = append(b, arn...)
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	b = append(b, nonce...)
	return k.aead.Seal(b, nonce, plain, []byte(arn))
}

func (s *Server) decrypt(w http.ResponseWriter, keyID string, blob []byte) {
	if len(blob) < 2 || len(blob) < 2+int(binary.BigEndian.Uint16(blob)) {
		fail(w, http.StatusBadRequest, "InvalidCiphertextException", "")
		return
	}
	n := int(binary.BigEndian.Uint16(blob))
	arn := string(blob[2 : 2+n])
	k := s.keys[arn]
	if keyID != "" {
		if want, _ := s.resolve(keyID); want != arn {
			fail(w, http.StatusBadRequest, "IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.")
			return
		}
	}
	switch {
	case k == nil:
		fail(w, http.StatusBadRequest, "NotFoundException", "Key '"+arn+"' does not exist")
		return
	case k.disabled:
		fail(w, http.StatusBadRequest, "DisabledException", arn+" is disabled.")
		return
	}
	rest := blob[2+n:]
	ns := k.aead.NonceSize()
	if len(rest) < ns {
		fail(w, http.StatusBadRequest, "InvalidCiphertextException", "")
		return
	}
	plain, err := k.aead.Open(nil, rest[:ns], rest[ns:], []byte(arn))
	if err != nil {
		fail(w, http.StatusBadRequest, "InvalidCiphertextException", "")
		return
	}
	answer(w, map[string]any{"KeyId": arn, "Plaintext": plain, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}
