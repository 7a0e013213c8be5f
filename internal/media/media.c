//go:build cgo

// The build constraint above keeps this file out of CGO_ENABLED=0 builds,
// where a .c file in the package would be an error.

#include "media.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <turbojpeg.h>

_Static_assert(KV_PADDING == AV_INPUT_BUFFER_PADDING_SIZE, "KV_PADDING");
_Static_assert(KV_AGAIN == AVERROR(EAGAIN), "KV_AGAIN");
_Static_assert(KV_EOF == AVERROR_EOF, "KV_EOF");
_Static_assert(KV_ENOMEM == AVERROR(ENOMEM), "KV_ENOMEM");

struct kv_dec {
	AVCodecContext *dec;
	AVPacket *pkt;
	AVFrame *frame; // the last picture kv_receive returned

	// The scaler is rebuilt only when one of these changes.
	struct SwsContext *sws;
	int sws_sw, sws_sh, sws_sfmt, sws_srange, sws_cs, sws_dw, sws_dh, sws_layout;
	AVFrame *out; // scaled picture (refcounted: the png encoder takes a reference)

	tjhandle tj;
	unsigned char *jpeg; // turbojpeg output buffer, reused; jpeg_cap is a lower bound of its size
	unsigned long jpeg_cap;

	AVCodecContext *png; // opened for one size, reopened when it changes
	AVPacket *png_pkt;

	kv_cpu cpu; // see kv_cpu_times
};

