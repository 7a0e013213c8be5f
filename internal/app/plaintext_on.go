//go:build kvsd_plaintext

package app

// mediaInClear: this build (tag kvsd_plaintext) stores media in clear, so that the
// benchmarks can measure what encryption costs against it. Never ship it.
const mediaInClear = true
