// Package sigv4 verifies AWS Signature Version 4 requests as AWS does.
//
// It accepts both forms a client can use: the Authorization header and the
// presigned query string (X-Amz-Signature). Besides the rules of the AWS
// specification it knows the habits of the Kinesis Video clients: kvssink
// signs a Host without port plus the hop-by-hop Connection and
// Transfer-Encoding headers and hashes an empty payload for its streamed
// PutMedia body; the Java SDKs send UNSIGNED-PAYLOAD or
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD literally.
package sigv4

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EmptySHA256 is the hex SHA-256 of the empty string.
const EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

const (
	algorithm      = "AWS4-HMAC-SHA256"
	terminator     = "aws4_request"
	amzDateLayout  = "20060102T150405Z"
	scopeDateLen   = 8
	maxPresignSecs = 604800 // one week, the SigV4 limit for X-Amz-Expires
	defaultMaxSkew = 5 * time.Minute
	unsignedHash   = "UNSIGNED-PAYLOAD"
	maxEchoLen     = 512 // longest client text echoed back in a message
)

// Credential is one access key the server accepts.
type Credential struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must be sent by the client as
	// X-Amz-Security-Token. Empty means any token (or none) is accepted.
	SessionToken string
}

// Verifier checks SigV4 signatures. Its fields are read-only once in use, so
// one Verifier may serve concurrent requests.
type Verifier struct {
	Region  string // the only credential-scope region accepted
	Service string // the only credential-scope service accepted, "kinesisvideo"
	Lookup  func(accessKeyID string) (Credential, bool)
	Now     func() time.Time // nil means time.Now
	MaxSkew time.Duration    // 0 means 5 minutes
}

// authInfo is what the client claims, from either the Authorization header
// or the presigned query parameters.
type authInfo struct {
	presigned     bool
	accessKeyID   string
	scopeDate     string
	scopeRegion   string
	scopeService  string
	signedHeaders []string // lower-case, in the client's order
	signature     string
	amzDate       string    // the request time, basic ISO 8601, as signed
	time          time.Time // amzDate parsed
	expires       int64     // presigned X-Amz-Expires seconds; -1 when absent
}

func (a *authInfo) scope() string {
	return a.scopeDate + "/" + a.scopeRegion + "/" + a.scopeService + "/" + terminator
}

// Verify checks the signature of r (header auth or presigned query auth) and
// returns the access key id. bodyHash is the lowercase hex SHA-256 of the
// request body when the caller has buffered it, or "" when the body is
// streamed and was not read (PutMedia). Every failure is an *Error.
func (v *Verifier) Verify(r *http.Request, bodyHash string) (accessKeyID string, err error) {
	info, err := v.parse(r)
	if err != nil {
		return "", err
	}
	if err := v.checkScope(info); err != nil {
		return "", err
	}
	if err := v.checkTime(info); err != nil {
		return "", err
	}
	cred, err := v.lookup(r, info.accessKeyID)
	if err != nil {
		return "", err
	}
	payload, err := payloadHash(r, bodyHash)
	if err != nil {
		return "", err
	}
	if !signatureMatches(r, info, cred.SecretAccessKey, payload) {
		return "", errorf(KindInvalidSignature, msgSignatureMismatch)
	}
	return info.accessKeyID, nil
}

