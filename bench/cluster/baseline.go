package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kvsd/kvsd/bench/internal/baseline"
	"github.com/kvsd/kvsd/internal/objstore/s3test"
)

// baselineTable is the baseline's index: one row per fragment.
const baselineTable = `CREATE TABLE IF NOT EXISTS baseline_fragments (
	stream   text NOT NULL,
	seq      bigint NOT NULL,
	key      text NOT NULL,
	size     bigint NOT NULL,
	at_ms    bigint NOT NULL,
	PRIMARY KEY (stream, seq)
)`

// serveBaseline is the baseline of the scaled node: the least a server must do to acknowledge
// a fragment durably in this design. Every fragBytes of a request body (the test file's mean
// fragment) it PUTs as one object to the same versitygw bucket kvsd uses, inserts one row into
// the same PostgreSQL database (one autocommitted INSERT, synchronous_commit as the server
// has it), and answers one JSON line, full duplex, as kvsd answers PERSISTED. No parsing, no
// signature check, no encryption. It runs until SIGTERM.
func serveBaseline(s3Endpoint, pgURL string, fragBytes int) error {
	if fragBytes <= 0 {
		return errors.New("-frag-bytes must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("baseline: connect to PostgreSQL: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, baselineTable); err != nil {
		return fmt.Errorf("baseline: create table: %w", err)
	}
	// The same client settings as kvsd's S3 media (internal/objstore): checksums only where
	// required, path-style.
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(s3Endpoint), UsePathStyle: true, Region: s3test.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(s3test.AccessKeyID, s3test.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
	})
	var seq atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := r.Header.Get("x-amzn-stream-name")
		rc, err := baseline.Begin(w)
		if err != nil {
			return
		}
		store := func(frag []byte) error {
			n := seq.Add(1)
			key := fmt.Sprintf("baseline/%s/%020d.rec", stream, n)
			if _, err := client.PutObject(r.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				Body: bytes.NewReader(frag), ContentLength: aws.Int64(int64(len(frag))), IfNoneMatch: aws.String("*")}); err != nil {
				return err
			}
			if _, err := pool.Exec(r.Context(), `INSERT INTO baseline_fragments (stream, seq, key, size, at_ms) VALUES ($1, $2, $3, $4, $5)`,
				stream, n, key, len(frag), time.Now().UnixMilli()); err != nil {
				return err
			}
			return baseline.Ack(w, rc)
		}
		buf := make([]byte, 0, fragBytes+64<<10)
		chunk := make([]byte, 64<<10)
		for {
			n, rerr := r.Body.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if len(buf) >= fragBytes {
				if store(buf) != nil {
					return
				}
				buf = buf[:0]
			}
			if rerr != nil {
				if rerr == io.EOF && len(buf) > 0 {
					_ = store(buf)
				}
				return
			}
		}
	})
	return baseline.Serve(ctx, h)
}
