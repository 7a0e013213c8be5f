package producer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/kvsd/kvsd/producer"
)

// Stream a Matroska file to a local kvsd, tagging every second fragment for
// image generation, until the file ends or Ctrl-C.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	aws, err := config.LoadDefaultConfig(ctx) // AWS_ACCESS_KEY_ID … as kvsd printed them
	if err != nil {
		log.Fatal(err)
	}
	p, err := producer.New(producer.Config{
		Endpoint:         "http://127.0.0.1:4580", // empty for AWS
		Region:           aws.Region,
		Credentials:      aws.Credentials,
		StreamName:       "cam-1",
		FragmentDuration: 2 * time.Second,
		ImageGeneration:  true,
		ImageEvery:       2,
		Metadata:         []producer.Tag{{Name: "zone", Value: "A"}},
		OnEvent: func(ev producer.Event) {
			if ev.Kind == producer.EventFragmentSkipped {
				log.Printf("fragment at %s lost: %v", ev.Timecode, ev.Err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Open("clip.mkv")
	if err != nil {
		log.Fatal(err)
	}
	src := producer.NewMKVSource(f, false) // a file: paced to real time
	defer src.Close()
	st, err := p.Run(ctx, src)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d fragments persisted, %d not confirmed\n", st.Persisted, st.Pending)
}