// parse finds which kind of signature r carries and reads its parts.
func (v *Verifier) parse(r *http.Request) (*authInfo, error) {
	authz := r.Header.Get("Authorization")
	query, _ := url.ParseQuery(r.URL.RawQuery) // a malformed pair only loses that pair
	hasQuerySig := query.Has("X-Amz-Signature")
	switch {
	case authz != "" && hasQuerySig:
		return nil, errorf(KindIncomplete, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified")
	case authz != "":
		return parseHeaderAuth(r, authz)
	case hasQuerySig:
		return parseQueryAuth(query)
	}
	return nil, errorf(KindMissing, msgMissingToken)
}

// parseHeaderAuth reads
//
//	AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/kinesisvideo/aws4_request, SignedHeaders=a;b, Signature=hex
//
// tolerating any amount of space around the commas.
func parseHeaderAuth(r *http.Request, authz string) (*authInfo, error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(authz), " ")
	if alg != algorithm {
		return nil, errorf(KindIncomplete, "Unsupported AWS 'algorithm': '%s'. The only supported algorithm is %s. Authorization=%s",
			echo(alg), algorithm, echo(authz))
	}
	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, errorf(KindIncomplete, "Invalid key=value pair (missing equal-sign) in Authorization header: '%s'.", echo(part))
		}
		params[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}

	// Like AWS, report every missing piece at once.
	var missing []string
	for _, name := range []string{"Credential", "Signature", "SignedHeaders"} {
		if params[name] == "" {
			missing = append(missing, "Authorization header requires '"+name+"' parameter.")
		}
	}
	amzDate, dateErr := headerDate(r)
	if amzDate == "" && dateErr == nil {
		missing = append(missing, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if len(missing) > 0 {
		return nil, errorf(KindIncomplete, "%s Authorization=%s", strings.Join(missing, " "), echo(authz))
	}
	if dateErr != nil {
		return nil, dateErr
	}
	return newAuthInfo(false, params["Credential"], params["SignedHeaders"], params["Signature"], amzDate)
}

// headerDate returns the request time for header auth as a basic ISO 8601
// string: X-Amz-Date, or else the Date header converted (botocore sends
// RFC 1123 with "-0000" when a Date header is used). ("", nil) means neither
// header is present.
func headerDate(r *http.Request) (string, error) {
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		return d, nil
	}
	d := r.Header.Get("Date")
	if d == "" {
		return "", nil
	}
	for _, layout := range []string{http.TimeFormat, time.RFC1123Z, time.RFC1123, time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, d); err == nil {
			return t.UTC().Format(amzDateLayout), nil
		}
	}
	return "", errorf(KindIncomplete, "Date must be in RFC 1123 format. Got '%s'.", echo(d))
}

// parseQueryAuth reads a presigned URL's X-Amz-* parameters.
func parseQueryAuth(q url.Values) (*authInfo, error) {
	for _, name := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if q.Get(name) == "" {
			return nil, errorf(KindIncomplete, "AWS query-string parameters must include '%s'. Re-examine the query-string parameters.", name)
		}
	}
	if alg := q.Get("X-Amz-Algorithm"); alg != algorithm {
		return nil, errorf(KindIncomplete, "X-Amz-Algorithm only supports \"%s\", not '%s'.", algorithm, echo(alg))
	}
	info, err := newAuthInfo(true, q.Get("X-Amz-Credential"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature"), q.Get("X-Amz-Date"))
	if err != nil {
		return nil, err
	}
	info.expires = -1
	if e := q.Get("X-Amz-Expires"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		switch {
		case err != nil:
			return nil, errorf(KindIncomplete, "X-Amz-Expires should be a number. Got '%s'.", echo(e))
		case n < 0:
			return nil, errorf(KindIncomplete, "X-Amz-Expires must be non-negative")
		case n > maxPresignSecs:
			return nil, errorf(KindIncomplete, "X-Amz-Expires must be less than a week (in seconds) that is 604800")
		}
		info.expires = n
	}
	return info, nil
}

// newAuthInfo validates the parts common to both forms.
func newAuthInfo(presigned bool, credential, signedHeaders, signature, amzDate string) (*authInfo, error) {
	parts := strings.Split(credential, "/")
	if len(parts) != 5 {
		return nil, errorf(KindIncomplete, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", echo(credential))
	}
	if parts[4] != terminator {
		return nil, errorf(KindIncomplete, "Credential should be scoped with a valid terminator: '%s', not '%s'.", terminator, echo(parts[4]))
	}
	t, err := time.Parse(amzDateLayout, amzDate)
	// The round trip rejects loose forms time.Parse accepts (one-digit hours).
	if err != nil || t.Format(amzDateLayout) != amzDate {
		return nil, errorf(KindIncomplete, "Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", echo(amzDate))
	}
	var headers []string
	for _, h := range strings.Split(signedHeaders, ";") {
		headers = append(headers, strings.ToLower(strings.TrimSpace(h)))
	}
	return &authInfo{
		presigned:     presigned,
		accessKeyID:   parts[0],
		scopeDate:     parts[1],
		scopeRegion:   parts[2],
		scopeService:  parts[3],
		signedHeaders: headers,
		signature:     signature,
		amzDate:       amzDate,
		time:          t,
	}, nil
}

// checkScope compares the credential scope with this server's region and
// service and with the request date.
func (v *Verifier) checkScope(info *authInfo) error {
	if info.scopeService != v.Service {
		return errorf(KindInvalidSignature, "Credential should be scoped to correct service: '%s'.", v.Service)
	}
	if info.scopeRegion != v.Region {
		return errorf(KindInvalidSignature, "Credential should be scoped to a valid region, not '%s'. This kvsd server's region is '%s' (set it with --region).",
			echo(info.scopeRegion), v.Region)
	}
	if day := info.amzDate[:scopeDateLen]; info.scopeDate != day {
		return errorf(KindInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			echo(info.scopeDate), day, info.amzDate)
	}
	return nil
}

// checkTime enforces the clock-skew window and, for presigned URLs, their
// X-Amz-Expires lifetime.
func (v *Verifier) checkTime(info *authInfo) error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	now = now.UTC()
	skew := v.MaxSkew
	if skew <= 0 {
		skew = defaultMaxSkew
	}
	if latest := now.Add(skew); info.time.After(latest) {
		return errorf(KindExpired, "Signature not yet current: %s is still later than %s (%s + %s)",
			info.amzDate, latest.Format(amzDateLayout), now.Format(amzDateLayout), skewText(skew))
	}
	if info.presigned && info.expires >= 0 {
		if now.After(info.time.Add(time.Duration(info.expires) * time.Second)) {
			return errorf(KindExpired, msgRequestExpired)
		}
		return nil
	}
	if earliest := now.Add(-skew); info.time.Before(earliest) {
		return errorf(KindExpired, "Signature expired: %s is now earlier than %s (%s - %s)",
			info.amzDate, earliest.Format(amzDateLayout), now.Format(amzDateLayout), skewText(skew))
	}
	return nil
}

// skewText renders the window the way AWS does: "5 min.".
func skewText(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min.", int64(d/time.Minute))
	}
	return d.String() + "."
}

