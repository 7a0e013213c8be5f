package mkv

import "slices"

// SimpleTag is a name/value pair of a Tags element.
type SimpleTag struct{ Name, Value string }

// readTags buffers a level-1 Tags element that follows a Cluster and
// reports it with its SimpleTags.
func (r *Reader) readTags(h *elemHeader) (Event, bool, error) {
	if h.total() > r.lim.MaxElementSize {
		return Event{}, false, tooLarge(h.off, "Tags", h.total(), r.lim.MaxElementSize)
	}
	var err error
	if r.ebuf, err = r.readElem(r.ebuf[:0], h); err != nil {
		return Event{}, false, err
	}
	tags, err := parseTags(h.child(r.ebuf))
	if err != nil {
		return Event{}, false, err
	}
	return Event{Kind: KindTags, Offset: h.off, Raw: slices.Clip(r.ebuf), Tags: tags}, true, nil
}

// parseTags collects the SimpleTags of every Tag in a Tags element.
func parseTags(e child) ([]SimpleTag, error) {
	var tags []SimpleTag
	c := childrenOf(e, IDTags)
	for c.next() {
		if c.ch.id != IDTag {
			continue // Targets, Void, CRC-32
		}
		var err error
		if tags, err = appendSimpleTags(tags, c.ch, IDTag, 0); err != nil {
			return nil, err
		}
	}
	return tags, c.err
}

// maxTagDepth caps SimpleTag nesting. Matroska allows any depth, but each
// level costs only three bytes of input and a stack frame here; real
// writers nest one or two levels at most.
const maxTagDepth = 8

// appendSimpleTags appends the SimpleTag children of parent (a Tag, or a
// SimpleTag nested depth levels deep) to tags, in document order with every
// SimpleTag before the ones nested in it.
func appendSimpleTags(tags []SimpleTag, parent child, parentID uint32, depth int) ([]SimpleTag, error) {
	c := childrenOf(parent, parentID)
	for c.next() {
		if c.ch.id != IDSimpleTag {
			continue
		}
		if depth == maxTagDepth {
			return nil, invalidf(c.ch.off, "SimpleTags nested more than %d deep", maxTagDepth)
		}
		var err error
		if tags, err = appendSimpleTag(tags, c.ch, depth+1); err != nil {
			return nil, err
		}
	}
	return tags, c.err
}

// appendSimpleTag appends one SimpleTag and then the SimpleTags nested in it.
func appendSimpleTag(tags []SimpleTag, st child, depth int) ([]SimpleTag, error) {
	var t SimpleTag
	c := childrenOf(st, IDSimpleTag)
	for c.next() {
		switch c.ch.id {
		case IDTagName:
			t.Name = parseString(c.ch.data)
		case IDTagString:
			t.Value = parseString(c.ch.data)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return appendSimpleTags(append(tags, t), st, IDSimpleTag, depth)
}
