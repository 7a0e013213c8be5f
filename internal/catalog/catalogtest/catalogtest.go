// Package catalogtest is the conformance suite for catalog implementations (catalog.Catalog):
// Run runs it all; TestStore, TestIndex and TestState are its parts. Every catalog (bbolt,
// PostgreSQL) runs Run, so the suite checks behaviour through the interfaces only and never
// looks at how a catalog lays out its data. TestLeases is the lease and fencing suite of
// catalogs shared between processes (PostgreSQL); the embedded one's leases are trivial.
package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvsd/kvsd/internal/stream"
)

// TestStore runs the suite. open must return an empty store; it is called once per subtest and
// the implementation should register its own cleanup with t.
func TestStore(t *testing.T, open func(t *testing.T) stream.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s stream.Store)
	}{
		{"RoundTripEveryField", testRoundTrip},
		{"RoundTripMinimal", testRoundTripMinimal},
		{"TagsNilVersusEmpty", testTagsNilVersusEmpty},
		{"CreateDuplicate", testCreateDuplicate},
		{"MissingName", testMissing},
		{"UpdateChangesStream", testUpdate},
		{"UpdateErrorAborts", testUpdateErrorAborts},
		{"UpdateIsAtomic", testUpdateAtomic},
		{"ResultsAreCopies", testCopies},
		{"DeleteCheck", testDeleteCheck},
		{"CreationTimesIncrease", testCreationTimesIncrease},
		{"ListOrder", testListOrder},
		{"ListPrefix", testListPrefix},
		{"ListPagination", testListPagination},
		{"ListNestedPrefixes", testListNestedPrefixes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func intp(v int) *int { return &v }

// full is a stream with every field set, including each pointer in the configurations.
func full(name string) *stream.Stream {
	return &stream.Stream{
		Name:           name,
		ARN:            "arn:aws:kinesisvideo:us-east-1:123456789012:stream/" + name + "/1700000000123",
		DeviceName:     "dev-1",
		MediaType:      "video/h264,audio/aac",
		KmsKeyID:       "arn:aws:kms:us-east-1:123456789012:alias/aws/kinesisvideo",
		Version:        "abcdefghij0123456789",
		Status:         stream.StatusActive,
		CreationTime:   time.UnixMilli(1700000000123),
		RetentionHours: 24,
		Tags:           map[string]string{"team": "video", "env": "prod"},
		StorageTier:    "WARM",
		ImageGeneration: &stream.ImageGenerationConfiguration{
			Status:            "ENABLED",
			ImageSelectorType: "PRODUCER_TIMESTAMP",
			DestinationConfig: &stream.ImageGenerationDestinationConfig{Uri: "s3://bucket/path", DestinationRegion: "us-east-1"},
			SamplingInterval:  intp(3000),
			Format:            "JPEG",
			FormatConfig:      map[string]string{"JPEGQuality": "90"},
			WidthPixels:       intp(640),
			HeightPixels:      intp(480),
		},
		Notification: &stream.NotificationConfiguration{
			Status:            "DISABLED",
			DestinationConfig: &stream.NotificationDestinationConfig{Uri: "arn:aws:sns:us-east-1:123456789012:topic"},
		},
	}
}

// minimal is a stream as a store might see it with every optional part absent.
func minimal(name string) *stream.Stream {
	return &stream.Stream{
		Name:         name,
		ARN:          "arn:aws:kinesisvideo:us-east-1:123456789012:stream/" + name + "/1",
		Version:      "v1",
		Status:       stream.StatusActive,
		CreationTime: time.UnixMilli(1),
		StorageTier:  "HOT",
	}
}

// assertSame compares streams exactly, except that CreationTime is compared as an instant: a
// store may hand it back in another time zone.
func assertSame(t *testing.T, want, got *stream.Stream) {
	t.Helper()
	require.NotNil(t, got)
	assert.True(t, want.CreationTime.Equal(got.CreationTime), "CreationTime: want %v, got %v", want.CreationTime, got.CreationTime)
	w, g := *want, *got
	w.CreationTime, g.CreationTime = time.Time{}, time.Time{}
	assert.Equal(t, w, g)
}

func create(t *testing.T, s stream.Store, streams ...*stream.Stream) {
	t.Helper()
	for _, st := range streams {
		require.NoError(t, s.CreateStream(context.Background(), st))
	}
}

func get(t *testing.T, s stream.Store, name string) *stream.Stream {
	t.Helper()
	st, err := s.GetStream(context.Background(), name)
	require.NoError(t, err)
	return st
}

func names(list []*stream.Stream) []string {
	out := []string{}
	for _, st := range list {
		out = append(out, st.Name)
	}
	return out
}

func list(t *testing.T, s stream.Store, prefix, after string, limit int) []string {
	t.Helper()
	l, err := s.ListStreams(context.Background(), prefix, after, limit)
	require.NoError(t, err)
	return names(l)
}

func testRoundTrip(t *testing.T, s stream.Store) {
	create(t, s, full("cam"))
	assertSame(t, full("cam"), get(t, s, "cam"))
}

func testRoundTripMinimal(t *testing.T, s stream.Store) {
	want := minimal("cam")
	// Configurations whose optional pointers and maps are absent must stay absent.
	want.ImageGeneration = &stream.ImageGenerationConfiguration{Status: "DISABLED", ImageSelectorType: "SERVER_TIMESTAMP", Format: "PNG"}
	want.Notification = &stream.NotificationConfiguration{Status: "ENABLED"}
	create(t, s, want, minimal("bare"))
	assertSame(t, want, get(t, s, "cam"))
	assertSame(t, minimal("bare"), get(t, s, "bare"))
}

func testTagsNilVersusEmpty(t *testing.T, s stream.Store) {
	none, empty := minimal("none"), minimal("empty")
	empty.Tags = map[string]string{}
	create(t, s, none, empty)
	assert.Nil(t, get(t, s, "none").Tags)
	got := get(t, s, "empty").Tags
	assert.NotNil(t, got)
	assert.Empty(t, got)
}

func testCreateDuplicate(t *testing.T, s stream.Store) {
	create(t, s, full("cam"))
	other := minimal("cam")
	err := s.CreateStream(context.Background(), other)
	require.ErrorIs(t, err, stream.ErrInUse)
	assert.ErrorContains(t, err, "cam")
	assertSame(t, full("cam"), get(t, s, "cam")) // the first one is untouched
}

func testMissing(t *testing.T, s stream.Store) {
	ctx := context.Background()
	create(t, s, minimal("cam1"))
	_, err := s.GetStream(ctx, "cam")
	assert.ErrorIs(t, err, stream.ErrNotFound)
	called := false
	_, err = s.UpdateStream(ctx, "cam", func(*stream.Stream) error { called = true; return nil })
	assert.ErrorIs(t, err, stream.ErrNotFound)
	err = s.DeleteStream(ctx, "cam", func(*stream.Stream) error { called = true; return nil })
	assert.ErrorIs(t, err, stream.ErrNotFound)
	assert.False(t, called, "fn and check must not run for a missing stream")
	// A deleted stream is missing too.
	require.NoError(t, s.DeleteStream(ctx, "cam1", nil))
	_, err = s.GetStream(ctx, "cam1")
	assert.ErrorIs(t, err, stream.ErrNotFound)
}

func testUpdate(t *testing.T, s stream.Store) {
	create(t, s, minimal("cam"))
	want := full("cam")
	got, err := s.UpdateStream(context.Background(), "cam", func(st *stream.Stream) error {
		assertSame(t, minimal("cam"), st) // fn sees the stored value
		*st = *full("cam")
		return nil
	})
	require.NoError(t, err)
	assertSame(t, want, got)
	assertSame(t, want, get(t, s, "cam"))

	// And back: removing configurations and tags is stored too.
	_, err = s.UpdateStream(context.Background(), "cam", func(st *stream.Stream) error {
		*st = *minimal("cam")
		return nil
	})
	require.NoError(t, err)
	assertSame(t, minimal("cam"), get(t, s, "cam"))
}

func testUpdateErrorAborts(t *testing.T, s stream.Store) {
	create(t, s, full("cam"))
	errBoom := errors.New("boom")
	_, err := s.UpdateStream(context.Background(), "cam", func(st *stream.Stream) error {
		st.RetentionHours = 99
		st.Tags["new"] = "x"
		st.ImageGeneration = nil
		return fmt.Errorf("%w: version changed", stream.ErrVersionMismatch)
	})
	assert.ErrorIs(t, err, stream.ErrVersionMismatch)
	_, err = s.UpdateStream(context.Background(), "cam", func(st *stream.Stream) error {
		st.DeviceName = "changed"
		return errBoom
	})
	assert.Same(t, errBoom, err, "fn's error is returned as is")
	assertSame(t, full("cam"), get(t, s, "cam"))
}

func testUpdateAtomic(t *testing.T, s stream.Store) {
	const n = 20
	create(t, s, full("cam")) // RetentionHours 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.UpdateStream(context.Background(), "cam", func(st *stream.Stream) error {
				st.RetentionHours++
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 24+n, get(t, s, "cam").RetentionHours)
}

// mutate changes every reference-typed part of st, to catch stores that share memory.
func mutate(st *stream.Stream) {
	st.DeviceName = "mutated"
	st.Tags["team"] = "mutated"
	st.ImageGeneration.DestinationConfig.Uri = "s3://mutated"
	st.ImageGeneration.FormatConfig["JPEGQuality"] = "1"
	*st.ImageGeneration.SamplingInterval = 1
	*st.ImageGeneration.WidthPixels = 1
	*st.ImageGeneration.HeightPixels = 1
	st.Notification.DestinationConfig.Uri = "mutated"
}

func testCopies(t *testing.T, s stream.Store) {
	ctx := context.Background()
	in := full("cam")
	create(t, s, in)
	mutate(in)
	assertSame(t, full("cam"), get(t, s, "cam"))

	mutate(get(t, s, "cam"))
	assertSame(t, full("cam"), get(t, s, "cam"))

	l, err := s.ListStreams(ctx, "", "", 10)
	require.NoError(t, err)
	require.Len(t, l, 1)
	mutate(l[0])
	assertSame(t, full("cam"), get(t, s, "cam"))

	var seen *stream.Stream
	got, err := s.UpdateStream(ctx, "cam", func(st *stream.Stream) error { seen = st; return nil })
	require.NoError(t, err)
	mutate(got)
	mutate(seen)
	assertSame(t, full("cam"), get(t, s, "cam"))

	require.NoError(t, s.DeleteStream(ctx, "cam", func(st *stream.Stream) error { mutate(st); return nil }))
}

func testDeleteCheck(t *testing.T, s stream.Store) {
	ctx := context.Background()
	create(t, s, full("cam"))
	err := s.DeleteStream(ctx, "cam", func(st *stream.Stream) error {
		assertSame(t, full("cam"), st) // check sees the stored value
		return fmt.Errorf("%w: no", stream.ErrVersionMismatch)
	})
	assert.ErrorIs(t, err, stream.ErrVersionMismatch)
	assertSame(t, full("cam"), get(t, s, "cam"))

	require.NoError(t, s.DeleteStream(ctx, "cam", func(*stream.Stream) error { return nil }))
	_, err = s.GetStream(ctx, "cam")
	assert.ErrorIs(t, err, stream.ErrNotFound)
	// The name is free again (for a later creation time: see testCreationTimesIncrease).
	again := minimal("cam")
	again.SetCreationTime(time.UnixMilli(1700000001000))
	create(t, s, again)
	assertSame(t, again, get(t, s, "cam"))
}

// testCreationTimesIncrease: a stream created again under a name gets a later creation time
// than any stream of that name before it, even when its clock says otherwise (deleted and
// created again within the same millisecond, or a clock that went back), so that its ARN and
// its fragments' Key never name an earlier incarnation.
func testCreationTimesIncrease(t *testing.T, s stream.Store) {
	ctx := context.Background()
	first := full("cam")
	create(t, s, first)
	assertSame(t, full("cam"), first) // a first creation keeps its time
	drop := func() { require.NoError(t, s.DeleteStream(ctx, "cam", nil)) }

	drop()
	second := full("cam") // the same millisecond
	create(t, s, second)
	want := time.UnixMilli(1700000000124)
	assert.True(t, want.Equal(second.CreationTime), "CreationTime %v, want %v", second.CreationTime, want)
	assert.Equal(t, "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam/1700000000124", second.ARN)
	assertSame(t, second, get(t, s, "cam"))

	drop()
	third := full("cam")
	third.SetCreationTime(time.UnixMilli(1600000000000)) // a clock that went back
	create(t, s, third)
	assert.Equal(t, int64(1700000000125), third.CreationTime.UnixMilli())
	assertSame(t, third, get(t, s, "cam"))

	drop()
	later := full("cam")
	later.SetCreationTime(time.UnixMilli(1800000000000)) // a later clock is kept
	create(t, s, later)
	assert.Equal(t, int64(1800000000000), get(t, s, "cam").CreationTime.UnixMilli())

	// A create that fails (the name is taken) notes nothing; other names are unaffected.
	require.ErrorIs(t, s.CreateStream(ctx, full("cam")), stream.ErrInUse)
	other := full("cam2")
	create(t, s, other)
	assert.Equal(t, int64(1700000000123), other.CreationTime.UnixMilli())
}

func testListOrder(t *testing.T, s stream.Store) {
	// Created out of order; listed in byte order of the names, which is what NextToken relies
	// on (a PostgreSQL store needs COLLATE "C": '-' < '.' < digits < upper case < '_' < lower case).
	for _, n := range []string{"b", "a_1", "a.1", "a", "B", "a-1", "a1", "A"} {
		create(t, s, minimal(n))
	}
	assert.Equal(t, []string{"A", "B", "a", "a-1", "a.1", "a1", "a_1", "b"}, list(t, s, "", "", 100))
	l, err := s.ListStreams(context.Background(), "", "", 100)
	require.NoError(t, err)
	assertSame(t, minimal("A"), l[0]) // whole streams, not just names
	assert.Equal(t, []string{"A", "B", "a"}, list(t, s, "", "", 3))
	assert.Equal(t, []string{"a1", "a_1"}, list(t, s, "", "a.1", 2))
	assert.Empty(t, list(t, s, "", "b", 10))
	assert.Empty(t, list(t, s, "", "zzz", 10))
}

func testListPrefix(t *testing.T, s stream.Store) {
	for _, n := range []string{"door-2", "cam-b", "door-1", "cam-a", "yard"} {
		create(t, s, minimal(n))
	}
	assert.Equal(t, []string{"cam-a", "cam-b"}, list(t, s, "cam-", "", 10))
	assert.Equal(t, []string{"door-1", "door-2"}, list(t, s, "door", "", 10))
	assert.Equal(t, []string{"door-2"}, list(t, s, "door", "door-1", 10))
	assert.Equal(t, []string{"door-1"}, list(t, s, "door", "", 1))
	assert.Equal(t, []string{"yard"}, list(t, s, "yard", "", 10), "exact name as prefix")
	// startAfter before the prefix range does not leak names outside it.
	assert.Equal(t, []string{"door-1", "door-2"}, list(t, s, "door", "cam-a", 10))
	assert.Empty(t, list(t, s, "door", "yard", 10))
	for _, p := range []string{"x", "ca_", "cam-c", "Cam", "a", "zzz"} {
		assert.Empty(t, list(t, s, p, "", 10), "prefix %q", p)
	}
}

func testListPagination(t *testing.T, s stream.Store) {
	var want []string
	for i := 24; i >= 0; i-- {
		n := fmt.Sprintf("cam-%02d", i)
		create(t, s, minimal(n))
		want = append([]string{n}, want...)
	}
	create(t, s, minimal("cam"), minimal("cam0"), minimal("ca-01")) // just outside the prefix
	var got []string
	after, pages := "", 0
	for {
		page := list(t, s, "cam-", after, 7)
		require.LessOrEqual(t, len(page), 7)
		got = append(got, page...)
		pages++
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1]
		require.Less(t, pages, 10, "pagination does not terminate")
	}
	assert.Equal(t, want, got, "every stream exactly once, in order")
	assert.Equal(t, 4, pages) // 7+7+7+4
}

