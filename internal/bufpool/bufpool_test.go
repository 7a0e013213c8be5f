package bufpool

import "testing"

// With nothing recycled, Get makes room for an eighth more than the hint (a stream's next
// fragment is often a little larger), never beyond MaxPooled, and nothing for hint 0.
func TestGetWithNothingRecycled(t *testing.T) {
	var p Pool
	if b := p.Get(0); b != nil {
		t.Fatalf("Get(0) = %d bytes of room, want nil", cap(b))
	}
	if b := p.Get(800); len(b) != 0 || cap(b) != 900 {
		t.Fatalf("Get(800): len %d cap %d, want 0 and 900", len(b), cap(b))
	}
	if b := p.Get(MaxPooled); cap(b) != MaxPooled {
		t.Fatalf("Get(MaxPooled): cap %d, want %d", cap(b), MaxPooled)
	}
}

// A recycled buffer smaller than the hint is never handed out: it would grow, copying.
func TestGetNeverReturnsTooSmall(t *testing.T) {
	var p Pool
	for range 100 {
		p.Put(make([]byte, 10, 100))
		if b := p.Get(1000); cap(b) < 1000 || len(b) != 0 {
			t.Fatalf("Get(1000): len %d cap %d", len(b), cap(b))
		}
	}
}
