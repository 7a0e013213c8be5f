package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kvsd/kvsd/internal/catalog"
	"github.com/kvsd/kvsd/internal/diag"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/fragstore/disk"
	"github.com/kvsd/kvsd/internal/keys"
	"github.com/kvsd/kvsd/internal/stream"
)

// KeyConfig says where the key-encryption key of stored media comes from: a key file (the
// default, <data-dir>/kvsd.key, made on first start) or KMS. `kvsd serve` and `kvsd fsck`
// share it.
type KeyConfig struct {
	DataDir     string
	KeyFile     string // "" is <DataDir>/kvsd.key, created when missing
	KMS         bool   // wrap data keys with KMS instead of a key file
	KMSEndpoint string // a KMS-compatible endpoint; implies KMS
	KMSKey      string // KMS key of streams created without KmsKeyId; "" is alias/aws/kinesisvideo
}

func (c Config) keyConfig() KeyConfig {
	return KeyConfig{DataDir: c.DataDir, KeyFile: c.KeyFile, KMS: c.KMS, KMSEndpoint: c.KMSEndpoint, KMSKey: c.KMSKey}
}

// useKMS reports whether data keys are wrapped by KMS.
func (c KeyConfig) useKMS() bool { return c.KMS || c.KMSEndpoint != "" }

// OpenKEK returns the key-encryption key c names. create makes the default key file when it is
// missing (serve); fsck never does: a missing key file there is an error.
func OpenKEK(ctx context.Context, c KeyConfig, getenv func(string) string, create bool) (keys.KEK, error) {
	if c.useKMS() {
		creds, region, err := s3Credentials(ctx, getenv) // the standard AWS chain, as for S3
		if err != nil {
			return nil, fmt.Errorf("--kms: %w", err)
		}
		if region == "" {
			region = "us-east-1"
		}
		return keys.NewKMS(keys.KMSConfig{AWS: aws.Config{Region: region, Credentials: creds}, Endpoint: c.KMSEndpoint, DefaultKey: c.KMSKey}), nil
	}
	path := c.KeyFile
	if path == "" {
		path = filepath.Join(c.DataDir, keys.DefaultKeyFile)
	} else {
		create = false // a key file named by flag is the user's; never invent one in its place
	}
	if create {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if seg := keyFileMedia(filepath.Join(c.DataDir, "media")); seg != "" {
				// A new key would wrap new media while the old stays unreadable, and a key file
				// put back later would not read the new: stop, and let the user restore it.
				return nil, fmt.Errorf("key file %s is missing, but media encrypted with key file keys is stored (%s): "+
					"put the key file back (or name it with --key-file); without it that media cannot be read", path, seg)
			}
		}
	}
	return keys.LoadFile(path, create)
}

// keyFileMedia returns a segment under mediaDir whose data key a key file wrapped, or "".
func keyFileMedia(mediaDir string) string {
	segs, _ := filepath.Glob(filepath.Join(mediaDir, "*", "*.seg"))
	for _, seg := range segs {
		if info, err := disk.ReadSegmentInfo(seg); err == nil && info.DataKey != nil && info.DataKey.Source == keys.SourceFile {
			return seg
		}
	}
	return ""
}

// atRest is the encryption of the server's stored media: the KEK, the data key ring, and what
// the streams API and doctor need to know of them.
type atRest struct {
	kek     keys.KEK
	ring    *keys.Ring
	region  string
	account string
	kms     bool
	kmsKey  string // the KMS key of streams without their own; "" for a key file
}

// newAtRest opens the KEK and the ring; the ring finds each stream's KMS key in the catalog.
func newAtRest(ctx context.Context, cfg Config, getenv func(string) string, streams stream.Store) (*atRest, error) {
	kek, err := OpenKEK(ctx, cfg.keyConfig(), getenv, true)
	if err != nil {
		return nil, fmt.Errorf("media encryption key: %w", err)
	}
	a := &atRest{kek: kek, region: cfg.Region, account: cfg.AccountID}
	if k, ok := kek.(*keys.KMS); ok {
		a.kms, a.kmsKey = true, k.DefaultKey()
	}
	a.ring = keys.NewRing(kek, func(ctx context.Context, k catalog.Key) (string, error) {
		if !a.kms {
			return "", nil // the key file wraps with its current key, whatever the stream says
		}
		st, err := streams.GetStream(ctx, k.Name)
		if errors.Is(err, stream.ErrNotFound) {
			return "", nil // deleted meanwhile: nothing of it will be read
		}
		if err != nil {
			return "", err
		}
		return a.kmsKeyOf(st.KmsKeyID), nil
	})
	return a, nil
}

