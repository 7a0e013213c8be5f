// Package console serves kvsd's web console at /console/ on the API's listener: the bundle that
// console/build.mjs (esbuild, from the npm project in console/) writes to dist/, embedded into
// the binary, so it works offline with no second server. The console talks to kvsd only
// through the public API, signing each request in the browser; this package only hands out its
// files, and config.json with the region to sign for.
//
// Every response carries a strict Content-Security-Policy (only this origin; no inline script,
// no eval; blob: only for the player's Media Source and the thumbnails). Assets have content-hashed names and are
// cached for a year; index.html and config.json are revalidated every time. A binary built
// before the bundle serves a page that says how to build it.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// Prefix is where the console is served; the HTTP server routes "GET /console/" here.
const Prefix = "/console/"

// CSP is the Content-Security-Policy of every console response. blob: is allowed twice: as a
// media source for hls.js, which plays through Media Source Extensions (a blob: URL on the
// video element), and as an image source for the thumbnails, which GetImages returns inline
// and the page shows as blobs. hls.js's transmuxing worker is off, so no worker is allowed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; " +
	"connect-src 'self'; font-src 'self'; worker-src 'none'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// Config is what the console needs from the server.
type Config struct {
	Region string // the region requests are signed for (kvsd serve --region)
}

type file struct {
	body, gz  []byte // gz: the gzipped body the build wrote beside it, if any
	ctype     string
	etag      string
	immutable bool
}

// Handler serves the console.
type Handler struct {
	files map[string]*file // by path below Prefix: "", "config.json", "assets/…"
	built bool
}

// hashed matches esbuild's content-hashed names ([name]-[hash]).
var hashed = regexp.MustCompile(`-[A-Z0-9]{8}\.[a-z0-9]+$`)

var types = map[string]string{
	".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
	".json": "application/json", ".txt": "text/plain; charset=utf-8", ".map": "application/json",
	".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2",
}

// New loads the embedded bundle.
func New(cfg Config) *Handler {
	root, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees dist
	}
	return load(root, cfg)
}

// load reads the bundle from root (index.html and assets/).
func load(root fs.FS, cfg Config) *Handler {
	h := &Handler{files: map[string]*file{}}
	index, err := fs.ReadFile(root, "index.html")
	h.built = err == nil
	if !h.built {
		index = []byte(placeholder)
	}
	h.add("", index, "")
	cj, _ := json.Marshal(map[string]string{"region": cfg.Region})
	h.add("config.json", cj, "")
	assets, _ := fs.Sub(root, "assets")
	_ = fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".gz") {
			return nil
		}
		body, err := fs.ReadFile(assets, p)
		if err != nil {
			return nil
		}
		gz, _ := fs.ReadFile(assets, p+".gz")
		h.add("assets/"+p, body, string(gz))
		return nil
	})
	return h
}

func (h *Handler) add(name string, body []byte, gz string) {
	ext := path.Ext(name)
	if name == "" {
		ext = ".html"
	}
	ctype, ok := types[ext]
	if !ok {
		ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	f := &file{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`,
		immutable: strings.HasPrefix(name, "assets/") && hashed.MatchString(name)}
	if gz != "" {
		f.gz = []byte(gz)
	}
	h.files[name] = f
}

// Built reports whether the bundle was embedded (false: the placeholder page is served).
func (h *Handler) Built() bool { return h.built }

// ServeHTTP serves GET and HEAD below Prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if name == "index.html" {
		name = ""
	}
	f := h.files[name]
	if !ok || f == nil {
		http.Error(w, "not found: the console's pages are under "+Prefix, http.StatusNotFound)
		return
	}
	if f.immutable {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	body := f.body
	if f.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			hd.Set("Content-Encoding", "gzip")
			hd.Set("ETag", strings.TrimSuffix(f.etag, `"`)+`-gz"`)
			body = f.gz
		}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// placeholder is the page of a kvsd built without the bundle.
const placeholder = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>kvsd console: not built</title></head>
<body>
<h1>The kvsd console is not built into this binary</h1>
<p>This kvsd was compiled before its console bundle was. Build both with <code>make build</code>
(it runs <code>npm ci</code> and esbuild in <code>console/</code>, then <code>go build</code>),
or by hand:</p>
<pre>cd console &amp;&amp; npm ci &amp;&amp; node build.mjs &amp;&amp; cd .. &amp;&amp; go build -o bin/kvsd ./cmd/kvsd</pre>
<p>The API itself works without it.</p>
</body>
</html>
`
