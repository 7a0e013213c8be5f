package mkv

import "fmt"

// Element IDs kvsd cares about, marker bits included (see the Matroska
// specification; the KVS reference lists the same values).
const (
	idEBML           = 0x1A45DFA3
	idDocType        = 0x4282
	idSegment        = 0x18538067
	idSeekHead       = 0x114D9B74
	idInfo           = 0x1549A966
	idTimecodeScale  = 0x2AD7B1
	idSegmentUID     = 0x73A4
	idTracks         = 0x1654AE6B
	idTrackEntry     = 0xAE
	idTrackNumber    = 0xD7
	idTrackUID       = 0x73C5
	idTrackType      = 0x83
	idCodecID        = 0x86
	idCodecPrivate   = 0x63A2
	idTrackName      = 0x536E
	idVideo          = 0xE0
	idPixelWidth     = 0xB0
	idPixelHeight    = 0xBA
	idCluster        = 0x1F43B675
	idTimecode       = 0xE7
	idSimpleBlock    = 0xA3
	idBlockGroup     = 0xA0
	idBlock          = 0xA1
	idReferenceBlock = 0xFB
	idTags           = 0x1254C367
	idTag            = 0x7373
	idSimpleTag      = 0x67C8
	idTagName        = 0x45A3
	idTagString      = 0x4487
	idCues           = 0x1C53BB6B
	idChapters       = 0x1043A770
	idAttachments    = 0x1941A469
	idVoid           = 0xEC
	idCRC32          = 0xBF
)

var elemNames = map[uint32]string{
	idEBML:           "EBML",
	idDocType:        "DocType",
	idSegment:        "Segment",
	idSeekHead:       "SeekHead",
	idInfo:           "Info",
	idTimecodeScale:  "TimecodeScale",
	idSegmentUID:     "SegmentUID",
	idTracks:         "Tracks",
	idTrackEntry:     "TrackEntry",
	idTrackNumber:    "TrackNumber",
	idTrackUID:       "TrackUID",
	idTrackType:      "TrackType",
	idCodecID:        "CodecID",
	idCodecPrivate:   "CodecPrivate",
	idTrackName:      "Name",
	idVideo:          "Video",
	idPixelWidth:     "PixelWidth",
	idPixelHeight:    "PixelHeight",
	idCluster:        "Cluster",
	idTimecode:       "Timecode",
	idSimpleBlock:    "SimpleBlock",
	idBlockGroup:     "BlockGroup",
	idBlock:          "Block",
	idReferenceBlock: "ReferenceBlock",
	idTags:           "Tags",
	idTag:            "Tag",
	idSimpleTag:      "SimpleTag",
	idTagName:        "TagName",
	idTagString:      "TagString",
	idCues:           "Cues",
	idChapters:       "Chapters",
	idAttachments:    "Attachments",
	idVoid:           "Void",
	idCRC32:          "CRC-32",
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
	case idCluster, idTags, idCues, idChapters, idAttachments,
		idSeekHead, idInfo, idTracks, idEBML, idSegment:
		return true
	}
	return false
}

// endsSegment reports whether id terminates a Segment of unknown size: only
// a new EBML document (or a bare Segment) can.
func endsSegment(id uint32) bool {
	return id == idEBML || id == idSegment
}