func testListNestedPrefixes(t *testing.T, s stream.Store) {
	for _, n := range []string{"camera", "cam10", "cam", "cam1", "ca"} {
		create(t, s, minimal(n))
	}
	assert.Equal(t, []string{"cam", "cam1", "cam10", "camera"}, list(t, s, "cam", "", 10))
	assert.Equal(t, []string{"cam1", "cam10"}, list(t, s, "cam1", "", 10))
	assert.Equal(t, []string{"cam10"}, list(t, s, "cam10", "", 10))
	assert.Equal(t, []string{"cam1", "cam10", "camera"}, list(t, s, "cam", "cam", 10))
	assert.Equal(t, []string{"cam10", "camera"}, list(t, s, "cam", "cam1", 10))
	assert.Equal(t, []string{"camera"}, list(t, s, "cam", "cam10", 10))
	assert.Equal(t, []string{"cam10"}, list(t, s, "cam1", "cam1", 10))
	assert.Empty(t, list(t, s, "cam10", "cam10", 10))
	// A startAfter that is not itself a stream name still resumes at the right place.
	assert.Equal(t, []string{"cam1", "cam10", "camera"}, list(t, s, "cam", "cam0", 10))
	assert.Equal(t, []string{"camera"}, list(t, s, "cam", "cam2", 10))
	assert.Equal(t, []string{"ca", "cam", "cam1"}, list(t, s, "c", "", 3))
	// Each name is found by GetStream exactly, never by prefix.
	for _, n := range []string{"ca", "cam", "cam1", "cam10", "camera"} {
		assert.Equal(t, n, get(t, s, n).Name)
	}
	_, err := s.GetStream(context.Background(), "cam100")
	assert.ErrorIs(t, err, stream.ErrNotFound)
}
