package remux

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/kvsd/kvsd/internal/mkv"
)

// Hostile bytes never panic, and every error is one kvsapi can map.

func FuzzOpen(f *testing.F) {
	f.Add(testHeader())
	f.Add(mkvHeader(trackEntry(1, 1, codecIDH265, testHVCC), trackEntry(2, 2, codecIDAAC, testASC)))
	f.Add(mkvHeader(trackEntry(1, 1, codecIDH264, testAVCC[:30])))
	f.Add(mkvHeader(trackEntry(1, 1, codecIDH265, testHVCC[:40])))
	f.Add(mkvHeader(trackEntry(1, 1, codecIDH264, testAVCC), trackEntry(2, 2, codecIDAAC, []byte{0x13, 0x08})))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, header []byte) {
		m, err := Open(header)
		if err != nil {
			for _, known := range []error{ErrUnsupportedMedia, ErrMissingCodecPrivate, ErrInvalidCodecPrivate, mkv.ErrInvalid, mkv.ErrTooLarge} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		if m.Video.Codec == "" || m.Video.Width <= 0 || m.Video.Height <= 0 {
			t.Fatalf("video track %+v", m.Video)
		}
		if _, err := m.InitMP4(1); err != nil {
			t.Fatal(err)
		}
		if m.Audio != nil {
			if _, err := m.InitMP4(2); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// fuzzHeaders are the stream headers FuzzFragment muxes against.
func fuzzHeaders() []*Media {
	avcc2 := bytes.Clone(testAVCC)
	avcc2[4] = 0xfc | 1 // 2-byte NAL unit lengths
	return []*Media{
		must(Open(testHeader())),
		must(Open(mkvHeader(trackEntry(1, 1, codecIDH265, testHVCC), trackEntry(2, 2, codecIDAAC, testASC)))),
		must(Open(mkvHeader(trackEntry(1, 1, codecIDH264, avcc2)))),
	}
}

func FuzzFragment(f *testing.F) {
	gop := mkvCluster(1000,
		block{1, 0, true, testIDR}, block{2, -5, true, testAAC}, block{1, 120, false, testP},
		block{1, 40, false, testP}, block{2, 16, true, testAAC}, block{1, 80, false, testP},
	)
	f.Add(byte(0), gop, int64(1000), int64(time.Hour), int64(160*time.Millisecond))
	f.Add(byte(1), gop, int64(0), int64(0), int64(0))
	f.Add(byte(2), mkvCluster(0, block{1, 0, true, []byte{0, 2, 0x65, 0x88}}), int64(0), int64(0), int64(40*time.Millisecond))
	f.Add(byte(0), append(gop, elem(0x1254C367, elem(0x7373))...), int64(1000), int64(0), int64(0)) // Tags after the Cluster
	f.Add(byte(0), gop[:len(gop)-3], int64(0), int64(0), int64(0))
	f.Add(byte(0), []byte{}, int64(0), int64(0), int64(0))
	medias := fuzzHeaders()
	f.Fuzz(func(t *testing.T, which byte, media []byte, timecode, start, duration int64) {
		m := medias[int(which)%len(medias)]
		fr := Fragment{Media: media, Timecode: timecode, Start: time.Duration(start), Duration: time.Duration(duration)}
		check := func(what string, err error) {
			if err != nil && !errors.Is(err, ErrInvalidFrame) && !errors.Is(err, errClipTooBig) {
				t.Fatalf("%s: unclassified error: %v", what, err)
			}
		}
		for _, track := range []uint64{1, 2} {
			if track == 2 && m.Audio == nil {
				continue
			}
			_, err := m.AppendMP4Fragment(nil, fr, track, 1)
			check("fMP4", err)
		}
		_, err := m.AppendTS(nil, fr)
		check("TS", err)
		_, err = m.WriteClip(io.Discard, 2, func(i int, _ []byte) (Fragment, error) {
			g := fr
			g.Start += time.Duration(i) * g.Duration
			return g, nil
		})
		check("clip", err)
	})
}
