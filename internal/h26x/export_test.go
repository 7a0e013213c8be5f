package h26x

// Test helpers for the external test package.
var (
	Encode      = encode
	AccessUnits = accessUnits
)
