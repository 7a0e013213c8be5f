package harness

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCountsAndOnly(t *testing.T) {
	if got, err := Counts("-streams", " 1, 16 ,64"); err != nil || !slices.Equal(got, []int{1, 16, 64}) {
		t.Errorf("Counts: %v, %v", got, err)
	}
	for _, bad := range []string{"1,0", "x", "1,,2", "-3"} {
		if _, err := Counts("-streams", bad); err == nil || !strings.Contains(err.Error(), `-streams "`+bad+`": want positive numbers`) {
			t.Errorf("Counts(%q): %v", bad, err)
		}
	}
	all := []string{"a", "b", "c"}
	if got, err := Only(" c,a ,", all); err != nil || len(got) != 2 || !got["a"] || !got["c"] {
		t.Errorf("Only: %v, %v", got, err)
	}
	if got, err := Only("", all); err != nil || len(got) != 0 {
		t.Errorf("Only(\"\"): %v, %v", got, err)
	}
	if _, err := Only("a,d", all); err == nil || err.Error() != `-only "d": want one of a, b, c` {
		t.Errorf("Only(a,d): %v", err)
	}
}

// TestRunSections checks that -only selects, that a failed section does not stop the next,
// and that errors name their section.
func TestRunSections(t *testing.T) {
	var ran []string
	sec := func(name string, err error) Section {
		return Section{Name: name, Run: func(context.Context) error { ran = append(ran, name); return err }}
	}
	boom := errors.New("boom")
	err := RunSections(context.Background(), nil, sec("a", boom), sec("b", nil), sec("c", nil))
	if !slices.Equal(ran, []string{"a", "b", "c"}) || !errors.Is(err, boom) || err.Error() != "a: boom" {
		t.Errorf("all sections: ran %v, err %v", ran, err)
	}
	ran = nil
	if err := RunSections(context.Background(), map[string]bool{"b": true}, sec("a", boom), sec("b", nil)); err != nil || !slices.Equal(ran, []string{"b"}) {
		t.Errorf("-only b: ran %v, err %v", ran, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RunSections(ctx, nil, sec("a", nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
