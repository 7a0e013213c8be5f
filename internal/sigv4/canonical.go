package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// canonicalRequest builds the SigV4 canonical request:
//
//	METHOD \n URI \n QUERY \n HEADERS(name:value\n)* \n SIGNEDHEADERS \n PAYLOADHASH
func canonicalRequest(method, uri, query, headers, signedHeaders, payloadHash string) string {
	return strings.Join([]string{method, uri, query, headers, signedHeaders, payloadHash}, "\n")
}

// stringToSign hashes the canonical request into the text that gets HMACed.
func stringToSign(amzDate, scope, canonical string) string {
	return "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hexSHA256(canonical)
}

// signingKey derives the per-day, per-region, per-service key from the secret.
func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// canonicalURIs returns the canonical URI candidates for an escaped request
// path. AWS (for every service but S3) takes the path as it was sent, removes
// dot segments and duplicate slashes (RFC 3986 §5.2.4), then URI-encodes it
// once more. Some signers (the Go SDK v2) skip the normalisation, so the
// un-normalised form is offered first; for ordinary paths both are the same
// and only one candidate is returned.
func canonicalURIs(escapedPath string) []string {
	asSent := encodePath(escapedPath)
	normalized := encodePath(removeDotSegments(escapedPath))
	if asSent == normalized {
		return []string{asSent}
	}
	return []string{asSent, normalized}
}

// encodePath encodes every byte except the unreserved set and '/'. Applied to
// an already-escaped path this is AWS's "double encoding": a '%' becomes %25.
func encodePath(p string) string {
	if p == "" {
		return "/"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			b.WriteByte('/')
			continue
		}
		encodeByte(&b, p[i])
	}
	return b.String()
}

// removeDotSegments drops "." and ".." segments and empty segments (AWS also
// collapses "//"), keeping a leading and a trailing slash.
func removeDotSegments(p string) string {
	if p == "" {
		return "/"
	}
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	res := strings.Join(out, "/")
	if strings.HasPrefix(p, "/") {
		res = "/" + res
	}
	if strings.HasSuffix(p, "/") && len(out) > 0 {
		res += "/"
	}
	return res
}

// uriEncode encodes s with AWS's rule: only A-Z a-z 0-9 - _ . ~ stay literal,
// everything else becomes %XX with upper-case hex.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		encodeByte(&b, s[i])
	}
	return b.String()
}

func encodeByte(b *strings.Builder, c byte) {
	if isUnreserved(c) {
		b.WriteByte(c)
		return
	}
	const hexDigits = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&0xF])
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// canonicalQuery decodes every key=value pair of rawQuery (as the client's SDK
// would have before signing), re-encodes it with AWS's rule and sorts by key,
// then value. Pairs whose key is skip (X-Amz-Signature for presigned URLs)
// are left out.
func canonicalQuery(rawQuery, skip string) string {
	if rawQuery == "" {
		return ""
	}
	type pair struct{ k, v string }
	var pairs []pair
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, v = queryUnescape(k), queryUnescape(v)
		if k == skip {
			continue
		}
		pairs = append(pairs, pair{uriEncode(k), uriEncode(v)})
	}
	// Sorted on the encoded forms, as the SDKs do.
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// queryUnescape decodes a query component ('+' is a space). A malformed escape
// is kept as sent: the client cannot have signed anything more sensible.
func queryUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// canonicalHeaders renders "name:value\n" for every signed header, in the
// order the client listed them.
func canonicalHeaders(r *http.Request, signed []string) string {
	lower := make(map[string][]string, len(r.Header))
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		lower[lk] = append(lower[lk], vs...)
	}
	var b strings.Builder
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(r, lower, name))
		b.WriteByte('\n')
	}
	return b.String()
}

// headerValue returns the canonical value of one signed header. net/http
// moves some headers out of r.Header on the server side, so those are rebuilt
// from the fields Go keeps them in. A signed header that is absent simply
// contributes an empty value, as it did for the client.
func headerValue(r *http.Request, lower map[string][]string, name string) string {
	switch name {
	case "host":
		// Exactly as received: kvssink sends "Host: 127.0.0.1" without the
		// port it connected to, and signs that.
		if r.Host != "" {
			return trimAll(r.Host)
		}
	case "transfer-encoding":
		if len(r.TransferEncoding) > 0 {
			return strings.Join(r.TransferEncoding, ",")
		}
	case "content-length":
		if _, ok := lower[name]; !ok && r.ContentLength >= 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
	}
	vals := lower[name]
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = trimAll(v)
	}
	return strings.Join(out, ",")
}

// trimAll is SigV4's Trimall: strip surrounding whitespace and collapse each
// inner run of spaces to one.
func trimAll(v string) string {
	v = strings.Trim(v, " \t")
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	prevSpace := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' && prevSpace {
			continue
		}
		prevSpace = c == ' '
		b.WriteByte(c)
	}
	return b.String()
}
