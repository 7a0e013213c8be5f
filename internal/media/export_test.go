//go:build cgo

package media

// SetExact makes d always decode with the in-loop deblocking filter, as
// before keyframes decoded alone could skip it: the reference the quality
// tests and the benchmark compare against.
func SetExact(d *Decoder, exact bool) { d.exact = exact }
