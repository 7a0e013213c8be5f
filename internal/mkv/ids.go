package mkv

import "fmt"

// Element IDs kvsd reads or writes, marker bits included (see the Matroska
// specification; the KVS reference lists the same values).
const (
	IDEBML           = 0x1A45DFA3
	IDDocType        = 0x4282
	IDSegment        = 0x18538067
	IDSeekHead       = 0x114D9B74
	IDInfo           = 0x1549A966
	IDTimecodeScale  = 0x2AD7B1
	IDSegmentUID     = 0x73A4
	IDTracks         = 0x1654AE6B
	IDTrackEntry     = 0xAE
	IDTrackNumber    = 0xD7
	IDTrackUID       = 0x73C5
	IDTrackType      = 0x83
	IDCodecID        = 0x86
	IDCodecPrivate   = 0x63A2
	IDTrackName      = 0x536E
	IDVideo          = 0xE0
	IDPixelWidth     = 0xB0
	IDPixelHeight    = 0xBA
	IDCluster        = 0x1F43B675
	IDTimecode       = 0xE7
	IDSimpleBlock    = 0xA3
	IDBlockGroup     = 0xA0
	IDBlock          = 0xA1
	IDReferenceBlock = 0xFB
	IDTags           = 0x1254C367
	IDTag            = 0x7373
	IDSimpleTag      = 0x67C8
	IDTagName        = 0x45A3
	IDTagString      = 0x4487
	IDCues           = 0x1C53BB6B
	IDChapters       = 0x1043A770
	IDAttachments    = 0x1941A469
	IDVoid           = 0xEC
	IDCRC32          = 0xBF

	// Written by Writer, not interpreted by the Reader.
	IDEBMLVersion        = 0x4286
	IDEBMLReadVersion    = 0x42F7
	IDEBMLMaxIDLength    = 0x42F2
	IDEBMLMaxSizeLength  = 0x42F3
	IDDocTypeVersion     = 0x4287
	IDDocTypeReadVersion = 0x4285
	IDTitle              = 0x7BA9
	IDMuxingApp          = 0x4D80
	IDWritingApp         = 0x5741
	IDAudio              = 0xE1
	IDSamplingFrequency  = 0xB5
	IDChannels           = 0x9F
	IDPosition           = 0xA7
	IDBlockDuration      = 0x9B
)

var elemNames = map[uint32]string{
	IDEBML:           "EBML",
	IDDocType:        "DocType",
	IDSegment:        "Segment",
	IDSeekHead:       "SeekHead",
	IDInfo:           "Info",
	IDTimecodeScale:  "TimecodeScale",
	IDSegmentUID:     "SegmentUID",
	IDTracks:         "Tracks",
	IDTrackEntry:     "TrackEntry",
	IDTrackNumber:    "TrackNumber",
	IDTrackUID:       "TrackUID",
	IDTrackType:      "TrackType",
	IDCodecID:        "CodecID",
	IDCodecPrivate:   "CodecPrivate",
	IDTrackName:      "Name",
	IDVideo:          "Video",
	IDPixelWidth:     "PixelWidth",
	IDPixelHeight:    "PixelHeight",
	IDCluster:        "Cluster",
	IDTimecode:       "Timecode",
	IDSimpleBlock:    "SimpleBlock",
	IDBlockGroup:     "BlockGroup",
	IDBlock:          "Block",
	IDReferenceBlock: "ReferenceBlock",
	IDTags:           "Tags",
	IDTag:            "Tag",
	IDSimpleTag:      "SimpleTag",
	IDTagName:        "TagName",
	IDTagString:      "TagString",
	IDCues:           "Cues",
	IDChapters:       "Chapters",
	IDAttachments:    "Attachments",
	IDVoid:           "Void",
	IDCRC32:          "CRC-32",
}

// idName names an element for error messages.
func idName(id uint32) string {
	if n, ok := elemNames[id]; ok {
		return n
	}
	return fmt.Sprintf("element 0x%X", id)
}

// endsCluster reports whether id cannot be a child of a Cluster, so that it
// terminates a Cluster of unknown size. Any other ID, known or not, is kept
// as a child: producers may add elements we do not know, and dropping them
// would break the verbatim copy.
func endsCluster(id uint32) bool {
	switch id {
	case IDCluster, IDTags, IDCues, IDChapters, IDAttachments,
		IDSeekHead, IDInfo, IDTracks, IDEBML, IDSegment:
		return true
	}
	return false
}

// endsSegment reports whether id terminates a Segment of unknown size: only
// a new EBML document (or a bare Segment) can.
func endsSegment(id uint32) bool {
	return id == IDEBML || id == IDSegment
}
