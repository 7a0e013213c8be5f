package kvsapi

import "net/http"

// CORS as the KVS endpoint answers it (§14), so browser pages (the AWS media viewer, hls.js,
// dash.js, Shaka) work against kvsd: every response allows any origin; preflight OPTIONS
// requests are answered here, before authentication, echoing the headers the browser asks for.
const (
	corsExposeAPI      = "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date"
	corsExposePlayback = "Content-Length,Content-Range," + corsExposeAPI
	corsMaxAge         = "172800"
)

func (h *Handler) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", "*")
		playback := isPlaybackPath(r.URL.Path)
		if playback {
			hd.Set("Access-Control-Expose-Headers", corsExposePlayback)
		} else {
			hd.Set("Access-Control-Expose-Headers", corsExposeAPI)
		}
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		methods, headers := "POST", r.Header.Get("Access-Control-Request-Headers")
		if playback {
			methods = "GET, HEAD, OPTIONS"
			if headers == "" {
				headers = "Range"
			}
		}
		hd.Set("Access-Control-Allow-Methods", methods)
		if headers != "" {
			hd.Set("Access-Control-Allow-Headers", headers)
		}
		hd.Set("Access-Control-Max-Age", corsMaxAge)
		hd.Add("Vary", "Access-Control-Request-Headers")
		w.WriteHeader(http.StatusOK)
	})
}
