package awsapi

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Time is a timestamp on the wire: a JSON number of epoch seconds, millisecond precision.
type Time struct{ time.Time }

// MarshalJSON writes plain decimal seconds, e.g. 1690000000.123 (never an exponent).
func (t Time) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)), nil
}

// UnmarshalJSON accepts integer and fractional epoch seconds, exponents included.
func (t *Time) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return fmt.Errorf("timestamp %s must be a number of epoch seconds", b)
	}
	t.Time = time.UnixMilli(int64(math.Round(f * 1000))).UTC()
	return nil
}