// thread_ns is the calling thread's CPU time. The stage times are CPU time, not wall time:
// a wall clock around a call also counts the time the thread waited for a core (other
// processes, kernel work such as writeback run on that core, and on the Go side getting a P
// back after the call), which on a busy machine can exceed the work itself. A cgo call runs
// on one thread from start to end, so the thread's clock measures this call's work.
static int64_t thread_ns(void) {
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void kv_cpu_times(kv_dec *d, kv_cpu *out) { *out = d->cpu; }

void kv_quiet_logs(void) {
	// Errors come back as return values; a server must not have libav
	// writing to its stderr for every damaged packet.
	av_log_set_level(AV_LOG_QUIET);
}

void kv_strerror(int err, char *buf, size_t size) { av_strerror(err, buf, size); }

int kv_open(kv_dec **out, int codec, const uint8_t *extradata, int size) {
	*out = NULL;
	const AVCodec *c = avcodec_find_decoder(codec == KV_HEVC ? AV_CODEC_ID_HEVC : AV_CODEC_ID_H264);
	if (!c)
		return AVERROR_DECODER_NOT_FOUND;
	kv_dec *d = av_mallocz(sizeof *d);
	if (!d)
		return KV_ENOMEM;
	int ret = KV_ENOMEM;
	if (!(d->dec = avcodec_alloc_context3(c)) || !(d->pkt = av_packet_alloc()) ||
	    !(d->frame = av_frame_alloc()) || !(d->out = av_frame_alloc()) ||
	    !(d->png_pkt = av_packet_alloc()))
		goto fail;
	if (size > 0) {
		// extradata is Go memory, valid only during this call: copy it,
		// with the zero padding libavcodec's bitstream readers need.
		d->dec->extradata = av_mallocz(size + AV_INPUT_BUFFER_PADDING_SIZE);
		if (!d->dec->extradata)
			goto fail;
		memcpy(d->dec->extradata, extradata, size);
		d->dec->extradata_size = size;
	}
	// One thread per decoder: parallelism comes from decoding many streams
	// at once, and frame threading costs more CPU per frame and adds delay.
	d->dec->thread_count = 1;
	d->dec->thread_type = 0;
	if ((ret = avcodec_open2(d->dec, c, NULL)) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	kv_close(d);
	return ret;
}

void kv_close(kv_dec *d) {
	if (!d)
		return;
	avcodec_free_context(&d->dec);
	av_packet_free(&d->pkt);
	av_frame_free(&d->frame);
	sws_freeContext(d->sws);
	av_frame_free(&d->out);
	if (d->tj)
		tjDestroy(d->tj);
	if (d->jpeg)
		tjFree(d->jpeg);
	avcodec_free_context(&d->png);
	av_packet_free(&d->png_pkt);
	av_free(d);
}

// kv_reset forgets every reference picture and leaves draining mode, so
// decoding can start again at a keyframe.
void kv_reset(kv_dec *d) {
	int64_t t0 = thread_ns();
	avcodec_flush_buffers(d->dec);
	av_frame_unref(d->frame);
	d->cpu.decode_ns += thread_ns() - t0;
}

// kv_set_loop_filter turns the in-loop deblocking filter on (the default,
// spec-exact decoding) or off for the packets sent from now on. H.264 reads
// the setting at every slice header and H.265 at every CTB, and both decode
// inside avcodec_send_packet (single-threaded), so a change takes effect at
// the next kv_send. Off is only for a picture that nothing decoded later
// references (the Go side decides: a keyframe alone, shrunk at least 2x):
// a reference picture must be exact, or every frame predicted from it
// drifts. H.265's SAO filter stays on either way.
void kv_set_loop_filter(kv_dec *d, int on) {
	d->dec->skip_loop_filter = on ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
}

// kv_send decodes one packet; data == NULL starts draining. data is Go
// memory: the packet is not refcounted (pkt->buf == NULL), so libavcodec
// copies it before returning and nothing keeps the pointer after the call.
// The caller pads it with AV_INPUT_BUFFER_PADDING_SIZE zero bytes.
int kv_send(kv_dec *d, const uint8_t *data, int size, int64_t pts) {
	int64_t t0 = thread_ns();
	int ret;
	if (!data) {
		ret = avcodec_send_packet(d->dec, NULL);
	} else {
		d->pkt->data = (uint8_t *)data;
		d->pkt->size = size;
		d->pkt->pts = pts;
		d->pkt->dts = AV_NOPTS_VALUE;
		ret = avcodec_send_packet(d->dec, d->pkt);
		d->pkt->data = NULL;
		d->pkt->size = 0;
	}
	d->cpu.decode_ns += thread_ns() - t0;
	return ret;
}

// kv_receive returns the next decoded picture, if any, in d->frame; it stays
// valid until the next kv_receive or kv_reset.
int kv_receive(kv_dec *d, kv_picture *pic) {
	int64_t t0 = thread_ns();
	int ret = avcodec_receive_frame(d->dec, d->frame);
	d->cpu.decode_ns += thread_ns() - t0;
	if (ret < 0)
		return ret;
	pic->pts = d->frame->pts;
	pic->width = d->frame->width;
	pic->height = d->frame->height;
	pic->corrupt = (d->frame->flags & AV_FRAME_FLAG_CORRUPT) || d->frame->decode_error_flags;
	return 0;
}

// source_format maps the deprecated full-range "J" formats to their plain
// equivalents (the range is passed separately), which keeps swscale from
// warning and from applying the range twice.
static enum AVPixelFormat source_format(enum AVPixelFormat f, int *full) {
	switch (f) {
	case AV_PIX_FMT_YUVJ420P: *full = 1; return AV_PIX_FMT_YUV420P;
	case AV_PIX_FMT_YUVJ422P: *full = 1; return AV_PIX_FMT_YUV422P;
	case AV_PIX_FMT_YUVJ444P: *full = 1; return AV_PIX_FMT_YUV444P;
	case AV_PIX_FMT_YUVJ440P: *full = 1; return AV_PIX_FMT_YUV440P;
	case AV_PIX_FMT_YUVJ411P: *full = 1; return AV_PIX_FMT_YUV411P;
	default: return f;
	}
}

// sws_colorspace picks the YUV->RGB matrix the stream signals; unsignalled
// streams get BT.601, as the ffmpeg CLI does.
static int sws_colorspace(enum AVColorSpace cs) {
	switch (cs) {
	case AVCOL_SPC_BT709: return SWS_CS_ITU709;
	case AVCOL_SPC_FCC: return SWS_CS_FCC;
	case AVCOL_SPC_SMPTE240M: return SWS_CS_SMPTE240M;
	case AVCOL_SPC_BT2020_NCL:
	case AVCOL_SPC_BT2020_CL: return SWS_CS_BT2020;
	default: return SWS_CS_DEFAULT;
	}
}

// scale (kv_scale) converts d->frame to width x height in the given layout, into
// d->out. The output is always full range: cameras send limited-range
// video and JPEG/PNG viewers assume full range, so without this blacks
// come out grey. The ranges are set as options before sws_init_context,
// not with sws_setColorspaceDetails afterwards, because swscale picks its
// unscaled fast path (a plain copy for same-size YUV420P) at init time and
// takes it only when the ranges already differ there. Bicubic matches the
// ffmpeg CLI; the cheaper point/fast-bilinear filters alias.
static int scale(kv_dec *d, int width, int height, int layout) {
	AVFrame *f = d->frame;
	int full = f->color_range == AVCOL_RANGE_JPEG;
	enum AVPixelFormat sfmt = source_format(f->format, &full);
	int cs = sws_colorspace(f->colorspace);
	enum AVPixelFormat dfmt = layout == KV_OUT_RGB24 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;
	int ret;

	if (!d->sws || d->sws_sw != f->width || d->sws_sh != f->height || d->sws_sfmt != sfmt ||
	    d->sws_srange != full || d->sws_cs != cs || d->sws_dw != width || d->sws_dh != height ||
	    d->sws_layout != layout) {
		sws_freeContext(d->sws);
		d->sws = sws_alloc_context();
		if (!d->sws)
			return KV_ENOMEM;
		av_opt_set_int(d->sws, "srcw", f->width, 0);
		av_opt_set_int(d->sws, "srch", f->height, 0);
		av_opt_set_int(d->sws, "src_format", sfmt, 0);
		av_opt_set_int(d->sws, "src_range", full, 0);
		av_opt_set_int(d->sws, "dstw", width, 0);
		av_opt_set_int(d->sws, "dsth", height, 0);
		av_opt_set_int(d->sws, "dst_format", dfmt, 0);
		av_opt_set_int(d->sws, "dst_range", 1, 0);
		// Shrinking (the usual case: 1080p to a thumbnail) averages each output pixel's source
		// area: no aliasing, and about 40 % cheaper than bicubic at 1080p to 320x240. Growing
		// or keeping the size interpolates with bicubic, as the ffmpeg CLI does.
		int shrink = width < f->width && height < f->height;
		int filter = shrink ? SWS_AREA : SWS_BICUBIC;
		av_opt_set_int(d->sws, "sws_flags", filter | (layout == KV_OUT_RGB24 ? SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT : 0), 0);
		if ((ret = sws_init_context(d->sws, NULL, NULL)) < 0) {
			sws_freeContext(d->sws);
			d->sws = NULL;
			return ret;
		}
		if (layout == KV_OUT_RGB24) {
			// The matrix matters only when converting to RGB.
			const int *coef = sws_getCoefficients(cs);
			sws_setColorspaceDetails(d->sws, coef, full, coef, 1, 0, 1 << 16, 1 << 16);
		}
		d->sws_sw = f->width;
		d->sws_sh = f->height;
		d->sws_sfmt = sfmt;
		d->sws_srange = full;
		d->sws_cs = cs;
		d->sws_dw = width;
		d->sws_dh = height;
		d->sws_layout = layout;
	}

	if (d->out->format != dfmt || d->out->width != width || d->out->height != height) {
		av_frame_unref(d->out);
		d->out->format = dfmt;
		d->out->width = width;
		d->out->height = height;
		if ((ret = av_frame_get_buffer(d->out, 0)) < 0) {
			av_frame_unref(d->out);
			return ret;
		}
	} else if ((ret = av_frame_make_writable(d->out)) < 0) {
		return ret;
	}
	d->out->color_range = AVCOL_RANGE_JPEG;
	ret = sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, d->out->data,
	                d->out->linesize);
	return ret < 0 ? ret : 0;
}

// jpeg (kv_jpeg) compresses d->out (KV_OUT_YUV420) straight from its planes, so
// there is no RGB step; the quality is libjpeg's 1-100 scale, which is
// KVS's JPEGQuality. *buf stays valid until the next kv_jpeg or kv_close.
static int jpeg(kv_dec *d, int quality, const uint8_t **buf, size_t *size) {
	if (!d->tj && !(d->tj = tjInitCompress()))
		return KV_EJPEG;
	// For 4:2:0, turbojpeg reads the luma plane rounded up to even width and
	// height (tjPlaneWidth/tjPlaneHeight). For odd sizes that extra column
	// or row is frame padding that swscale never wrote, and its garbage
	// would ring into the visible edge pixels, differently on every run:
	// replicate the last column and row into it. av_frame_get_buffer
	// aligns linesize and pads the height to 32, so the room is there.
	int w = d->out->width, h = d->out->height, ls = d->out->linesize[0];
	uint8_t *y = d->out->data[0];
	if (w & 1)
		for (int r = 0; r < h; r++)
			y[r * ls + w] = y[r * ls + w - 1];
	if (h & 1)
		memcpy(y + h * ls, y + (h - 1) * ls, w + (w & 1));
	const unsigned char *planes[3] = {d->out->data[0], d->out->data[1], d->out->data[2]};
	int strides[3] = {d->out->linesize[0], d->out->linesize[1], d->out->linesize[2]};
	// The buffer is reused; turbojpeg grows it (realloc) when the image
	// does not fit. jpeg_cap tells it how much room the buffer has.
	unsigned long n = d->jpeg_cap;
	if (tjCompressFromYUVPlanes(d->tj, planes, d->out->width, strides, d->out->height, TJSAMP_420, &d->jpeg, &n,
	                            quality, 0) < 0)
		return KV_EJPEG;
	// After a realloc only the output size is known for sure.
	if (n > d->jpeg_cap)
		d->jpeg_cap = n;
	*buf = d->jpeg;
	*size = n;
	return 0;
}

const char *kv_jpeg_error(kv_dec *d) { return d->tj ? tjGetErrorStr2(d->tj) : "tjInitCompress failed"; }

// open_png (re)opens the png encoder for the size of d->out; an encoder
// context is bound to one size.
static int open_png(kv_dec *d) {
	if (d->png && d->png->width == d->out->width && d->png->height == d->out->height)
		return 0;
	avcodec_free_context(&d->png);
	const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_PNG);
	if (!c)
		return AVERROR_ENCODER_NOT_FOUND;
	if (!(d->png = avcodec_alloc_context3(c)))
		return KV_ENOMEM;
	d->png->width = d->out->width;
	d->png->height = d->out->height;
	d->png->pix_fmt = AV_PIX_FMT_RGB24;
	d->png->time_base = (AVRational){1, 1}; // required by avcodec_open2, unused
	d->png->thread_count = 1;
	int ret = avcodec_open2(d->png, c, NULL);
	if (ret < 0)
		avcodec_free_context(&d->png);
	return ret;
}

