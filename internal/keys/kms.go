package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// DefaultKMSKey is the key a stream gets when CreateStream names none: KVS's AWS-managed key.
const DefaultKMSKey = "alias/aws/kinesisvideo"

// KMS is a KEK in AWS KMS or a KMS-compatible service: data keys come from GenerateDataKey and
// are unwrapped by Decrypt.
type KMS struct {
	client     *kms.Client
	endpoint   string
	defaultKey string
}

var _ KEK = (*KMS)(nil)

// KMSConfig configures NewKMS.
type KMSConfig struct {
	AWS        aws.Config // region and credentials (the AWS credential chain, config.LoadDefaultConfig)
	Endpoint   string     // a KMS-compatible endpoint URL; "" is AWS's for the region
	DefaultKey string     // key of streams created without KmsKeyId; "" is DefaultKMSKey
}

// NewKMS returns the KMS KEK.
func NewKMS(cfg KMSConfig) *KMS {
	k := &KMS{endpoint: cfg.Endpoint, defaultKey: cfg.DefaultKey}
	if k.defaultKey == "" {
		k.defaultKey = DefaultKMSKey
	}
	k.client = kms.NewFromConfig(cfg.AWS, func(o *kms.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return k
}

// Source is SourceKMS.
func (k *KMS) Source() Source { return SourceKMS }

// Describe names the endpoint and the default key.
func (k *KMS) Describe() string {
	ep := k.endpoint
	if ep == "" {
		ep = "AWS"
	}
	return fmt.Sprintf("KMS at %s (default key %s)", ep, k.defaultKey)
}

// DefaultKey is the key of streams created without a KmsKeyId.
func (k *KMS) DefaultKey() string { return k.defaultKey }

// GenerateDataKey asks KMS for an AES-256 data key under keyID ("" is the default key). The
// wrapped key records the key ARN KMS answers with, not an alias: an alias moved to a new key
// (rotation) then still decrypts the older data keys with the key that made them.
func (k *KMS) GenerateDataKey(ctx context.Context, keyID string) ([]byte, Wrapped, error) {
	if keyID == "" {
		keyID = k.defaultKey
	}
	out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: types.DataKeySpecAes256})
	if err != nil {
		return nil, Wrapped{}, kmsError(keyID, "GenerateDataKey", err)
	}
	if len(out.Plaintext) != DataKeyLen || len(out.CiphertextBlob) == 0 {
		return nil, Wrapped{}, &Error{Code: ValidationError, KeyID: keyID, Err: fmt.Errorf("GenerateDataKey answered a %d-byte key", len(out.Plaintext))}
	}
	used := keyID
	if out.KeyId != nil && *out.KeyId != "" {
		used = *out.KeyId
	}
	return out.Plaintext, Wrapped{Source: SourceKMS, KeyID: used, Blob: out.CiphertextBlob}, nil
}

// Decrypt asks KMS to unwrap w under the key that made it.
func (k *KMS) Decrypt(ctx context.Context, w Wrapped) ([]byte, error) {
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: w.Blob, KeyId: aws.String(w.KeyID)})
	if err != nil {
		return nil, kmsError(w.KeyID, "Decrypt", err)
	}
	if len(out.Plaintext) != DataKeyLen {
		return nil, &Error{Code: ValidationError, KeyID: w.KeyID, Err: fmt.Errorf("Decrypt answered a %d-byte key", len(out.Plaintext))}
	}
	return out.Plaintext, nil
}

// kmsError maps a KMS failure to KVS's code for it.
func kmsError(keyID, op string, err error) error {
	code := Unavailable // the service could not be reached or failed: try again later
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "DisabledException":
			code = Disabled
		case "NotFoundException":
			code = NotFound
		case "KMSInvalidStateException":
			code = InvalidState
		case "InvalidKeyUsageException":
			code = InvalidUsage
		case "KeyUnavailableException", "DependencyTimeoutException", "KMSInternalException":
			code = Unavailable
		case "InvalidCiphertextException", "IncorrectKeyException", "ValidationException", "InvalidGrantTokenException":
			code = ValidationError
		default: // AccessDeniedException, and signature or credential errors
			code = AccessDenied
		}
	}
	return &Error{Code: code, KeyID: keyID, Err: fmt.Errorf("KMS %s: %w", op, err)}
}
