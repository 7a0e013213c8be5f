package mkv

import (
	"fmt"
	"strings"
)

// readerCase is one hand-built input. The same table drives TestReader,
// seeds FuzzReader and feeds BenchmarkReader.
type readerCase struct {
	name string
	in   []byte
	lim  Limits
	// want lists the events (see describe), before the error if any.
	want []string
	// err is the sentinel the final error wraps (ErrInvalid, ErrTooLarge);
	// nil means the input ends with io.EOF.
	err error
	// msg is a substring of the final error.
	msg string
	// skipped counts input bytes that no Raw carries (elements the Reader
	// skips); only for inputs without error.
	skipped int
}

// describe renders an event compactly for the table.
func describe(ev Event) string {
	switch ev.Kind {
	case KindHeader:
		var tracks []string
		for _, t := range ev.Header.Tracks {
			tracks = append(tracks, fmt.Sprintf("%d:%s:%dx%d", t.Number, t.CodecID, t.Width, t.Height))
		}
		return fmt.Sprintf("header scale=%d tracks=%s", ev.Header.TimecodeScale, strings.Join(tracks, ","))
	case KindClusterStart:
		return fmt.Sprintf("start %d", ev.Timecode)
	case KindBlock:
		key := ""
		if ev.Block.Keyframe {
			key = " key"
		}
		return fmt.Sprintf("block %d %+d%s %d", ev.Block.Track, ev.Block.RelTimecode, key, ev.Block.Size)
	case KindClusterEnd:
		return fmt.Sprintf("end %d", ev.Timecode)
	case KindTags:
		var kv []string
		for _, t := range ev.Tags {
			kv = append(kv, t.Name+"="+t.Value)
		}
		return "tags " + strings.Join(kv, " ")
	case KindStrayBlock:
		return fmt.Sprintf("stray %d", ev.Size)
	}
	return "?"
}

const (
	hdrEv   = "header scale=1000000 tracks=1:V_MPEG4/ISO/AVC:640x480"
	tcEpoch = 1_700_000_000_000
)

// ffmpegStyle is a document laid out as ffmpeg/mkvmerge write files:
// known-size Segment, SeekHead, Void, Info and Tracks with 1-byte sizes,
// header Tags with Targets, known-size Clusters with a CRC-32, and Cues at
// the end (skipped by the Reader).
func ffmpegStyle() (doc []byte, cues int) {
	info := el(IDInfo, uel(IDTimecodeScale, 1_000_000, 3), sel(0x4D80, "Lavf"), sel(0x5741, "Lavf"))
	tracks := el(IDTracks, el(IDTrackEntry, uel(IDTrackNumber, 1, 1), uel(IDTrackUID, 1, 1),
		sel(IDCodecID, "V_MPEG4/ISO/AVC"), uel(IDTrackType, 1, 1),
		el(IDVideo, uel(IDPixelWidth, 640, 2), uel(IDPixelHeight, 480, 2)), el(IDCodecPrivate, avcc)))
	htags := el(IDTags, el(IDTag, el(0x63C0), el(IDSimpleTag, sel(IDTagName, "ENCODER"), sel(IDTagString, "Lavf"))))
	c1 := el(IDCluster, el(IDCRC32, hexb("01 02 03 04")), uel(IDTimecode, 0, 1),
		sblock(1, 0, 0x80, frame(300)), sblock(1, 40, 0, frame(20)))
	c2 := el(IDCluster, el(IDCRC32, hexb("05 06 07 08")), uel(IDTimecode, 1000, 2),
		sblock(1, 0, 0x80, frame(200)))
	cuesEl := el(IDCues, el(0xBB, uel(0xB3, 0, 1)))
	seg := el(IDSegment, el(IDSeekHead, el(0x4DBB, el(0x53AB, hexb("15 49 A9 66")), uel(0x53AC, 1, 1))),
		el(IDVoid, make([]byte, 20)), info, tracks, htags, c1, c2, cuesEl)
	return cat(ebmlHeader("matroska"), seg), len(cuesEl)
}

