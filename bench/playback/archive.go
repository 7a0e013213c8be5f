package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/kvsd/kvsd/internal/putmedia"
)

// archiveStream is the stream sections 1 and 2 read: the test stream put once into a kvsd
// data dir, which each section then serves with a kvsd of its own.
const archiveStream = "archive"

// archive is that data dir and what it holds.
type archive struct {
	dir   string
	start time.Time // producer time of the first fragment
	frags []fragInfo
}

// fragInfo is one fragment as ListFragments answers it.
type fragInfo struct {
	Number   string
	Size     int64
	Producer time.Time
}

// archive puts the test stream into a new data dir on first use.
func (b *bench) archive(ctx context.Context) (*archive, error) {
	if b.arch != nil {
		return b.arch, nil
	}
	a := &archive{dir: filepath.Join(b.work, "kvsd-archive"), start: time.Now().Add(-time.Hour).Truncate(time.Second)}
	k, err := b.startKvsd("archive", a.dir)
	if err != nil {
		return nil, err
	}
	defer k.Stop()
	if err := k.createStreams(ctx, []string{archiveStream}, 24*365); err != nil {
		return nil, err
	}
	b.logf("archive: putting %d fragments (%.1f MB)", b.media.Clusters, float64(len(b.media.Raw))/1e6)
	persisted, errs := 0, 0
	var firstErr string
	err = k.putClient().Put(ctx, putmedia.Request{StreamName: archiveStream, TimecodeType: "RELATIVE", ProducerStart: a.start,
		Body: bytes.NewReader(b.media.Raw)}, func(ack putmedia.Ack) {
		switch ack.EventType {
		case "PERSISTED":
			persisted++
		case "ERROR":
			if errs++; firstErr == "" {
				firstErr = fmt.Sprintf("%d %s", ack.ErrorID, ack.ErrorCode)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("put the archive: %w", err)
	}
	if errs > 0 || persisted != b.media.Clusters {
		return nil, fmt.Errorf("put the archive: %d of %d fragments persisted, %d ERROR acks (first: %s)", persisted, b.media.Clusters, errs, firstErr)
	}
	if a.frags, err = k.listFragments(ctx, archiveStream, a.start.Add(-time.Second), a.start.Add(b.media.duration()+time.Minute)); err != nil {
		return nil, err
	}
	if len(a.frags) != b.media.Clusters {
		return nil, fmt.Errorf("ListFragments: %d fragments, want %d", len(a.frags), b.media.Clusters)
	}
	b.arch = a
	return a, nil
}

// listFragments lists a stream's fragments in a producer-time range, in producer-time order.
func (k *kvsd) listFragments(ctx context.Context, stream string, from, to time.Time) ([]fragInfo, error) {
	var out []fragInfo
	in := map[string]any{"StreamName": stream, "MaxResults": 1000, "FragmentSelector": map[string]any{
		"FragmentSelectorType": "PRODUCER_TIMESTAMP",
		"TimestampRange":       map[string]any{"StartTimestamp": epoch(from), "EndTimestamp": epoch(to)}}}
	for {
		var page struct {
			Fragments []struct {
				FragmentNumber      string
				FragmentSizeInBytes int64
				ProducerTimestamp   float64
			}
			NextToken *string
		}
		if err := k.call(ctx, "listFragments", in, &page); err != nil {
			return nil, err
		}
		for _, f := range page.Fragments {
			out = append(out, fragInfo{Number: f.FragmentNumber, Size: f.FragmentSizeInBytes,
				Producer: time.UnixMilli(int64(f.ProducerTimestamp*1000 + 0.5))})
		}
		if page.NextToken == nil {
			break
		}
		in = map[string]any{"StreamName": stream, "MaxResults": 1000, "NextToken": *page.NextToken}
	}
	slices.SortFunc(out, func(a, b fragInfo) int { return a.Producer.Compare(b.Producer) })
	return out, nil
}
