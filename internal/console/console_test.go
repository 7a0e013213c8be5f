package console_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/console"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

func gz(t *testing.T, s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.String()
}

// A bundle as console/build.mjs writes it.
func bundle(t *testing.T) fstest.MapFS {
	return fstest.MapFS{
		"README.md":                  {Data: []byte("placeholder")},
		"index.html":                 {Data: []byte(`<!doctype html><script type="module" src="assets/main-ABCDEFGH.js"></script>`)},
		"assets/main-ABCDEFGH.js":    {Data: []byte("console.log(1)")},
		"assets/main-ABCDEFGH.js.gz": {Data: []byte(gz(t, "console.log(1)"))},
		"assets/main-IJKLMNOP.css":   {Data: []byte("body{}")},
		"assets/logo.svg":            {Data: []byte("<svg/>")},
	}
}

// Every response, whatever it is, carries the CSP and the other security headers.
func requireSecure(t *testing.T, res *http.Response) {
	t.Helper()
	require.Equal(t, console.CSP, res.Header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
	require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
}

func TestServesBundle(t *testing.T) {
	h := console.Load(bundle(t), console.Config{Region: "eu-west-1"})
	require.True(t, h.Built())
	for _, tc := range []struct {
		path, ctype, cache, body string
	}{
		{"/console/", "text/html; charset=utf-8", "no-cache", `src="assets/main-ABCDEFGH.js"`},
		{"/console/index.html", "text/html; charset=utf-8", "no-cache", `src="assets/main-ABCDEFGH.js"`},
		{"/console/config.json", "application/json", "no-cache", `{"region":"eu-west-1"}`},
		{"/console/assets/main-ABCDEFGH.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "console.log(1)"},
		{"/console/assets/main-IJKLMNOP.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable", "body{}"},
		// Not content-hashed: revalidated.
		{"/console/assets/logo.svg", "image/svg+xml", "no-cache", "<svg/>"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := get(t, h, tc.path)
			require.Equal(t, http.StatusOK, res.StatusCode)
			requireSecure(t, res)
			require.Equal(t, tc.ctype, res.Header.Get("Content-Type"))
			require.Equal(t, tc.cache, res.Header.Get("Cache-Control"))
			require.Empty(t, res.Header.Get("Content-Encoding"))
			require.Contains(t, body(t, res), tc.body)
			require.NotEmpty(t, res.Header.Get("ETag"))
			again := get(t, h, tc.path, "If-None-Match", res.Header.Get("ETag"))
			require.Equal(t, http.StatusNotModified, again.StatusCode)
			requireSecure(t, again)
		})
	}
}

// The .gz the build writes beside an asset goes to browsers that accept gzip, and only to them.
func TestGzip(t *testing.T) {
	h := console.Load(bundle(t), console.Config{})
	res := get(t, h, "/console/assets/main-ABCDEFGH.js", "Accept-Encoding", "br, gzip, deflate")
	require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	require.Equal(t, "Accept-Encoding", res.Header.Get("Vary"))
	require.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
	zr, err := gzip.NewReader(res.Body)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, "console.log(1)", string(plain))

	res = get(t, h, "/console/assets/main-ABCDEFGH.js", "Accept-Encoding", "gzip;q=0, identity")
	require.Empty(t, res.Header.Get("Content-Encoding"))
	require.Equal(t, "console.log(1)", body(t, res))
}

func TestNotFoundAndMethods(t *testing.T) {
	h := console.Load(bundle(t), console.Config{})
	for _, p := range []string{"/console/README.md", "/console/assets/nope.js", "/console/assets/main-ABCDEFGH.js.gz", "/elsewhere"} {
		res := get(t, h, p)
		require.Equal(t, http.StatusNotFound, res.StatusCode, p)
		requireSecure(t, res)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/console/", strings.NewReader("x")))
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	requireSecure(t, w.Result())
}

// A kvsd compiled before the bundle serves a page that says how to build it, under the same CSP.
func TestPlaceholder(t *testing.T) {
	h := console.Load(fstest.MapFS{"README.md": {Data: []byte("placeholder")}}, console.Config{Region: "us-east-1"})
	require.False(t, h.Built())
	res := get(t, h, "/console/")
	require.Equal(t, http.StatusOK, res.StatusCode)
	requireSecure(t, res)
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	page := body(t, res)
	require.Contains(t, page, "not built")
	require.Contains(t, page, "make build")
	require.Contains(t, page, "npm ci")
	require.NotContains(t, page, "<script")
	require.NotContains(t, page, "style=")
}

// The policy allows this origin only: no inline script or style, no eval, no other host, and
// blob: only where the player needs it.
func TestCSPIsStrict(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(console.CSP, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	require.Equal(t, "'self'", directives["default-src"])
	require.Equal(t, "'self'", directives["script-src"])
	require.Equal(t, "'self'", directives["style-src"])
	require.Equal(t, "'self'", directives["connect-src"])
	require.Equal(t, "'none'", directives["object-src"])
	require.Equal(t, "'none'", directives["frame-ancestors"])
	require.Equal(t, "'self' blob:", directives["media-src"])
	require.Equal(t, "'self' blob:", directives["img-src"])
	for name, v := range directives {
		require.NotRegexp(t, regexp.MustCompile(`unsafe-|\*|https?:|data:|wasm`), v, name)
		if name != "media-src" && name != "img-src" {
			require.NotContains(t, v, "blob:", name)
		}
	}
}

// The embedded bundle, when the build made one, names only assets that it has.
func TestEmbeddedBundle(t *testing.T) {
	h := console.New(console.Config{})
	if !h.Built() {
		t.Skip("console: no bundle embedded (make build, or node console/build.mjs, builds it)")
	}
	index := body(t, get(t, h, "/console/"))
	refs := regexp.MustCompile(`(?:src|href)="(assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	require.NotEmpty(t, refs, index)
	for _, m := range refs {
		res := get(t, h, "/console/"+m[1], "Accept-Encoding", "gzip")
		require.Equal(t, http.StatusOK, res.StatusCode, m[1])
		require.Equal(t, "gzip", res.Header.Get("Content-Encoding"), m[1])
		require.Equal(t, "public, max-age=31536000, immutable", res.Header.Get("Cache-Control"), m[1])
	}
}
