package main

import (
	"context"

	"github.com/kvsd/kvsd/bench/internal/promhist"
)

// scrapeHistogram reads one histogram from kvsd's /metrics (promhist.Scrape).
func (k *kvsd) scrapeHistogram(ctx context.Context, name string) promhist.Histogram {
	return promhist.Scrape(ctx, k.http, k.URL, name)
}
