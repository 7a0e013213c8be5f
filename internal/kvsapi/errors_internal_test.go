package kvsapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/awsapi"
	"github.com/kvsd/kvsd/internal/fragstore"
	"github.com/kvsd/kvsd/internal/keys"
)

// Stored media that is damaged, or whose key cannot be used, is a 500 that says which fragment
// and why (HLS, DASH and clips fail this way before their body), not an anonymous failure.
func TestStoredMediaErrorsAreNamed(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("media of fragment 917: %w: data checksum mismatch in record 3", fragstore.ErrCorrupt),
		fmt.Errorf("media of fragment 917: %w", &keys.Error{Code: keys.Disabled, KeyID: "arn:k", Err: errors.New("disabled")}),
	} {
		ae := toAPIError(err)
		require.Equal(t, http.StatusInternalServerError, ae.Status)
		require.Equal(t, awsapi.CodeInternalFailure, ae.Code)
		require.Contains(t, ae.Message, "fragment 917")
	}
}
