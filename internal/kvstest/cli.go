package kvstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// AWSCLIPath is Debian's aws CLI v2; another `aws` earlier on PATH may be an old v1 shim.
const AWSCLIPath = "/usr/bin/aws"

// CLIError is a failed aws CLI run with what it printed on stderr.
type CLIError struct {
	Err    error
	Stderr string
}

func (e *CLIError) Error() string { return e.Err.Error() + ": " + e.Stderr }

// AWSCLI runs the real aws CLI against the server in a clean environment (working directory
// dir, AWS_CONFIG_FILE configFile, the server's credentials, AWS_CA_BUNDLE when it serves TLS)
// and returns its stdout.
func (s *Server) AWSCLI(t testing.TB, dir, configFile string, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(AWSCLIPath); err != nil {
		t.Fatalf("%s is missing: run `make setup` (apt-get install awscli)", AWSCLIPath)
	}
	if configFile == "" {
		configFile = filepath.Join(dir, "aws-config")
		if err := os.WriteFile(configFile, []byte("[default]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(AWSCLIPath, append(args, "--endpoint-url", s.URL, "--output", "json")...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=/usr/bin:/bin", "HOME=" + dir,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_DEFAULT_REGION=" + Region, "AWS_CONFIG_FILE=" + configFile,
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-credentials"), "AWS_PAGER=",
	}
	if s.CA != nil {
		cmd.Env = append(cmd.Env, "AWS_CA_BUNDLE="+s.CA.File)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &CLIError{Err: err, Stderr: stderr.String()}
	}
	return string(out), nil
}
