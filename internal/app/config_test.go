package app

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServeFlagsEnvAndDefaults(t *testing.T) {
	env := map[string]string{"KVSD_REGION": "eu-west-1", "KVSD_DATA_DIR": "/var/lib/kvsd", "KVSD_LISTEN": "0.0.0.0:9000"}
	getenv := func(k string) string { return env[k] }

	c, err := ParseServeFlags(nil, func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, Config{Listen: DefaultListen, DataDir: "./data", Region: "us-east-1", AccountID: DefaultAccountID,
		LogLevel: "info", LogFormat: "text", ReadTimeout: DefaultReadTimeout, WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout,
		MaxConnsPerClient: DefaultMaxConnsPerClient, MaxConns: DefaultMaxConns, MaxClockSkew: DefaultMaxClockSkew, KMSKey: "alias/aws/kinesisvideo"}, c)

	c, err = ParseServeFlags(nil, getenv)
	require.NoError(t, err)
	require.Equal(t, "eu-west-1", c.Region)
	require.Equal(t, "/var/lib/kvsd", c.DataDir)

	c, err = ParseServeFlags([]string{"--region", "ap-southeast-2", "--public-url", "https://kvs.example.com/"}, getenv)
	require.NoError(t, err)
	require.Equal(t, "ap-southeast-2", c.Region, "a flag wins over its variable")
	require.Equal(t, "0.0.0.0:9000", c.Listen)

	c, err = ParseServeFlags([]string{"--kms-endpoint", "http://127.0.0.1:8080", "--kms-key", "alias/cams"}, getenv)
	require.NoError(t, err)
	require.Equal(t, KeyConfig{DataDir: "/var/lib/kvsd", KMSEndpoint: "http://127.0.0.1:8080", KMSKey: "alias/cams"}, c.keyConfig())
	require.True(t, c.keyConfig().useKMS(), "an endpoint implies KMS")
	_, err = ParseServeFlags([]string{"--kms", "--key-file", "/etc/kvsd.key"}, getenv)
	require.ErrorContains(t, err, "exclude each other")
	_, err = ParseServeFlags([]string{"--kms-endpoint", "kms.local"}, getenv)
	require.ErrorContains(t, err, "--kms-endpoint")
}

// The guards against broken and hostile clients take flags and KVSD_ variables; 0 lifts a bound.
func TestServeFlagsClientGuards(t *testing.T) {
	env := map[string]string{"KVSD_READ_TIMEOUT": "5s", "KVSD_MAX_CONNS_PER_CLIENT": "0", "KVSD_MAX_CLOCK_SKEW": "720h",
		"KVSD_DENY_PRIVATE_DESTINATIONS": "true"}
	c, err := ParseServeFlags([]string{"--max-conns", "100", "--idle-timeout", "30s"}, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, c.ReadTimeout)
	require.Equal(t, 30*time.Second, c.IdleTimeout)
	require.Equal(t, 0, c.MaxConnsPerClient)
	require.Equal(t, 100, c.MaxConns)
	require.Equal(t, 720*time.Hour, c.MaxClockSkew)
	require.True(t, c.DenyPrivateDestinations)

	env = map[string]string{"KVSD_READ_TIMEOUT": "soon", "KVSD_MAX_CONNS": "many"}
	_, err = ParseServeFlags(nil, func(k string) string { return env[k] })
	require.ErrorContains(t, err, `KVSD_READ_TIMEOUT="soon"`)
	require.ErrorContains(t, err, `KVSD_MAX_CONNS="many"`)
	_, err = ParseServeFlags([]string{"--max-conns", "-1"}, func(string) string { return "" })
	require.ErrorContains(t, err, "must not be negative")
}