// lookup finds the credential and checks the session token against it.
func (v *Verifier) lookup(r *http.Request, accessKeyID string) (Credential, error) {
	if v.Lookup == nil {
		return Credential{}, errorf(KindUnrecognized, msgInvalidToken)
	}
	cred, ok := v.Lookup(accessKeyID)
	if !ok {
		return Credential{}, errorf(KindUnrecognized, msgInvalidToken)
	}
	if cred.SessionToken == "" {
		return cred, nil
	}
	token := r.Header.Get("X-Amz-Security-Token")
	if token == "" {
		token = r.URL.Query().Get("X-Amz-Security-Token")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(cred.SessionToken)) != 1 {
		return Credential{}, errorf(KindUnrecognized, msgInvalidToken)
	}
	return cred, nil
}

// payloadHash picks the payload hash the client must have signed.
// x-amz-content-sha256 wins when present (its literal value is what was
// signed, including UNSIGNED-PAYLOAD and STREAMING-...); a hex value must then
// agree with the body when the caller hashed it. Without the header, the
// buffered body's hash is used, and for a streamed body the empty-string hash,
// which is what the KVS C producer (kvssink) signs for PutMedia.
func payloadHash(r *http.Request, bodyHash string) (string, error) {
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if bodyHash != "" && isHexSHA256(h) && !strings.EqualFold(h, bodyHash) {
			return "", errorf(KindInvalidSignature, msgContentSHA256Mismatch)
		}
		return h, nil
	}
	if bodyHash != "" {
		return bodyHash, nil
	}
	return EmptySHA256, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lower-cases letters, leaves digits alone
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// signatureMatches recomputes the signature and compares in constant time.
// A presigned URL may also have been signed with UNSIGNED-PAYLOAD, and a path
// may have been signed with or without dot-segment normalisation, so every
// combination is tried.
func signatureMatches(r *http.Request, info *authInfo, secret, payload string) bool {
	payloads := []string{payload}
	if info.presigned && payload != unsignedHash {
		payloads = append(payloads, unsignedHash)
	}
	skip := ""
	if info.presigned {
		skip = "X-Amz-Signature" // the only parameter not covered by itself
	}
	query := canonicalQuery(r.URL.RawQuery, skip)
	headers := canonicalHeaders(r, info.signedHeaders)
	signedList := strings.Join(info.signedHeaders, ";")
	key := signingKey(secret, info.scopeDate, info.scopeRegion, info.scopeService)
	given := []byte(info.signature)

	match := false
	for _, uri := range canonicalURIs(r.URL.EscapedPath()) {
		for _, p := range payloads {
			creq := canonicalRequest(r.Method, uri, query, headers, signedList, p)
			want := hmacSHA256(key, stringToSign(info.amzDate, info.scope(), creq))
			// Hex-encode ours rather than decode theirs: a malformed signature
			// then simply fails to match.
			if hmac.Equal([]byte(hex.EncodeToString(want)), given) {
				match = true
			}
		}
	}
	return match
}

// echo bounds client-supplied text copied into an error message.
func echo(s string) string {
	if len(s) > maxEchoLen {
		return s[:maxEchoLen] + "..."
	}
	return s
}
