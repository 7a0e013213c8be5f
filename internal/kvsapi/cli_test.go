package kvsapi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/kvstest"
)

// runCLI runs the real aws CLI against srv.
func runCLI(t *testing.T, srv *kvstest.Server, dir string, configFile string, args ...string) (string, error) {
	t.Helper()
	return srv.AWSCLI(t, dir, configFile, args...)
}

// blogInput is update-image-generation-input.json from the AWS blog post on KVS images.
const blogInput = `{
  "StreamName": "TestStream",
  "ImageGenerationConfiguration": {
    "Status": "ENABLED",
    "DestinationConfig": {
      "DestinationRegion": "us-east-1",
      "Uri": "s3://bucket-name"
    },
    "SamplingInterval": 3000,
    "ImageSelectorType": "PRODUCER_TIMESTAMP",
    "Format": "JPEG",
    "FormatConfig": {
      "JPEGQuality": "80"
    },
    "WidthPixels": 320,
    "HeightPixels": 240
  }
}`

func TestAWSCLIBlogCommands(t *testing.T) {
	srv := kvstest.Start(t)
	dir := t.TempDir()
	plainConfig := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(plainConfig, []byte("[default]\n"), 0o600))

	out, err := runCLI(t, srv, dir, plainConfig, "kinesisvideo", "create-stream", "--stream-name", "TestStream", "--data-retention-in-hours", "12")
	require.NoError(t, err)
	require.Contains(t, out, `"StreamARN": "arn:aws:kinesisvideo:us-east-1:111122223333:stream/TestStream/`)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "update-image-generation-input.json"), []byte(blogInput), 0o600))
	_, err = runCLI(t, srv, dir, plainConfig, "kinesisvideo", "update-image-generation-configuration", "--cli-input-json", "file://update-image-generation-input.json")
	require.NoError(t, err)
	requireDescribed(t, srv, dir, plainConfig, 3000)

	// The same JSON at 200 ms: this CLI's model still says ≥ 3000 and refuses it client-side...
	fast := strings.Replace(blogInput, `"SamplingInterval": 3000`, `"SamplingInterval": 200`, 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "update-image-generation-input.json"), []byte(fast), 0o600))
	_, err = runCLI(t, srv, dir, plainConfig, "kinesisvideo", "update-image-generation-configuration", "--cli-input-json", "file://update-image-generation-input.json")
	require.Error(t, err)
	require.Contains(t, err.Error(), "SamplingInterval")

	// ...and with parameter_validation = false the server, which allows 200 ms as AWS now does, accepts it.
	lenient := filepath.Join(dir, "config-lenient")
	require.NoError(t, os.WriteFile(lenient, []byte("[default]\nparameter_validation = false\n"), 0o600))
	_, err = runCLI(t, srv, dir, lenient, "kinesisvideo", "update-image-generation-configuration", "--cli-input-json", "file://update-image-generation-input.json")
	require.NoError(t, err)
	requireDescribed(t, srv, dir, lenient, 200)

	// Below 200 the server itself refuses, with an AWS-shaped error the CLI prints.
	slow := strings.Replace(blogInput, `"SamplingInterval": 3000`, `"SamplingInterval": 100`, 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "update-image-generation-input.json"), []byte(slow), 0o600))
	_, err = runCLI(t, srv, dir, lenient, "kinesisvideo", "update-image-generation-configuration", "--cli-input-json", "file://update-image-generation-input.json")
	require.Error(t, err)
	require.Contains(t, err.Error(), "InvalidArgumentException")
	require.Contains(t, err.Error(), "at least 200 ms")
}

func requireDescribed(t *testing.T, srv *kvstest.Server, dir, config string, interval int) {
	t.Helper()
	out, err := runCLI(t, srv, dir, config, "kinesisvideo", "describe-image-generation-configuration", "--stream-name", "TestStream")
	require.NoError(t, err)
	var got struct {
		ImageGenerationConfiguration map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	var want struct {
		ImageGenerationConfiguration map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(blogInput), &want))
	want.ImageGenerationConfiguration["SamplingInterval"] = float64(interval)
	require.Equal(t, want.ImageGenerationConfiguration, got.ImageGenerationConfiguration)
}

func TestAWSCLIErrorsAndListing(t *testing.T) {
	srv := kvstest.Start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(cfg, []byte("[default]\n"), 0o600))
	_, err := runCLI(t, srv, dir, cfg, "kinesisvideo", "describe-stream", "--stream-name", "missing")
	require.Error(t, err)
	require.Contains(t, err.Error(), "ResourceNotFoundException")

	for _, n := range []string{"a1", "a2", "b1"} {
		_, err := runCLI(t, srv, dir, cfg, "kinesisvideo", "create-stream", "--stream-name", n)
		require.NoError(t, err)
	}
	// The CLI paginates on its own with a page size of 1.
	out, err := runCLI(t, srv, dir, cfg, "kinesisvideo", "list-streams", "--page-size", "1",
		"--stream-name-condition", "ComparisonOperator=BEGINS_WITH,ComparisonValue=a")
	require.NoError(t, err)
	var l struct{ StreamInfoList []struct{ StreamName string } }
	require.NoError(t, json.Unmarshal([]byte(out), &l))
	require.Len(t, l.StreamInfoList, 2)
	require.Equal(t, "a1", l.StreamInfoList[0].StreamName)
	require.Equal(t, "a2", l.StreamInfoList[1].StreamName)
}
