package diskuse

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"":       {},
		"0":      {},
		"500GB":  {Bytes: 500e9},
		"20MiB":  {Bytes: 20 << 20},
		"20 mib": {Bytes: 20 << 20},
		"1.5TB":  {Bytes: 1.5e12},
		"4096":   {Bytes: 4096},
		"64k":    {Bytes: 64e3},
		"90%":    {Percent: 90},
		"12.5%":  {Percent: 12.5},
	} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"-1GB", "abc", "GB", "0%", "101%", "5XB", "1e30TB", "NaN"} {
		_, err := ParseSize(bad)
		require.Error(t, err, bad)
	}
	require.Equal(t, int64(900), Size{Percent: 90}.limit(1000))
	require.Equal(t, "20.0 MiB", Size{Bytes: 20 << 20}.String())
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"500GB", "20MiB", "90%", "1e3", " 7 kib "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err == nil && (v.Bytes < 0 || v.Percent < 0 || v.Percent > 100) {
			t.Fatalf("%q gave %+v", s, v)
		}
	})
}
