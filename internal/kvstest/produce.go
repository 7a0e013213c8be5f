package kvstest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/kvsd/kvsd/producer"
)

// Produce streams src to the stream name of s with the producer package (what kvsd put runs:
// every frame sent as it comes, 1-s fragments) until stop is called or the test ends, then
// closes src. It returns once the first fragment is persisted, and fails the test when none
// is within 15 s. configure, if given, changes the producer's configuration first (tags, say).
func Produce(t testing.TB, s *Server, name string, src producer.Source, configure ...func(*producer.Config)) (stop func()) {
	t.Helper()
	first := make(chan struct{})
	var once sync.Once
	cfg := producer.Config{Endpoint: s.URL, Region: Region, StreamName: name,
		Credentials:      credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		FragmentDuration: time.Second,
		OnEvent: func(ev producer.Event) {
			if ev.Kind == producer.EventFragmentPersisted {
				once.Do(func() { close(first) })
			}
		}}
	for _, c := range configure {
		c(&cfg)
	}
	p, err := producer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, src)
		done <- err
	}()
	var stopOnce sync.Once
	stop = func() {
		stopOnce.Do(func() {
			cancel()
			<-done
			src.Close()
		})
	}
	t.Cleanup(stop)
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("the producer of %s ended before a fragment was persisted: %v", name, err)
	case <-time.After(15 * time.Second):
		t.Fatalf("no fragment of %s persisted in 15 s", name)
	}
	return stop
}
