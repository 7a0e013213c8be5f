package imaging

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpecSize(t *testing.T) {
	cases := []struct {
		spec       Spec
		srcW, srcH int
		w, h       int
	}{
		{Spec{}, 1920, 1080, 1920, 1080},
		{Spec{Width: 320, Height: 240}, 1920, 1080, 320, 240},
		{Spec{Width: 320}, 1920, 1080, 320, 180},
		{Spec{Height: 240}, 1920, 1080, 427, 240}, // 426.67
		{Spec{Width: 100}, 1920, 1080, 100, 56},   // 56.25
		{Spec{Width: 1}, 1920, 1080, 1, 1},        // 0.56 → 1
		{Spec{Height: 1}, 1080, 1920, 1, 1},
		{Spec{Width: 641}, 640, 480, 641, 481}, // 480.75
		{Spec{Width: 3}, 4, 2, 3, 2},           // 1.5 → 2 (halves up)
	}
	for _, c := range cases {
		w, h := c.spec.Size(c.srcW, c.srcH)
		require.Equal(t, [2]int{c.w, c.h}, [2]int{w, h}, "%+v of %dx%d", c.spec, c.srcW, c.srcH)
	}
}

func TestSpecValidate(t *testing.T) {
	s, err := Spec{}.Validate()
	require.NoError(t, err)
	require.Equal(t, JPEG, s.Format)
	require.Equal(t, DefaultQuality, s.Quality)
	s, err = Spec{Format: PNG, Quality: 500}.Validate() // PNG ignores quality
	require.NoError(t, err)
	for _, bad := range []Spec{{Quality: 101}, {Quality: -5}, {Format: 2}, {Width: -1}, {Height: MaxDimension + 1}} {
		_, err := bad.Validate()
		require.Error(t, err, "%+v", bad)
	}
	require.Equal(t, "PNG", PNG.String())
	require.Equal(t, "Format(9)", Format(9).String())
}
