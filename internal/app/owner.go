package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/kvsd/kvsd/internal/catalog/postgres"
	"github.com/kvsd/kvsd/internal/stream"
)

// proxiedHeader marks a GetMedia a node proxied to a stream's owner; the owner serves it
// whatever its own view of the lease, so a request never goes round in circles.
const proxiedHeader = "X-Kvsd-Proxied-By"

// liveOwners proxies GetMedia of streams without retention to the node ingesting them: their
// fragments are only in that node's memory (the live buffer), never in the shared store.
type liveOwners struct {
	db      *postgres.DB
	streams *stream.Service
	self    string // this node's holder id (nodeID)
	log     *slog.Logger
}

func newLiveOwners(db *postgres.DB, streams *stream.Service, self string, log *slog.Logger) *liveOwners {
	return &liveOwners{db: db, streams: streams, self: self, log: log}
}

// owner is kvsapi's LiveOwner: a proxy to the stream's owner when the stream has no retention
// and another node holds its lease; nil otherwise (the request is served here, and ends with
// the usual answers when the stream is not found or has nothing live here).
func (o *liveOwners) owner(r *http.Request, ref stream.Ref) func(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get(proxiedHeader) != "" {
		return nil
	}
	ctx := r.Context()
	st, err := o.streams.Describe(ctx, ref)
	if err != nil || st.RetentionHours != 0 {
		return nil
	}
	holder, err := o.db.LeaseHolder(ctx, st.Name)
	if err != nil {
		o.log.Warn("GetMedia: looking up the node that ingests the stream; serving here", "stream", st.Name, "err", err)
		return nil
	}
	if holder == "" || holder == o.self {
		return nil
	}
	target, err := url.Parse(nodeURLOf(holder))
	if err != nil || target.Host == "" {
		o.log.Warn("GetMedia: the node that ingests the stream names no URL; serving here", "stream", st.Name, "holder", holder)
		return nil
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		var perr error
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host // signed by the client: the owner verifies it as sent
				pr.Out.Header.Set(proxiedHeader, o.self)
			},
			FlushInterval: -1, // live media: every write goes out at once
			ErrorHandler:  func(_ http.ResponseWriter, _ *http.Request, err error) { perr = err },
		}
		proxy.ServeHTTP(w, r)
		if perr != nil {
			return fmt.Errorf("stream %s has no retention and is ingested by node %s, which did not answer: %w", st.Name, target, perr)
		}
		return nil
	}
}
