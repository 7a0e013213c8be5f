// The C half of videosrc.FileSource: libavformat opens a file and hands out
// the packets of its first video stream. The Go side does the NAL work
// (internal/h26x), so this stays a thin loop over av_read_frame.
#ifndef KVSD_DEMUX_H
#define KVSD_DEMUX_H

#include <stdint.h>

typedef struct kv_demux kv_demux;

enum {
	KV_DEMUX_OTHER = -1, // a codec other than H.264/H.265: see codec_name
	KV_DEMUX_NO_VIDEO = -2,
};

// Returned by kv_demux_read when a packet has no timestamp.
#define KV_NOPTS INT64_MIN

typedef struct kv_demux_info {
	int codec;           // KV_H264, KV_HEVC (videosrc.h), KV_DEMUX_OTHER or KV_DEMUX_NO_VIDEO
	char codec_name[64]; // libavcodec's long name of the codec
	char format[32];     // the demuxer's short name ("mov,mp4,…", "h264", "hevc")
	int width, height;
	int tb_num, tb_den; // the stream's time base
	const uint8_t *extradata; // owned by the demuxer; valid until kv_demux_close
	int extradata_size;
} kv_demux_info;

// fps_num/fps_den, when not 0, set the frame rate that raw H.264/H.265
// streams (which carry no timestamps) are timed with.
int kv_demux_open(kv_demux **out, const char *path, int fps_num, int fps_den, kv_demux_info *info);
// kv_demux_read returns the next packet of the video stream: 0 with data
// valid until the next call, KV_EOF at the end, or a negative AVERROR.
int kv_demux_read(kv_demux *d, const uint8_t **data, int *size, int64_t *pts, int64_t *dts, int64_t *duration);
// kv_demux_progress gives the bytes read so far and the file's size
// (-1 when unknown, e.g. a pipe).
void kv_demux_progress(kv_demux *d, int64_t *pos, int64_t *size);
void kv_demux_close(kv_demux *d);

#endif
