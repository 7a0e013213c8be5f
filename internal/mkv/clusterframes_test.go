package mkv

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// clustersOf splits a document into its header and its Clusters, each with the Tags that
// follow it, as the fragment store keeps fragments.
func clustersOf(t testing.TB, doc []byte) (header []byte, clusters [][]byte) {
	t.Helper()
	r := NewReader(bytes.NewReader(doc), Limits{})
	var starts []int64
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		if ev.Kind == KindHeader {
			header = bytes.Clone(ev.Header.Raw)
		}
		if ev.Kind == KindClusterStart {
			starts = append(starts, ev.Offset)
		}
	}
	for i, s := range starts {
		end := int64(len(doc))
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		clusters = append(clusters, doc[s:end])
	}
	return UnknownSegmentSize(header), clusters
}

// ClusterFrames reads, in place, exactly the frames ReadFrames reads from the same fragment
// behind its header: real ffmpeg media with unknown-size Clusters, and built documents with
// BlockGroups, known sizes and Tags.
func TestClusterFramesMatchesReadFrames(t *testing.T) {
	docs := [][]byte{
		generate(t, "ffmpeg", strings.Fields("-v error -f lavfi -i testsrc=size=320x240:rate=25 -t 4 -c:v libx264 -g 25 -f matroska -live 1 -")...),
		generate(t, "ffmpeg", strings.Fields("-v error -f lavfi -i testsrc=size=320x240:rate=25 -t 2 -c:v libx264 -g 25 -f matroska -")...),
		cat(picHeader(), picGOP(100, 3, 40, 10), tags8("a", "b"), picGOP(200, 2, 30, 10)),
	}
	for i, doc := range docs {
		header, clusters := clustersOf(t, doc)
		require.NotEmpty(t, clusters, "doc %d", i)
		for j, c := range clusters {
			_, want, err := ReadFrames(append(bytes.Clone(header), c...), Limits{})
			require.NoError(t, err, "doc %d cluster %d", i, j)
			got, err := ClusterFrames(c, nil)
			require.NoError(t, err, "doc %d cluster %d", i, j)
			require.Equal(t, want, got, "doc %d cluster %d", i, j)
			for _, f := range got {
				require.True(t, within(f.Data, c), "frames alias the fragment")
			}
		}
	}
}

func TestClusterFramesRejects(t *testing.T) {
	gop := picGOP(100, 2, 40, 10)
	for name, in := range map[string][]byte{
		"empty":         nil,
		"not a Cluster": tags8("a", "b"),
		"cut short":     gop[:len(gop)-3],
	} {
		_, err := ClusterFrames(in, nil)
		require.True(t, errors.Is(err, ErrInvalid), "%s: %v", name, err)
	}
}

// FuzzClusterFrames: hostile fragments never panic, errors are ErrInvalid, frames alias the
// input, and whenever ReadFrames reads the fragment behind a header, ClusterFrames reads the
// same frames (of the first Cluster).
func FuzzClusterFrames(f *testing.F) {
	f.Add(picGOP(100, 3, 40, 10))
	f.Add(cat(picGOP(100, 2, 40, 10), tags8("a", "b")))
	header := UnknownSegmentSize(picHeader())
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ClusterFrames(in, nil)
		if err != nil {
			require.True(t, errors.Is(err, ErrInvalid), "%v", err)
		}
		for _, fr := range got {
			require.True(t, within(fr.Data, in))
		}
		_, want, rerr := ReadFrames(append(bytes.Clone(header), in...), Limits{})
		if rerr != nil || !bytes.HasPrefix(in, []byte{0x1F, 0x43, 0xB6, 0x75}) {
			return
		}
		require.NoError(t, err, "ReadFrames read it")
		require.LessOrEqual(t, len(got), len(want))
		require.Equal(t, want[:len(got)], got)
	})
}
