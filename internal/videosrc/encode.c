//go:build cgo

#include "encode.h"
#include "videosrc.h"

#include <string.h>
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/opt.h>

struct kv_enc {
	AVCodecContext *ctx;
	AVFrame *frame;
	AVPacket *pkt;
};

void kv_enc_close(kv_enc *e) {
	if (!e)
		return;
	avcodec_free_context(&e->ctx);
	av_frame_free(&e->frame);
	av_packet_free(&e->pkt);
	av_free(e);
}

int kv_enc_open(kv_enc **out, int width, int height, int fps, int64_t bitrate, int gop) {
	*out = NULL;
	const AVCodec *c = avcodec_find_encoder_by_name("libx264");
	if (!c)
		return AVERROR_ENCODER_NOT_FOUND;
	kv_enc *e = av_mallocz(sizeof *e);
	if (!e)
		return KV_ENOMEM;
	int ret = KV_ENOMEM;
	if (!(e->ctx = avcodec_alloc_context3(c)) || !(e->frame = av_frame_alloc()) || !(e->pkt = av_packet_alloc()))
		goto fail;
	AVCodecContext *x = e->ctx;
	x->width = width;
	x->height = height;
	x->pix_fmt = AV_PIX_FMT_YUV420P;
	x->time_base = (AVRational){1, fps};
	x->framerate = (AVRational){fps, 1};
	x->gop_size = gop;
	x->keyint_min = gop; // a keyframe exactly every gop frames, as cameras do
	x->max_b_frames = 0;
	x->bit_rate = bitrate;
	x->rc_max_rate = bitrate;
	x->rc_buffer_size = bitrate; // one second of VBV: a steady rate, camera-like
	// Parameter sets once, in the global header: the source puts them in
	// the track's codec private data.
	x->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
	av_opt_set(x->priv_data, "preset", "veryfast", 0);
	// zerolatency: no lookahead and no frame threading, so each picture
	// comes out as soon as it goes in.
	av_opt_set(x->priv_data, "tune", "zerolatency", 0);
	av_opt_set(x->priv_data, "x264-params", "scenecut=0", 0);
	if ((ret = avcodec_open2(x, c, NULL)) < 0)
		goto fail;
	e->frame->format = x->pix_fmt;
	e->frame->width = width;
	e->frame->height = height;
	if ((ret = av_frame_get_buffer(e->frame, 0)) < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	kv_enc_close(e);
	return ret;
}

const uint8_t *kv_enc_extradata(kv_enc *e, int *size) {
	*size = e->ctx->extradata_size;
	return e->ctx->extradata;
}

// Colour bars in limited-range BT.601: white, yellow, cyan, green,
// magenta, red, blue, black.
static const uint8_t bars[8][3] = {
	{235, 128, 128}, {210, 16, 146}, {170, 166, 16}, {145, 54, 34},
	{106, 202, 222}, {81, 90, 240},  {41, 240, 110}, {16, 128, 128},
};

// Seven-segment digits: bits a (top), b, c, d, e, f, g (middle).
static const uint8_t segments[10] = {0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f};

static void fill(AVFrame *f, int x0, int y0, int w, int h, const uint8_t *yuv) {
	if (x0 < 0) { w += x0; x0 = 0; }
	if (y0 < 0) { h += y0; y0 = 0; }
	if (x0 + w > f->width) w = f->width - x0;
	if (y0 + h > f->height) h = f->height - y0;
	if (w <= 0 || h <= 0)
		return;
	for (int y = y0; y < y0 + h; y++)
		memset(f->data[0] + (ptrdiff_t)y * f->linesize[0] + x0, yuv[0], w);
	for (int y = y0 / 2; y < (y0 + h + 1) / 2; y++) {
		memset(f->data[1] + (ptrdiff_t)y * f->linesize[1] + x0 / 2, yuv[1], (w + 1) / 2);
		memset(f->data[2] + (ptrdiff_t)y * f->linesize[2] + x0 / 2, yuv[2], (w + 1) / 2);
	}
}

// draw paints picture n: bars scrolling left, a box bouncing across them,
// and the frame number in seven-segment digits at the top left.
static void draw(AVFrame *f, int64_t n) {
	int w = f->width, h = f->height;
	int bw = (w + 7) / 8;
	int shift = (int)((n * 4) % (8 * bw));
	for (int i = 0; i < 9; i++) {
		int x = i * bw - shift % bw;
		fill(f, x, 0, bw, h, bars[(i + shift / bw) % 8]);
	}
	int box = h / 6 > 4 ? h / 6 : 4;
	int rx = w - box > 1 ? w - box : 1, ry = h - box > 1 ? h - box : 1;
	int bx = (int)((n * 7) % (2 * rx)), by = (int)((n * 5) % (2 * ry));
	if (bx >= rx) bx = 2 * rx - bx;
	if (by >= ry) by = 2 * ry - by;
	static const uint8_t grey[3] = {128, 128, 128}, black[3] = {16, 128, 128}, white[3] = {235, 128, 128};
	fill(f, bx, by, box, box, grey);
	// Digits: 8 of them, each dw wide, segments t thick.
	int dw = w / 32 > 6 ? w / 32 : 6, dh = 2 * dw, t = dw / 5 > 1 ? dw / 5 : 1;
	int m = dw / 2;
	fill(f, 0, 0, 8 * (dw + m) + m, dh + 2 * m, black);
	int64_t v = n;
	for (int i = 7; i >= 0; i--) {
		uint8_t s = segments[v % 10];
		v /= 10;
		int x = m + i * (dw + m), y = m;
		if (s & 0x01) fill(f, x, y, dw, t, white);
		if (s & 0x02) fill(f, x + dw - t, y, t, dh / 2, white);
		if (s & 0x04) fill(f, x + dw - t, y + dh / 2, t, dh / 2, white);
		if (s & 0x08) fill(f, x, y + dh - t, dw, t, white);
		if (s & 0x10) fill(f, x, y + dh / 2, t, dh / 2, white);
		if (s & 0x20) fill(f, x, y, t, dh / 2, white);
		if (s & 0x40) fill(f, x, y + dh / 2 - t / 2, dw, t, white);
	}
}

int kv_enc_send(kv_enc *e, int64_t n) {
	if (n < 0)
		return avcodec_send_frame(e->ctx, NULL);
	int ret = av_frame_make_writable(e->frame);
	if (ret < 0)
		return ret;
	draw(e->frame, n);
	e->frame->pts = n;
	return avcodec_send_frame(e->ctx, e->frame);
}

int kv_enc_receive(kv_enc *e, const uint8_t **data, int *size, int64_t *pts) {
	av_packet_unref(e->pkt);
	int ret = avcodec_receive_packet(e->ctx, e->pkt);
	if (ret < 0)
		return ret;
	*data = e->pkt->data;
	*size = e->pkt->size;
	*pts = e->pkt->pts;
	return 0;
}
