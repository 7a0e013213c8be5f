package kvstest

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/cli"
)

// userAWSEnv gives the process the AWS environment of a user holding the test credentials
// (secret replaces the secret key when set) and nothing else: the AWS configuration loader
// reads the process environment.
func userAWSEnv(t testing.TB, secret string) {
	t.Helper()
	dir := t.TempDir()
	if secret == "" {
		secret = SecretAccessKey
	}
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
}

// Put runs `kvsd put` as a user would against the kvsd at url, with the test credentials in
// the AWS environment (secret overrides the secret key when set), stdin, and Stderr taken for
// a terminal when tty is set. It returns the output and the exit status.
func Put(t testing.TB, url, secret string, stdin io.Reader, tty bool, args ...string) (string, int) {
	t.Helper()
	userAWSEnv(t, secret)
	// AWS_CA_BUNDLE comes from the process environment, where TLS tests set it (with
	// t.Setenv) for the AWS configuration loader too.
	env := map[string]string{"AWS_ENDPOINT_URL": url, "AWS_CA_BUNDLE": os.Getenv("AWS_CA_BUNDLE")}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := cli.Put(ctx, args, cli.PutEnv{Getenv: func(k string) string { return env[k] }, Stdin: stdin, Stdout: &out, Stderr: &out, Terminal: tty})
	return out.String(), code
}

// Doctor runs `kvsd doctor STREAM` as a user would against the kvsd at url, with the test
// credentials in the AWS environment. It returns stdout and stderr, and the exit status.
func Doctor(t testing.TB, url, stream string) (string, int) {
	t.Helper()
	userAWSEnv(t, "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	var out, errs bytes.Buffer
	code := cli.Main(context.Background(), []string{"doctor", stream, "--endpoint-url", url}, &out, &errs)
	return out.String() + errs.String(), code
}
