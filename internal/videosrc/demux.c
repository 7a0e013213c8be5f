//go:build cgo

#include "demux.h"
#include "videosrc.h"

#include <stdio.h>
#include <string.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>

struct kv_demux {
	AVFormatContext *fmt;
	AVPacket *pkt;
	int stream;
};

void kv_demux_close(kv_demux *d) {
	if (!d)
		return;
	av_packet_free(&d->pkt);
	avformat_close_input(&d->fmt);
	av_free(d);
}

int kv_demux_open(kv_demux **out, const char *path, int fps_num, int fps_den, kv_demux_info *info) {
	*out = NULL;
	memset(info, 0, sizeof *info);
	kv_demux *d = av_mallocz(sizeof *d);
	if (!d)
		return KV_ENOMEM;
	AVDictionary *opts = NULL;
	if (fps_num > 0 && fps_den > 0) {
		// The raw h264 and hevc demuxers' "framerate" option; other
		// demuxers leave it unused in opts.
		char rate[48];
		snprintf(rate, sizeof rate, "%d/%d", fps_num, fps_den);
		av_dict_set(&opts, "framerate", rate, 0);
	}
	int ret = avformat_open_input(&d->fmt, path, NULL, &opts);
	av_dict_free(&opts);
	if (ret < 0)
		goto fail;
	if ((ret = avformat_find_stream_info(d->fmt, NULL)) < 0)
		goto fail;
	snprintf(info->format, sizeof info->format, "%s", d->fmt->iformat->name);
	d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (d->stream < 0) {
		info->codec = KV_DEMUX_NO_VIDEO;
		*out = d;
		return 0;
	}
	AVCodecParameters *par = d->fmt->streams[d->stream]->codecpar;
	const AVCodecDescriptor *desc = avcodec_descriptor_get(par->codec_id);
	snprintf(info->codec_name, sizeof info->codec_name, "%s", desc ? desc->long_name : "an unknown codec");
	switch (par->codec_id) {
	case AV_CODEC_ID_H264:
		info->codec = KV_H264;
		break;
	case AV_CODEC_ID_HEVC:
		info->codec = KV_HEVC;
		break;
	default:
		info->codec = KV_DEMUX_OTHER;
	}
	info->width = par->width;
	info->height = par->height;
	AVRational tb = d->fmt->streams[d->stream]->time_base;
	info->tb_num = tb.num;
	info->tb_den = tb.den;
	info->extradata = par->extradata;
	info->extradata_size = par->extradata_size;
	// Only the video stream's packets are wanted; the demuxer may skip
	// the others' data where it can.
	for (unsigned i = 0; i < d->fmt->nb_streams; i++)
		if ((int)i != d->stream)
			d->fmt->streams[i]->discard = AVDISCARD_ALL;
	if (!(d->pkt = av_packet_alloc())) {
		ret = KV_ENOMEM;
		goto fail;
	}
	*out = d;
	return 0;
fail:
	kv_demux_close(d);
	return ret;
}

int kv_demux_read(kv_demux *d, const uint8_t **data, int *size, int64_t *pts, int64_t *dts, int64_t *duration) {
	for (;;) {
		av_packet_unref(d->pkt);
		int ret = av_read_frame(d->fmt, d->pkt);
		if (ret < 0)
			return ret;
		if (d->pkt->stream_index != d->stream || d->pkt->size == 0)
			continue;
		*data = d->pkt->data;
		*size = d->pkt->size;
		*pts = d->pkt->pts == AV_NOPTS_VALUE ? KV_NOPTS : d->pkt->pts;
		*dts = d->pkt->dts == AV_NOPTS_VALUE ? KV_NOPTS : d->pkt->dts;
		*duration = d->pkt->duration;
		return 0;
	}
}

void kv_demux_progress(kv_demux *d, int64_t *pos, int64_t *size) {
	*pos = 0;
	*size = -1;
	if (d->fmt && d->fmt->pb) {
		*pos = avio_tell(d->fmt->pb);
		*size = avio_size(d->fmt->pb);
	}
}
