package awsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// MaxBodyBytes caps JSON request bodies; every KVS JSON input fits in far less.
const MaxBodyBytes = 1 << 20

// Decode parses a JSON request body into v. An empty body is {}; syntax errors, wrong types and
// trailing data are InvalidArgumentException with a message naming the member.
func Decode(body []byte, v any) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return InvalidArgument("%s", describeDecodeError(err))
	}
	if dec.More() {
		return InvalidArgument("request body holds more than one JSON value")
	}
	return nil
}

func describeDecodeError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON: it ends early"
	case errors.As(err, &syn):
		return fmt.Sprintf("request body is not valid JSON (offset %d): %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("request body must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("%s must be %s, not %s", memberPath(typ.Field), jsonKind(typ.Type.Kind().String()), typ.Value)
	default:
		// Errors from custom unmarshalers (timestamps) carry their own text.
		return fmt.Sprintf("request body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice":
		return "a list"
	}
	return "of another type"
}

// memberPath drops the Go names of embedded structs (lower-case), keeping the AWS member names.
func memberPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && !unicode.IsLower(rune(p[0])) {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ".")
}
