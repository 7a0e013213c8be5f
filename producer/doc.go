// Package producer streams H.264/H.265 video to a Kinesis Video stream, on
// kvsd or on AWS, the way the KVS producer SDK does: DescribeStream, then
// GetDataEndpoint and PutMedia for every connection, with an MKV body in
// the SDK's byte layout. It is the engine of `kvsd put` and can be embedded.
//
// A Source yields frames (NewMKVSource reads Matroska from a file or a
// pipe). Run cuts them into fragments that start on keyframes once the
// target duration is reached, stamps them with absolute epoch-millisecond
// timecodes (the wall clock for live sources; Config.StartTime plus the
// file's own times otherwise), writes the image-generation, notification
// and custom tags after each fragment's frames as the SDK does, and keeps
// every fragment in a bounded buffer until the server acknowledges it
// PERSISTED (RECEIVED on streams that keep no data).
//
// Failures are handled as the SDK handles them: on a dropped connection, a
// connection that stops acknowledging, or a retriable ERROR ack (4000,
// 4003, 5000, 5001, unknown ids) or ConnectionLimitExceeded (at most a second
// apart: the stream frees within seconds) Run reconnects with backoff and resends
// from the first fragment not persisted, so the stream may hold a fragment
// twice (KVS does the same); a non-retriable ERROR skips that fragment and
// reports it. Connections are renewed at a fragment boundary before the
// 45-minute limit. When ctx is done Run completes the fragment being built,
// ends the body and waits up to Config.StopTimeout for the last acks.
package producer