// png (kv_png) encodes d->out (KV_OUT_RGB24). *buf stays valid until the next
// kv_png or kv_close.
static int png(kv_dec *d, const uint8_t **buf, size_t *size) {
	int ret = open_png(d);
	if (ret < 0)
		return ret;
	av_packet_unref(d->png_pkt);
	d->out->pts = AV_NOPTS_VALUE;
	if ((ret = avcodec_send_frame(d->png, d->out)) < 0)
		return ret;
	// png is an intra-only encoder without delay: one frame in, one packet
	// out, and the encoder drops its reference to d->out here.
	if ((ret = avcodec_receive_packet(d->png, d->png_pkt)) < 0)
		return ret;
	*buf = d->png_pkt->data;
	*size = d->png_pkt->size;
	return 0;
}

// The scaler's and encoders' entry points: their work, timed (see thread_ns).

int kv_scale(kv_dec *d, int width, int height, int layout) {
	int64_t t0 = thread_ns();
	int ret = scale(d, width, height, layout);
	d->cpu.scale_ns += thread_ns() - t0;
	return ret;
}

int kv_jpeg(kv_dec *d, int quality, const uint8_t **buf, size_t *size) {
	int64_t t0 = thread_ns();
	int ret = jpeg(d, quality, buf, size);
	d->cpu.encode_ns += thread_ns() - t0;
	return ret;
}

int kv_png(kv_dec *d, const uint8_t **buf, size_t *size) {
	int64_t t0 = thread_ns();
	int ret = png(d, buf, size);
	d->cpu.encode_ns += thread_ns() - t0;
	return ret;
}
