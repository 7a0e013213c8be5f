package app

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func noEnv(string) string { return "" }

func TestGeneratedCredentials(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Region: "us-east-1"}
	var out bytes.Buffer
	keys, err := loadCredentials(cfg, noEnv, &out)
	require.NoError(t, err)
	require.Len(t, keys, 1)

	path := filepath.Join(dir, "credentials")
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the secret is private to kvsd's user")

	m := regexp.MustCompile(`export AWS_ACCESS_KEY_ID=(AKIA[A-Z2-7]{16})\n\s+export AWS_SECRET_ACCESS_KEY=(\S{40})\n`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "prints the exports a client needs: %s", out.String())
	require.Equal(t, m[2], keys[m[1]].SecretAccessKey)

	// The next start reuses the pair and does not print the secret again.
	out.Reset()
	again, err := loadCredentials(cfg, noEnv, &out)
	require.NoError(t, err)
	require.Equal(t, keys, again)
	require.NotContains(t, out.String(), m[2])

	// Another data dir gets another random pair: no built-in default.
	other, err := loadCredentials(Config{DataDir: t.TempDir(), Region: "us-east-1"}, noEnv, &out)
	require.NoError(t, err)
	require.NotEqual(t, keys, other)
}

func TestCredentialsFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "creds")
	require.NoError(t, os.WriteFile(file, []byte("# cameras\n[cam]\naws_access_key_id = AKIACAM\naws_secret_access_key = camsecret\n\n[ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=opssecret\naws_session_token=tok\n"), 0o600))
	env := map[string]string{"KVSD_ACCESS_KEY_ID": "AKIAENV", "KVSD_SECRET_ACCESS_KEY": "envsecret"}
	keys, err := loadCredentials(Config{DataDir: dir, CredentialsFile: file}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err)
	require.Len(t, keys, 3)
	require.Equal(t, "camsecret", keys["AKIACAM"].SecretAccessKey)
	require.Equal(t, "tok", keys["AKIAOPS"].SessionToken)
	require.Equal(t, "envsecret", keys["AKIAENV"].SecretAccessKey)
	_, err = os.Stat(filepath.Join(dir, "credentials"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing generated when credentials are configured")

	_, err = loadCredentials(Config{DataDir: dir}, func(k string) string { return map[string]string{"KVSD_ACCESS_KEY_ID": "x"}[k] }, &bytes.Buffer{})
	require.ErrorContains(t, err, "set both")

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("[p]\naws_access_key_id = ONLYID\n"), 0o600))
	_, err = loadCredentials(Config{DataDir: dir, CredentialsFile: bad}, noEnv, &bytes.Buffer{})
	require.ErrorContains(t, err, "needs aws_access_key_id and aws_secret_access_key")
	_, err = loadCredentials(Config{DataDir: dir, CredentialsFile: filepath.Join(dir, "missing")}, noEnv, &bytes.Buffer{})
	require.Error(t, err)
}
