// What the C halves of package videosrc share: codec and return values
// (the same numbers as package media's media.h, checked against libav's
// below) and the two libav calls the Go side makes besides its own.
// Everything here is static, so that videosrc and media link into one
// binary without clashing symbols.
#ifndef KVSD_VIDEOSRC_H
#define KVSD_VIDEOSRC_H

#include <errno.h>
#include <stddef.h>
#include <libavutil/error.h>
#include <libavutil/log.h>

enum {
	KV_H264 = 0,
	KV_HEVC = 1,
};

// Return values besides 0 and negative AVERRORs.
enum {
	KV_AGAIN = -11,      // AVERROR(EAGAIN): send more input
	KV_EOF = -541478725, // AVERROR_EOF: drained
	KV_ENOMEM = -12,     // AVERROR(ENOMEM)
};

_Static_assert(KV_AGAIN == AVERROR(EAGAIN), "KV_AGAIN");
_Static_assert(KV_EOF == AVERROR_EOF, "KV_EOF");
_Static_assert(KV_ENOMEM == AVERROR(ENOMEM), "KV_ENOMEM");

// vs_quiet_logs keeps libav off stderr: errors come back as return values.
static inline void vs_quiet_logs(void) { av_log_set_level(AV_LOG_QUIET); }

static inline void vs_strerror(int err, char *buf, size_t size) { av_strerror(err, buf, size); }

#endif
