package remux

import (
	"io"
	"testing"
)

// benchFragment is one KVS fragment of 1080p H.264 at 2 Mbit/s: 2 s, a GOP, with AAC.
func benchFragment(b *testing.B) (*Media, *source) {
	b.Helper()
	file := ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M", "-g", "50",
		"-c:a", "aac", "-f", "matroska", "{file}")
	s := regroup(b, file)
	if len(s.frags) != 1 {
		b.Fatalf("%d fragments, want 1", len(s.frags))
	}
	m, err := Open(s.header)
	if err != nil {
		b.Fatal(err)
	}
	return m, s
}

func BenchmarkMP4Fragment(b *testing.B) {
	m, s := benchFragment(b)
	f := s.frags[0]
	b.SetBytes(int64(len(f.Media)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		var err error
		if dst, err = m.AppendMP4Fragment(dst[:0], f, 1, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTS(b *testing.B) {
	m, s := benchFragment(b)
	f := s.frags[0]
	b.SetBytes(int64(len(f.Media)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		var err error
		if dst, err = m.AppendTS(dst[:0], f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClip writes a clip of 10 fragments (20 s); bytes are the fragments' media.
func BenchmarkClip(b *testing.B) {
	const n = 10
	m, s := benchFragment(b)
	frag := loop(s)
	b.SetBytes(n * int64(len(s.frags[0].Media)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.WriteClip(io.Discard, n, frag); err != nil {
			b.Fatal(err)
		}
	}
}