func TestServeFlagErrorsAllAtOnce(t *testing.T) {
	_, err := ParseServeFlags([]string{"--listen", "nohost", "--region", "Mars", "--account-id", "12", "--public-url", "ftp://x", "--log-format", "xml"},
		func(string) string { return "" })
	require.Error(t, err)
	for _, want := range []string{"--listen", "--region \"Mars\"", "--account-id \"12\" must be 12 digits", "--public-url", "--log-format"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = ParseServeFlags([]string{"extra"}, func(string) string { return "" })
	require.ErrorContains(t, err, "unexpected arguments")
}

func TestServeFlagsTLS(t *testing.T) {
	none := func(string) string { return "" }
	c, err := ParseServeFlags([]string{"--tls-cert", "/etc/kvsd/cert.pem", "--tls-key", "/etc/kvsd/key.pem"}, none)
	require.NoError(t, err)
	require.Equal(t, "/etc/kvsd/cert.pem", c.TLSCert)
	require.Equal(t, "/etc/kvsd/key.pem", c.TLSKey)

	env := map[string]string{"KVSD_TLS_CERT": "/run/secrets/cert.pem", "KVSD_TLS_KEY": "/run/secrets/key.pem"}
	c, err = ParseServeFlags(nil, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "/run/secrets/cert.pem", c.TLSCert)
	require.Equal(t, "/run/secrets/key.pem", c.TLSKey)

	for _, args := range [][]string{{"--tls-cert", "cert.pem"}, {"--tls-key", "key.pem"}} {
		_, err = ParseServeFlags(args, none)
		require.ErrorContains(t, err, "--tls-cert and --tls-key go together", args)
	}
	env = map[string]string{"KVSD_TLS_CERT": "cert.pem"}
	_, err = ParseServeFlags([]string{"--region", "Mars"}, func(k string) string { return env[k] })
	require.ErrorContains(t, err, "--tls-cert and --tls-key go together", "a variable counts like its flag")
	require.ErrorContains(t, err, "--region", "and is reported with the other problems")
}

func TestPublicURL(t *testing.T) {
	addr := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	require.Equal(t, "http://127.0.0.1:4580", publicURL("", addr("127.0.0.1:4580"), false))
	require.Equal(t, "https://127.0.0.1:4580", publicURL("", addr("127.0.0.1:4580"), true), "with --tls-cert")
	require.Equal(t, "http://127.0.0.1:4580", publicURL("", addr("0.0.0.0:4580"), false), "a wildcard bind answers loopback")
	require.Equal(t, "https://kvs.example.com", publicURL("https://kvs.example.com/", addr("0.0.0.0:4580"), false))
	require.True(t, strings.HasPrefix(publicURL("", addr("[::1]:4580"), false), "http://[::1]:"))
}

func TestServeFlagMaxDiskUsage(t *testing.T) {
	c, err := ParseServeFlags(nil, func(k string) string { return map[string]string{"KVSD_MAX_DISK_USAGE": "90%"}[k] })
	require.NoError(t, err)
	require.Equal(t, "90%", c.MaxDiskUsage)
	c, err = ParseServeFlags([]string{"--max-disk-usage", "500GB"}, func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, "500GB", c.MaxDiskUsage)
	_, err = ParseServeFlags([]string{"--max-disk-usage", "lots"}, func(string) string { return "" })
	require.ErrorContains(t, err, `--max-disk-usage "lots": want a size such as 500GB, 20MiB or 90%`)
}

func TestServeFlagsCatalogAndMedia(t *testing.T) {
	env := map[string]string{"KVSD_CATALOG": "postgres://kvsd:secret@db.example/kvsd", "KVSD_MEDIA": "s3://media/site-a/"}
	_, err := ParseServeFlags(nil, func(k string) string { return env[k] })
	require.ErrorContains(t, err, "give every node the same key file (--key-file", "no key file of its own for a cluster's media")
	env["KVSD_KEY_FILE"] = "/etc/kvsd/cluster.key"
	c, err := ParseServeFlags(nil, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "postgres://kvsd:secret@db.example/kvsd", c.Catalog)
	require.Equal(t, "s3://media/site-a/", c.Media)
	bucket, prefix, err := mediaBucket(c.Media)
	require.NoError(t, err)
	require.Equal(t, "media", bucket)
	require.Equal(t, "site-a", prefix)

	c, err = ParseServeFlags([]string{"--catalog", "postgresql://db/kvsd", "--media", "s3://media"}, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "postgresql://db/kvsd", c.Catalog, "a flag wins over its variable")
	require.Equal(t, "s3://media", c.Media)

	_, err = ParseServeFlags([]string{"--catalog", "mysql://db/kvsd", "--media", "/var/media"}, func(string) string { return "" })
	require.ErrorContains(t, err, "--catalog must be a postgres:// or postgresql:// URL")
	require.ErrorContains(t, err, `--media "/var/media" must be s3://bucket or s3://bucket/prefix`)
	require.NotContains(t, err.Error(), "mysql://", "a catalog URL may hold a password: errors do not repeat it")
}

func TestServeFlagNodeURL(t *testing.T) {
	c, err := ParseServeFlags([]string{"--node-url", "http://10.0.0.5:4580"}, func(string) string { return "" })
	require.NoError(t, err)
	require.Equal(t, "http://10.0.0.5:4580", c.NodeURL)
	c, err = ParseServeFlags(nil, func(k string) string { return map[string]string{"KVSD_NODE_URL": "https://node-2.internal:4580"}[k] })
	require.NoError(t, err)
	require.Equal(t, "https://node-2.internal:4580", c.NodeURL)
	_, err = ParseServeFlags([]string{"--node-url", "10.0.0.5:4580"}, func(string) string { return "" })
	require.ErrorContains(t, err, "--node-url")
	require.Equal(t, "http://10.0.0.5:4580", nodeURLOf(nodeID("http://10.0.0.5:4580")), "a lease holder names its node's URL")
	require.Empty(t, nodeURLOf("host/1/abcd"), "a holder of an older kvsd names none")
}
