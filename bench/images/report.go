package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/kvsd/kvsd/bench/internal/machine"
)

type reportInput struct {
	command    string
	started    time.Time
	wl         *workload
	rounds     int
	contenders []contender
	results    []measurement
	latency    *latency // nil: not measured
}

func writeReport(w io.Writer, in reportInput) {
	wl := in.wl
	fmt.Fprintf(w, "# Image generation: images per second per core\n\n")
	fmt.Fprintf(w, "- command: `%s`, %s\n", strings.TrimSpace(in.command), in.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s, %d cores, %s, %s; load average at the end %s\n",
		machine.CPUModel(), runtime.NumCPU(), runtime.Version(), "ffmpeg "+machine.FFmpegVersion(), loadAvg())
	fmt.Fprintf(w, "- video: %s, %.1f MB, %s, %d fragments of %s (one Cluster each, header + Cluster as stored)\n",
		wl.Track.CodecID, float64(wl.FileSize)/1e6, wl.Duration.Round(time.Millisecond), len(wl.Fragments), wl.FragmentDuration.Round(time.Millisecond))
	fmt.Fprintf(w, "- images: %d, one per %s, %d×%d JPEG (quality %d; ffmpeg: -q:v 4)\n",
		wl.Images(), wl.Interval, wl.Spec.Width, wl.Spec.Height, wl.Spec.Quality)
	fmt.Fprintf(w, "- each contender ran %d time(s), interleaved; the row is the run with the median CPU time. "+
		"CPU = user + system from getrusage (children for ffmpeg, this process for (a), (d) and (e)); "+
		"images/s per core = images ÷ CPU seconds. \"Other CPU\" is what the rest of the machine used meanwhile "+
		"(/proc/stat); well above zero means the run was disturbed.\n\n", in.rounds)

	var d measurement
	for i, c := range in.contenders {
		if c.id == "d" {
			d = in.results[i]
		}
	}
	fmt.Fprintln(w, "| | contender | images | CPU s | wall s | CPU ms/image | images/s per core | (d) ÷ this | other CPU s |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for i, c := range in.contenders {
		m := in.results[i]
		if m.NotMeasured {
			fmt.Fprintf(w, "| (%s) | %s | – | – | – | – | %s | – | – |\n", c.id, c.what, m.Note)
			continue
		}
		ratio := "1.00×"
		if c.id != "d" {
			ratio = fmt.Sprintf("%.2f×", d.ImagesPerCore()/m.ImagesPerCore())
		}
		other := max(0, m.MachineCPU-m.CPU)
		fmt.Fprintf(w, "| (%s) | %s | %d | %.3f | %.3f | %.2f | **%.1f** | %s | %.2f |\n",
			c.id, c.what, m.Images, m.CPU.Seconds(), m.Wall.Seconds(),
			m.CPU.Seconds()*1e3/float64(m.Images), m.ImagesPerCore(), ratio, other.Seconds())
	}
	fmt.Fprintln(w)
	for i, c := range in.contenders {
		m := in.results[i]
		if s := m.Stages; s != nil && m.Images > 0 {
			fmt.Fprintf(w, "(%s) %s; %d packets decoded (%d of them keyframes without the deblocking filter), "+
				"%d skipped (selective decoding).\n",
				c.id, stages(m), s.Decoded, s.Unfiltered, s.Skipped)
		}
	}

	fmt.Fprintln(w, "\n## Targets (issue 4)")
	fmt.Fprintln(w, "\n| target | now | met |")
	fmt.Fprintln(w, "|---|---|---|")
	var a, a0, b, c measurement
	for i, ct := range in.contenders {
		switch ct.id {
		case "a":
			a = in.results[i]
		case "a0":
			a0 = in.results[i]
		case "b":
			b = in.results[i]
		case "c":
			c = in.results[i]
		}
	}
	target := func(name string, ref measurement, refID string, factor float64) {
		if a.NotMeasured {
			limit := ""
			if refID != "d" && ref.ImagesPerCore() > 0 {
				limit = fmt.Sprintf("; the limit (d) is %.2f× (%s)", d.ImagesPerCore()/ref.ImagesPerCore(), refID)
			}
			fmt.Fprintf(w, "| %s | (a) not measured%s | pending |\n", name, limit)
			return
		}
		got := a.ImagesPerCore() / ref.ImagesPerCore()
		fmt.Fprintf(w, "| %s | %.2f× | %s |\n", name, got, yesNo(got >= factor))
	}
	if !a.NotMeasured && a0.ImagesPerCore() > 0 {
		fmt.Fprintf(w, "| encryption at rest: (a) ÷ (a0), reported | %.2f× | – |\n", a.ImagesPerCore()/a0.ImagesPerCore())
	}
	target("(a) ≥ 90 % of (d)", d, "d", 0.9)
	target("(a) ≥ 1.2 × (b)", b, "b", 1.2)
	target("(a) ≥ 10 × (c)", c, "c", 10)
	if l := in.latency; l != nil {
		fmt.Fprintf(w, "| PERSISTED → object visible, p99 ≤ 500 ms with %d streams | %s | %s |\n",
			l.Streams, ms(l.P99), yesNo(l.P99 <= 500*time.Millisecond && l.Missing == 0))
		writeLatency(w, *l, wl)
	}
}

