package browsertest

import (
	"time"
)

// wireReport is kvsdReport() of web/player.js as JSON: dates are milliseconds since the epoch,
// null where there is none.
type wireReport struct {
	Player  Player `json:"player"`
	Live    bool   `json:"live"`
	Ended   bool   `json:"ended"`
	Samples []struct {
		Wall       float64  `json:"wall"`
		Time       float64  `json:"time"`
		Date       *float64 `json:"date"`
		ReadyState int      `json:"readyState"`
	} `json:"samples"`
	Buffered          [][2]float64 `json:"buffered"`
	VideoWidth        int          `json:"videoWidth"`
	VideoHeight       int          `json:"videoHeight"`
	DecodedFrames     int          `json:"decodedFrames"`
	DroppedFrames     int          `json:"droppedFrames"`
	VideoDecodedBytes int64        `json:"videoDecodedBytes"`
	AudioDecodedBytes int64        `json:"audioDecodedBytes"`
	Errors            []struct {
		At      float64 `json:"at"`
		Fatal   bool    `json:"fatal"`
		Type    string  `json:"type"`
		Details string  `json:"details"`
		Message string  `json:"message"`
		URL     string  `json:"url"`
		Code    int     `json:"code"`
	} `json:"errors"`
	AudioTracks []struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Lang    string `json:"lang"`
		GroupID string `json:"groupId"`
		Default bool   `json:"default"`
		URL     string `json:"url"`
		Codec   string `json:"codec"`
	} `json:"audioTracks"`
	SessionURL string `json:"sessionURL"`
	Fragments  []struct {
		Type            string   `json:"type"`
		SN              int      `json:"sn"`
		Start           float64  `json:"start"`
		Duration        float64  `json:"duration"`
		ProgramDateTime *float64 `json:"programDateTime"`
		URL             string   `json:"url"`
	} `json:"fragments"`
}

func ms(v float64) time.Time {
	return time.UnixMicro(int64(v * 1000))
}

func msOrZero(v *float64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return ms(*v)
}

func (w *wireReport) result() Result {
	r := Result{
		Player: w.Player, Live: w.Live, Ended: w.Ended, SessionURL: w.SessionURL,
		VideoWidth: w.VideoWidth, VideoHeight: w.VideoHeight,
		DecodedFrames: w.DecodedFrames, DroppedFrames: w.DroppedFrames,
		VideoDecodedBytes: w.VideoDecodedBytes, AudioDecodedBytes: w.AudioDecodedBytes,
	}
	for _, s := range w.Samples {
		r.Samples = append(r.Samples, Sample{Wall: ms(s.Wall), CurrentTime: s.Time, PlayheadDate: msOrZero(s.Date), ReadyState: s.ReadyState})
		if s.Time > w.Samples[0].Time {
			r.Advanced = true
		}
		if s.Date != nil {
			r.Latency, r.HasLatency = time.Duration((s.Wall-*s.Date)*float64(time.Millisecond)), true
		}
	}
	for _, b := range w.Buffered {
		r.Buffered = append(r.Buffered, TimeRange{Start: b[0], End: b[1]})
	}
	for _, e := range w.Errors {
		r.Errors = append(r.Errors, PlayerError{At: ms(e.At), Fatal: e.Fatal, Type: e.Type, Details: e.Details, Message: e.Message, URL: e.URL, Code: e.Code})
	}
	for _, a := range w.AudioTracks {
		r.AudioTracks = append(r.AudioTracks, AudioTrack{ID: a.ID, Name: a.Name, Lang: a.Lang, GroupID: a.GroupID, Default: a.Default, URL: a.URL, Codec: a.Codec})
	}
	for _, f := range w.Fragments {
		r.Fragments = append(r.Fragments, Fragment{Type: f.Type, SN: f.SN, Start: f.Start, Duration: f.Duration, ProgramDateTime: msOrZero(f.ProgramDateTime), URL: f.URL})
	}
	return r
}