// defaultKmsKeyID is what DescribeStream reports for streams created without KmsKeyId: KVS's
// AWS-managed key, or with KMS the --kms-key as an ARN.
func (a *atRest) defaultKmsKeyID() string {
	if !a.kms || a.kmsKey == keys.DefaultKMSKey {
		return stream.DefaultKmsKeyARN(a.region, a.account)
	}
	return kmsARN(a.region, a.account, a.kmsKey)
}

// kmsARN writes a KMS key id, alias or ARN as an ARN.
func kmsARN(region, account, id string) string {
	switch {
	case strings.HasPrefix(id, "arn:"):
		return id
	case strings.HasPrefix(id, "alias/"):
		return fmt.Sprintf("arn:aws:kms:%s:%s:%s", region, account, id)
	}
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, account, id)
}

// kmsKeyOf is the KMS key for a stream's KmsKeyId: its own, or "" (the KEK's default) for the
// default one.
func (a *atRest) kmsKeyOf(kmsKeyID string) string {
	if kmsKeyID == a.defaultKmsKeyID() || kmsKeyID == stream.DefaultKmsKeyARN(a.region, a.account) || kmsKeyID == keys.DefaultKMSKey {
		return ""
	}
	return kmsKeyID
}

// checkKmsKey is CreateStream's check of a KmsKeyId: with KMS, that KMS makes a data key under
// it; with a key file, only the default key is the truth (the key file encrypts everything).
func (a *atRest) checkKmsKey(ctx context.Context, id string) error {
	if !a.kms {
		if a.kmsKeyOf(id) == "" {
			return nil
		}
		return errors.New("kvsd encrypts media with its key file; a KmsKeyId selects a KMS key only when kvsd runs with --kms")
	}
	_, _, err := a.kek.GenerateDataKey(ctx, a.kmsKeyOf(id))
	return err
}

// findings are doctor's word on the stream's encryption at rest: which key protects its media,
// and whether it can be used now.
func (a *atRest) findings(ctx context.Context, st *stream.Stream) []diag.Finding {
	var r diag.Report
	id := a.kmsKeyOf(st.KmsKeyID)
	if _, _, err := a.kek.GenerateDataKey(ctx, id); err != nil {
		code, _ := keys.CodeOf(err)
		r.Findings = append(r.Findings, diag.Finding{Level: diag.Error, Code: "MEDIA_KEY_" + code.String(),
			Message: fmt.Sprintf("the key that encrypts this stream's media cannot be used (%v): PutMedia answers ERROR %d %s", err, int(code), code),
			Fix:     "Check " + a.kek.Describe() + ": the key file kvsd was started with, or KMS reachable and the key enabled for kvsd's AWS identity (kms:GenerateDataKey, kms:Decrypt). See README, Encryption at rest."})
		return r.Findings
	}
	what := a.kek.Describe()
	if a.kms {
		what += ", key " + st.KmsKeyID
	}
	r.Findings = append(r.Findings, diag.Finding{Level: diag.OK, Code: "MEDIA_ENCRYPTED",
		Message: "media is encrypted at rest (AES-256-GCM, a data key per stream) with data keys wrapped by " + what})
	return r.Findings
}

// storageDoctor is doctor's "storage" report: the stream's encryption at rest (nil atRest: a
// kvsd_plaintext build) and the fragments the store could not serve. It implements diag.Source.
type storageDoctor struct {
	store  *fragstore.Store
	atRest *atRest
}

func (d storageDoctor) Diagnose(ctx context.Context, st *stream.Stream) diag.Report {
	r := diag.Report{Component: "storage", Findings: d.store.Damage(fragstore.KeyOf(st))}
	if d.atRest != nil {
		r.Findings = append(r.Findings, d.atRest.findings(ctx, st)...)
	}
	return r
}
