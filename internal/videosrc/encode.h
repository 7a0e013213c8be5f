// The C half of videosrc.TestSource: draws a moving test pattern and encodes
// it with libx264 through libavcodec.
#ifndef KVSD_ENCODE_H
#define KVSD_ENCODE_H

#include <stdint.h>

typedef struct kv_enc kv_enc;

int kv_enc_open(kv_enc **out, int width, int height, int fps, int64_t bitrate, int gop);
// The encoder's global header: Annex-B SPS and PPS (and x264's SEI).
const uint8_t *kv_enc_extradata(kv_enc *e, int *size);
// kv_enc_send draws picture n (shown at n/fps) and sends it; n < 0 starts
// draining.
int kv_enc_send(kv_enc *e, int64_t n);
// kv_enc_receive returns 0 and a packet (Annex B, valid until the next
// call), KV_AGAIN when the encoder needs another picture, or KV_EOF.
int kv_enc_receive(kv_enc *e, const uint8_t **data, int *size, int64_t *pts);
void kv_enc_close(kv_enc *e);

#endif