var readerCases = func() []readerCase {
	h := picHeader()
	gop := picGOP(tcEpoch, 3, 100, 50)
	gopEvents := []string{"start 1700000000000", "block 1 +0 key 100", "block 1 +33 50", "block 1 +66 50", "end 1700000000000"}
	with := func(head []string, tail ...string) []string { return append(append([]string{}, head...), tail...) }
	ff, ffCues := ffmpegStyle()

	return []readerCase{
		// Layouts that must parse.
		{name: "empty"},
		{
			name: "pic minimal body",
			in:   cat(h, gop, picGOP(tcEpoch+99, 2, 80, 40)),
			want: with(with([]string{hdrEv}, gopEvents...),
				"start 1700000000099", "block 1 +0 key 80", "block 1 +33 40", "end 1700000000099"),
		},
		{
			name: "pic 8-byte unknown segment size",
			in:   cat(picEBML, unk(IDSegment, 8), picInfo(1_000_000), picTracks(640, 480), gop),
			want: with([]string{hdrEv}, gopEvents...),
		},
		{
			name: "header only",
			in:   h,
			want: []string{hdrEv},
		},
		{
			name: "tags after cluster",
			in: cat(h, picGOP(1000, 2, 10, 5),
				tags8("AWS_KINESISVIDEO_NOTIFICATION", ""),
				tags8("AWS_KINESISVIDEO_IMAGE_GENERATION", "", "AWS_KINESISVIDEO_IMAGE_PREFIX", "img-", "k", "v"),
				picGOP(2000, 1, 10, 0),
				tags8("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")),
			want: []string{hdrEv, "start 1000", "block 1 +0 key 10", "block 1 +33 5", "end 1000",
				"tags AWS_KINESISVIDEO_NOTIFICATION=",
				"tags AWS_KINESISVIDEO_IMAGE_GENERATION= AWS_KINESISVIDEO_IMAGE_PREFIX=img- k=v",
				"start 2000", "block 1 +0 key 10", "end 2000",
				"tags AWS_KINESISVIDEO_END_OF_FRAGMENT="},
		},
		{
			name: "nested simple tags with targets",
			in: cat(h, picGOP(5, 1, 1, 0), el(IDTags, el(IDTag, el(0x63C0, uel(0x68CA, 50, 1)),
				el(IDSimpleTag, sel(IDTagName, "a"), sel(IDTagString, "1"),
					el(IDSimpleTag, sel(IDTagName, "b"), sel(IDTagString, "2\x00"))),
				el(IDSimpleTag, sel(IDTagName, "c"), sel(IDTagString, "3"))))),
			want: []string{hdrEv, "start 5", "block 1 +0 key 1", "end 5", "tags a=1 b=2 c=3"},
		},
		{
			name: "tags before info and after tracks belong to the header",
			in: cat(picEBML, unk(IDSegment, 1), tags8("user", "x"), picInfo(1_000_000), picTracks(640, 480),
				tags8("ENCODER", "gst"), gop),
			want: with([]string{hdrEv}, gopEvents...),
		},
		{
			name:    "known-size segment and clusters, cues skipped",
			in:      ff,
			skipped: ffCues,
			want: []string{hdrEv, "start 0", "block 1 +0 key 300", "block 1 +40 20", "end 0",
				"start 1000", "block 1 +0 key 200", "end 1000"},
		},
		{
			name: "two documents back to back",
			in:   cat(h, gop, picEBML, unk(IDSegment, 8), picInfo(100_000), picTracks(1920, 1080), picGOP(7, 1, 9, 0)),
			want: with(with([]string{hdrEv}, gopEvents...),
				"header scale=100000 tracks=1:V_MPEG4/ISO/AVC:1920x1080", "start 7", "block 1 +0 key 9", "end 7"),
		},
		{
			name: "header-only document followed by another",
			in:   cat(h, h, gop),
			want: with([]string{hdrEv, hdrEv}, gopEvents...),
		},
		{
			name:    "pic document after a known-size document",
			in:      cat(ff, el(IDVoid, []byte{0}), h, gop),
			skipped: ffCues + 3,
			want: with([]string{hdrEv, "start 0", "block 1 +0 key 300", "block 1 +40 20", "end 0",
				"start 1000", "block 1 +0 key 200", "end 1000", hdrEv}, gopEvents...),
		},
		{
			name: "unknown-size cluster inside known-size segment",
			in: cat(ebmlHeader("matroska"), el(IDSegment, picInfo(1_000_000), picTracks(640, 480),
				picGOP(1, 2, 3, 4), picGOP(2, 1, 5, 0)), h),
			want: []string{hdrEv, "start 1", "block 1 +0 key 3", "block 1 +33 4", "end 1",
				"start 2", "block 1 +0 key 5", "end 2", hdrEv},
		},
		{
			name: "void and crc inside clusters",
			in: cat(h,
				unk(IDCluster, 8), el(IDCRC32, hexb("DE AD BE EF")), uel(IDTimecode, 10, 8), el(IDVoid, make([]byte, 5)),
				sblock8(1, 0, 0x80, frame(7)), el(IDVoid), sblock8(1, 1, 0, frame(3)),
				el(IDVoid, make([]byte, 2)), // still a child: only level-1 IDs end an unknown-size Cluster
				el(IDCluster, el(IDCRC32, hexb("01 02 03 04")), uel(IDTimecode, 20, 2), el(IDVoid, make([]byte, 3)),
					sblock(1, 0, 0x80, frame(4)), el(IDVoid, []byte{0})),
				el(IDVoid, make([]byte, 2))), // level 1 after a known-size Cluster: skipped
			skipped: 4,
			want: []string{hdrEv, "start 10", "block 1 +0 key 7", "block 1 +1 3", "end 10",
				"start 20", "block 1 +0 key 4", "end 20"},
		},
		{
			name: "block groups",
			in: cat(h, picCluster(100,
				el(IDBlockGroup, el(IDBlock, []byte{0x81, 0, 0, 0}, frame(12)), uel(0x9B, 33, 1)),
				el(IDBlockGroup, el(IDBlock, []byte{0x82, 0, 33, 0}, frame(6)), uel(IDReferenceBlock, 0xFFDF, 2)),
				sblock8(1, -5, 0x80, frame(2)))),
			want: []string{hdrEv, "start 100", "block 1 +0 key 12", "block 2 +33 6", "block 1 -5 key 2", "end 100"},
		},
		{
			name: "webm and NUL-padded matroska doc types",
			in: cat(ebmlHeader("webm"), unk(IDSegment, 1), picInfo(1_000_000), picTracks(640, 480), picGOP(1, 1, 1, 0),
				ebmlHeader("matroska\x00"), unk(IDSegment, 1), picInfo(1_000_000), picTracks(640, 480), picGOP(2, 1, 1, 0)),
			want: []string{hdrEv, "start 1", "block 1 +0 key 1", "end 1", hdrEv, "start 2", "block 1 +0 key 1", "end 2"},
		},
		{
			name: "cues chapters attachments seekhead after clusters are skipped",
			in: cat(h, picGOP(1, 1, 1, 0), el(IDCues, make([]byte, 10)), el(IDChapters, make([]byte, 3)),
				el(IDAttachments, make([]byte, 4)), el(IDSeekHead), el(0x4F00, []byte{1}), picGOP(2, 1, 1, 0)),
			skipped: 15 + 8 + 9 + 5 + 4,
			want:    []string{hdrEv, "start 1", "block 1 +0 key 1", "end 1", "start 2", "block 1 +0 key 1", "end 2"},
		},
		{
			name: "cluster exactly at the size limit",
			in:   cat(h, el(IDCluster, uel(IDTimecode, 1, 1), sblock(1, 0, 0x80, frame(88)))),
			lim:  Limits{MaxClusterSize: 5 + 3 + 2 + 4 + 88},
			want: []string{hdrEv, "start 1", "block 1 +0 key 88", "end 1"},
		},

		// Malformed input.
		{
			name: "block before timecode",
			in:   cat(h, unk(IDCluster, 1), sblock8(1, 0, 0x80, frame(3)), uel(IDTimecode, 1, 8)),
			want: []string{hdrEv}, err: ErrInvalid, msg: "SimpleBlock before the Timecode",
		},
		{
			name: "block group before timecode",
			in:   cat(h, el(IDCluster, el(IDBlockGroup, el(IDBlock, []byte{0x81, 0, 0, 0})), uel(IDTimecode, 1, 1))),
			want: []string{hdrEv}, err: ErrInvalid, msg: "BlockGroup before the Timecode",
		},
		{
			name: "unknown-size cluster without timecode",
			in:   cat(h, unk(IDCluster, 1), hexb("A7 81 00"), gop),
			want: []string{hdrEv}, err: ErrInvalid, msg: "Cluster without a Timecode",
		},
		{
			name: "known-size cluster without timecode",
			in:   cat(h, el(IDCluster, hexb("A7 81 00"))),
			want: []string{hdrEv}, err: ErrInvalid, msg: "Cluster without a Timecode",
		},
		{
			name: "cluster without timecode at end of input",
			in:   cat(h, unk(IDCluster, 1)),
			want: []string{hdrEv}, err: ErrInvalid, msg: "Cluster without a Timecode",
		},
		{
			name: "tracks after first cluster",
			in:   cat(h, gop, picTracks(640, 480)),
			want: with([]string{hdrEv}, gopEvents...), err: ErrInvalid, msg: "Tracks after the first Cluster",
		},
		{
			name: "info after first cluster",
			in:   cat(h, gop, picInfo(1_000_000)),
			want: with([]string{hdrEv}, gopEvents...), err: ErrInvalid, msg: "Info after the first Cluster",
		},
		{
			name: "second tracks in header",
			in:   cat(h, picTracks(640, 480), gop),
			err:  ErrInvalid, msg: "second Tracks",
		},
		{
			name: "bad size vint",
			in:   cat(h, unk(IDCluster, 1), hexb("E7 00 00")),
			want: []string{hdrEv}, err: ErrInvalid, msg: "bad size of Timecode (first byte 0x00)",
		},
		{
			name: "bad id vint",
			in:   cat(h, hexb("00 81 00")),
			err:  ErrInvalid, msg: "bad element ID (first byte 0x00)",
		},
		{
			name: "bad size vint inside buffered element",
			in:   cat(picEBML, unk(IDSegment, 1), el(IDInfo, hexb("2A D7 B1 00 00"))),
			err:  ErrInvalid, msg: "bad size of TimecodeScale",
		},
		{
			name: "block bigger than its cluster",
			in:   cat(h, hexb("1F 43 B6 75 86 E7 81 00 A3 85 81"), make([]byte, 10)),
			want: []string{hdrEv, "start 0"}, err: ErrInvalid, msg: "SimpleBlock (5 bytes) is bigger than its parent Cluster",
		},
		{
			name: "track entry bigger than tracks",
			in:   cat(picEBML, unk(IDSegment, 1), picInfo(1_000_000), el(IDTracks, hexb("AE 85 D7 81 01"))),
			err:  ErrInvalid, msg: "TrackEntry (5 bytes) is bigger than its parent Tracks",
		},
		{
			name: "cluster bigger than its segment",
			in:   cat(ebmlHeader("matroska"), el(IDSegment, picInfo(1_000_000), picTracks(640, 480), hexb("1F 43 B6 75 90"))),
			err:  ErrInvalid, msg: "Cluster (16 bytes) is bigger than its parent Segment",
		},
		{
			name: "truncated inside a block",
			in:   cat(h, gop)[:len(h)+len(gop)-3],
			want: []string{hdrEv, "start 1700000000000", "block 1 +0 key 100", "block 1 +33 50"},
			err:  ErrInvalid, msg: "SimpleBlock truncated",
		},
		{
			name: "truncated inside an element header",
			in:   cat(h, gop, hexb("1F 43")),
			want: with([]string{hdrEv}, gopEvents[:4]...), err: ErrInvalid, msg: "element header truncated",
		},
		{
			name: "truncated known-size cluster",
			in:   cat(h, hexb("1F 43 B6 75 88 E7 81 00")),
			want: []string{hdrEv, "start 0"}, err: ErrInvalid, msg: "Cluster truncated",
		},
		{
			name: "truncated known-size segment",
			in:   cat(ebmlHeader("matroska"), hexb("18 53 80 67 40 FF"), picInfo(1_000_000), picTracks(640, 480)),
			err:  ErrInvalid, msg: "Segment truncated",
		},
		{
			name: "truncated header",
			in:   h[:len(h)-10],
			err:  ErrInvalid, msg: "Tracks truncated",
		},
		{
			name: "info missing at first cluster",
			in:   cat(picEBML, unk(IDSegment, 1), picTracks(640, 480), gop),
			err:  ErrInvalid, msg: "has no Info",
		},
		{
			name: "tracks missing at first cluster",
			in:   cat(picEBML, unk(IDSegment, 1), picInfo(1_000_000), gop),
			err:  ErrInvalid, msg: "has no Tracks",
		},
		{
			name: "tracks missing at end of document",
			in:   cat(picEBML, unk(IDSegment, 1), picInfo(1_000_000)),
			err:  ErrInvalid, msg: "has no Tracks",
		},
		{
			name: "ebml header alone",
			in:   picEBML,
			err:  ErrInvalid, msg: "has no Segment",
		},
		{
			name: "block with track number 0",
			in:   cat(h, picCluster(1, sblock8(0, 0, 0x80, frame(2)))),
			want: []string{hdrEv, "start 1"}, err: ErrInvalid, msg: "track number 0",
		},
		{
			name: "block shorter than its header",
			in:   cat(h, picCluster(1, el(IDSimpleBlock, hexb("81 00")))),
			want: []string{hdrEv, "start 1"}, err: ErrInvalid, msg: "shorter than its header",
		},
		{
			name: "block group without block",
			in:   cat(h, picCluster(1, el(IDBlockGroup, uel(0x9B, 1, 1)))),
			want: []string{hdrEv, "start 1"}, err: ErrInvalid, msg: "BlockGroup without a Block",
		},
		{
			name: "doc type avi",
			in:   cat(ebmlHeader("avi"), unk(IDSegment, 1)),
			err:  ErrInvalid, msg: `DocType "avi"`,
		},
		{
			name: "segment without ebml header",
			in:   cat(unk(IDSegment, 1), picInfo(1_000_000)),
			err:  ErrInvalid, msg: "Segment without an EBML header",
		},
		{
			name: "second segment in one document",
			in:   cat(ebmlHeader("matroska"), el(IDSegment, picInfo(1_000_000), picTracks(640, 480)), unk(IDSegment, 1)),
			err:  ErrInvalid, msg: "Segment without an EBML header",
		},
		{
			name: "ebml header inside known-size segment",
			in:   cat(ebmlHeader("matroska"), el(IDSegment, picInfo(1_000_000), picEBML)),
			err:  ErrInvalid, msg: "EBML inside a Segment",
		},
		{
			name: "unexpected element at level 0",
			in:   hexb("A3 81 00"),
			err:  ErrInvalid, msg: "unexpected SimpleBlock at level 0",
		},
		{
			name: "unknown-size tags",
			in:   cat(h, gop, unk(IDTags, 8), el(IDTag)),
			want: with([]string{hdrEv}, gopEvents...), err: ErrInvalid, msg: "Tags with unknown size",
		},
		{
			name: "unknown-size element inside cluster",
			in:   cat(h, picCluster(1), unk(IDBlockGroup, 1)),
			want: []string{hdrEv, "start 1"}, err: ErrInvalid, msg: "BlockGroup with unknown size inside Cluster",
		},
		{
			name: "second timecode",
			in:   cat(h, picCluster(1), uel(IDTimecode, 2, 1)),
			want: []string{hdrEv, "start 1"}, err: ErrInvalid, msg: "second Timecode",
		},
		{
			name: "nine-byte timecode",
			in:   cat(h, unk(IDCluster, 1), el(IDTimecode, make([]byte, 9))),
			want: []string{hdrEv}, err: ErrInvalid, msg: "Timecode has 9 bytes",
		},
		{
			name: "timecode scale 0",
			in:   cat(picEBML, unk(IDSegment, 1), picInfo(0)),
			err:  ErrInvalid, msg: "TimecodeScale 0",
		},
		{
			name: "track entry without number",
			in:   cat(picEBML, unk(IDSegment, 1), picInfo(1_000_000), el(IDTracks, el(IDTrackEntry, sel(IDCodecID, "V_VP8")))),
			err:  ErrInvalid, msg: "TrackEntry without a TrackNumber",
		},
		{
			name: "simple tags nested too deep",
			in: cat(h, picGOP(1, 1, 1, 0), el(IDTags, el(IDTag, func() []byte {
				st := el(IDSimpleTag, sel(IDTagName, "x"))
				for range maxTagDepth {
					st = el(IDSimpleTag, st)
				}
				return st
			}()))),
			want: []string{hdrEv, "start 1", "block 1 +0 key 1", "end 1"}, err: ErrInvalid, msg: "nested more than",
		},

		// Sizes over the limits, including hostile size fields.
		{
			name: "hostile cluster size",
			in:   cat(h, hexb("1F 43 B6 75 01 FF FF FF FF FF FF FE"), make([]byte, 16)),
			err:  ErrTooLarge, msg: "Cluster needs",
		},
		{
			name: "hostile block size",
			in:   cat(h, picCluster(1), hexb("A3 01 FF FF FF FF FF FF FE"), make([]byte, 16)),
			want: []string{hdrEv, "start 1"}, err: ErrTooLarge, msg: "Cluster needs",
		},
		{
			name: "hostile tags size",
			in:   cat(h, gop, hexb("12 54 C3 67 01 FF FF FF FF FF FF FE"), make([]byte, 16)),
			want: with([]string{hdrEv}, gopEvents...), err: ErrTooLarge, msg: "Tags needs",
		},
		{
			name: "hostile tracks size",
			in:   cat(picEBML, unk(IDSegment, 1), hexb("16 54 AE 6B 01 FF FF FF FF FF FF FE"), make([]byte, 16)),
			err:  ErrTooLarge, msg: "header before the first Cluster needs",
		},
		{
			name: "hostile ebml header size",
			in:   cat(hexb("1A 45 DF A3 01 FF FF FF FF FF FF FE"), make([]byte, 16)),
			err:  ErrTooLarge, msg: "EBML header needs",
		},
		{
			name: "hostile cues size is skipped until the input ends",
			in:   cat(h, gop, hexb("1C 53 BB 6B 01 FF FF FF FF FF FF FE"), make([]byte, 16)),
			want: with([]string{hdrEv}, gopEvents...), err: ErrInvalid, msg: "Cues truncated",
		},
		{
			name: "unknown-size cluster over the limit",
			in:   cat(h, picGOP(1, 3, 400, 400)),
			lim:  Limits{MaxClusterSize: 1000},
			want: []string{hdrEv, "start 1", "block 1 +0 key 400", "block 1 +33 400"}, err: ErrTooLarge, msg: "Cluster needs",
		},
		{
			name: "known-size cluster over the limit",
			in:   cat(h, el(IDCluster, uel(IDTimecode, 1, 1), sblock(1, 0, 0x80, frame(89)))),
			lim:  Limits{MaxClusterSize: 5 + 3 + 2 + 4 + 88},
			err:  ErrTooLarge, msg: "Cluster needs",
		},
		{
			name: "header over the limit",
			in:   cat(h, gop),
			lim:  Limits{MaxElementSize: int64(len(h)) - 1},
			err:  ErrTooLarge, msg: "header before the first Cluster needs",
		},
	}
}()

// validCases returns the cases that parse without error.
func validCases() []readerCase {
	var out []readerCase
	for _, c := range readerCases {
		if c.err == nil {
			out = append(out, c)
		}
	}
	return out
}
