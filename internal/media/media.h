// The C half of package media: a decoder (libavcodec), a scaler (libswscale)
// and two encoders (libturbojpeg, libavcodec png) behind one handle, so the
// Go side makes a handful of small calls per image and never holds an
// FFmpeg struct. See media.c for why each step is done the way it is.
#ifndef KVSD_MEDIA_H
#define KVSD_MEDIA_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_dec kv_dec;

enum {
	KV_H264 = 0,
	KV_HEVC = 1,
};

// Scaled output layouts.
enum {
	KV_OUT_YUV420 = 0, // full-range 8-bit 4:2:0 planes, for JPEG
	KV_OUT_RGB24 = 1,  // packed RGB, for PNG
};

// Zero bytes the caller appends to each packet (AV_INPUT_BUFFER_PADDING_SIZE).
enum { KV_PADDING = 64 };

// Return values besides 0 and negative AVERRORs.
enum {
	KV_AGAIN = -11,      // AVERROR(EAGAIN): send more input
	KV_EOF = -541478725, // AVERROR_EOF: drained
	KV_ENOMEM = -12,     // AVERROR(ENOMEM)
	KV_EJPEG = -1000001, // turbojpeg failed: see kv_jpeg_error
};

// Description of the picture kv_receive returned.
typedef struct kv_picture {
	int64_t pts; // the pts given to kv_send for its packet
	int width, height;
	int corrupt; // the decoder flagged it (concealed errors)
} kv_picture;

// CPU time the decoder's calls have spent, in nanoseconds, since kv_open: decode is
// kv_send, kv_receive and kv_reset; scale is kv_scale; encode is kv_jpeg and kv_png.
typedef struct kv_cpu {
	int64_t decode_ns, scale_ns, encode_ns;
} kv_cpu;

void kv_quiet_logs(void);
int kv_open(kv_dec **out, int codec, const uint8_t *extradata, int size);
void kv_close(kv_dec *d);
void kv_reset(kv_dec *d);
void kv_set_loop_filter(kv_dec *d, int on);
int kv_send(kv_dec *d, const uint8_t *data, int size, int64_t pts);
int kv_receive(kv_dec *d, kv_picture *pic);
int kv_scale(kv_dec *d, int width, int height, int layout);
int kv_jpeg(kv_dec *d, int quality, const uint8_t **buf, size_t *size);
const char *kv_jpeg_error(kv_dec *d);
int kv_png(kv_dec *d, const uint8_t **buf, size_t *size);
void kv_strerror(int err, char *buf, size_t size);
void kv_cpu_times(kv_dec *d, kv_cpu *out);

#endif
