//go:build !kvsd_plaintext

package app

// mediaInClear: stored media is always encrypted. Only a build with the kvsd_plaintext tag,
// which the benchmarks make to measure what encryption costs, stores it in clear.
const mediaInClear = false