// writeLatency reports the delivery-latency section.
func writeLatency(w io.Writer, l latency, wl *workload) {
	fmt.Fprintf(w, "\n## Delivery latency: fragment PERSISTED → image visible\n\n")
	fmt.Fprintf(w, "kvsd (in this process, the code of `kvsd serve`) with %d streams, each sending the video through "+
		"PutMedia in real time (one 1-s fragment per second, starts spread over one second), every fragment eligible "+
		"(stream tag `kvsd:ImageGeneration=ALL_FRAGMENTS`), one %d×%d JPEG per second to the local folder. Latency runs from "+
		"the PERSISTED ack reaching the producer to the image file appearing in the bucket (inotify on the link or rename that makes it visible). "+
		"%s of wall time; the machine's CPU meanwhile: %.2f cores.\n\n",
		l.Streams, wl.Spec.Width, wl.Spec.Height, l.Duration.Round(time.Second), l.MachineCPU.Seconds()/l.Duration.Seconds())
	fmt.Fprintln(w, "| images | p50 | p90 | p99 | max | missing |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %d | %s | %s | **%s** | %s | %d |\n", l.Images, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), l.Missing)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", d.Seconds()*1e3) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type seedReport struct {
	command    string
	started    time.Time
	spec       videoSpec
	wl         *workload
	rounds     int
	contenders []contender
	results    []measurement
}

// writeSeedReport reports one encode of the seed user's workload.
func writeSeedReport(w io.Writer, in seedReport) {
	wl := in.wl
	rate := float64(time.Second) / float64(wl.Interval)
	fmt.Fprintf(w, "\n# Seed workload: %g images per second from every frame (%s)\n\n", rate, in.spec.Name)
	fmt.Fprintf(w, "- command: `%s`, %s\n", strings.TrimSpace(in.command), in.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %s, %d cores, %s, %s; load average at the end %s\n",
		machine.CPUModel(), runtime.NumCPU(), runtime.Version(), "ffmpeg "+machine.FFmpegVersion(), loadAvg())
	fmt.Fprintf(w, "- video: %s, %.1f MB, %s, %d fragments of %s (one per keyframe, as kvssink cuts them); encoder: `%s`\n",
		wl.Track.CodecID, float64(wl.FileSize)/1e6, wl.Duration.Round(time.Millisecond), len(wl.Fragments),
		wl.FragmentDuration.Round(time.Millisecond), strings.Join(in.spec.Args, " "))
	fmt.Fprintf(w, "- images: %d, one per %s on the video's clock (across fragments), %d×%d JPEG (quality %d; ffmpeg: -q:v 4)\n",
		wl.Images(), wl.Interval, wl.Spec.Width, wl.Spec.Height, wl.Spec.Quality)
	fmt.Fprintf(w, "- each contender ran %d time(s), interleaved; the row is the run with the median CPU time.\n\n", in.rounds)
	var a, f, d measurement
	for i, c := range in.contenders {
		switch c.id {
		case "a":
			a = in.results[i]
		case "f":
			f = in.results[i]
		case "d":
			d = in.results[i]
		}
	}
	fmt.Fprintln(w, "| | contender | images | CPU s | wall s | CPU ms/image | images/s per core | cameras per core | other CPU s |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for i, c := range in.contenders {
		m := in.results[i]
		other := max(0, m.MachineCPU-m.CPU)
		fmt.Fprintf(w, "| (%s) | %s | %d | %.3f | %.3f | %.2f | **%.1f** | %.2f | %.2f |\n",
			c.id, c.what, m.Images, m.CPU.Seconds(), m.Wall.Seconds(), m.CPU.Seconds()*1e3/float64(m.Images),
			m.ImagesPerCore(), m.ImagesPerCore()/rate, other.Seconds())
	}
	fmt.Fprintln(w)
	for i, c := range in.contenders {
		if s := in.results[i].Stages; s != nil && in.results[i].Images > 0 {
			fmt.Fprintf(w, "(%s) %s; %d packets decoded, %d skipped (needed by no sample: B-frames no sample shows, "+
				"frames after a fragment's last sample).\n", c.id, stages(in.results[i]), s.Decoded, s.Skipped)
		}
	}
	fmt.Fprintln(w, "\n| target | now | met |")
	fmt.Fprintln(w, "|---|---|---|")
	ratio := func(x, y measurement) float64 {
		if y.ImagesPerCore() == 0 {
			return 0
		}
		return x.ImagesPerCore() / y.ImagesPerCore()
	}
	fmt.Fprintf(w, "| (a) ≥ 1.5 × (f) | %.2f× | %s |\n", ratio(a, f), yesNo(ratio(a, f) >= 1.5))
	fmt.Fprintf(w, "| (a) ≥ 90 %% of (d) | %.0f %% | %s |\n", 100*ratio(a, d), yesNo(ratio(a, d) >= 0.9))
	fmt.Fprintf(w, "\nOne core sustains about **%.1f** such cameras with kvsd (%.0f images/s per core ÷ %g images/s per camera).\n",
		a.ImagesPerCore()/rate, a.ImagesPerCore(), rate)
}

// stages describes where m's CPU time per image went: the media package's stages (CPU time
// of the decoding thread) and the rest of the process's CPU time (for (a) the store, the image
// files and the cursor; for (d) demuxing).
func stages(m measurement) string {
	s, n := m.Stages, float64(m.Images)
	perImg := func(x time.Duration) float64 { return x.Seconds() * 1e3 / n }
	rest := m.CPU - s.Decode - s.Scale - s.Encode
	return fmt.Sprintf("inside the media package, per image: decode %.2f ms, scale %.2f ms, encode %.2f ms "+
		"(CPU time of the decoding thread); the rest of the process %.2f ms", perImg(s.Decode), perImg(s.Scale), perImg(s.Encode), perImg(rest))
}
