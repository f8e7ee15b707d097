package wire

// The messages of the sync modes: projector and saga calls, cascaded
// commands and the CommandResponse that gathers their results.

// BookWithCover encodes an angzarr.EventBook from a raw one with cover
// merged into its cover (cover first: fields the raw book's own cover sets
// win, as protobuf merges repeated occurrences of a message field).
func BookWithCover(bookRaw []byte, cover *Cover) []byte {
	b := make([]byte, 0, coverSize(1, cover)+len(bookRaw))
	if cover != nil {
		b = appendCover(b, 1, cover)
	}
	return append(b, bookRaw...)
}

// SyncResponse is angzarr.CommandResponse with raw parts.
type SyncResponse struct {
	// Events is the raw EventBook of the command (nil when absent).
	Events []byte
	// Projections are raw angzarr.Projection messages.
	Projections [][]byte
	// Cascade are raw EventBooks stored in other aggregates by a CASCADE
	// command, in execution order.
	Cascade [][]byte
}

// Marshal encodes the response.
func (r *SyncResponse) Marshal() []byte {
	n := sizeBytes(1, r.Events)
	for _, p := range r.Projections {
		n += sizeBytes(2, nonNil(p))
	}
	for _, c := range r.Cascade {
		n += sizeBytes(3, nonNil(c))
	}
	b := make([]byte, 0, n)
	b = appendBytes(b, 1, r.Events)
	for _, p := range r.Projections {
		b = appendBytes(b, 2, nonNil(p))
	}
	for _, c := range r.Cascade {
		b = appendBytes(b, 3, nonNil(c))
	}
	return b
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// DecodeSyncResponse decodes an angzarr.CommandResponse, keeping its parts
// raw after checking that they decode.
func DecodeSyncResponse(b []byte) (*SyncResponse, error) {
	r := &SyncResponse{}
	err := walk("CommandResponse", b, nil, func(f field) error {
		raw, err := bytesOf("CommandResponse", f)
		if err != nil {
			return err
		}
		switch f.num {
		case 1:
			r.Events = merged(r.Events, raw)
		case 2:
			if _, err := DecodeProjection(raw); err != nil {
				return err
			}
			r.Projections = append(r.Projections, raw)
		case 3:
			if _, err := DecodeEventBook(raw); err != nil {
				return err
			}
			r.Cascade = append(r.Cascade, raw)
		}
		return nil
	})
	if err == nil && r.Events != nil {
		_, err = DecodeEventBook(r.Events)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Projection is the part of angzarr.Projection the filter looks at.
type Projection struct {
	Cover     *Cover
	Projector string
	Sequence  uint32
}

// DecodeProjection decodes an angzarr.Projection.
func DecodeProjection(b []byte) (*Projection, error) {
	p := &Projection{}
	var coverRaw []byte
	err := walk("Projection", b, nil, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var raw []byte
			if raw, err = bytesOf("Projection.cover", f); err == nil {
				coverRaw = merged(coverRaw, raw)
			}
		case 2:
			err = setStr(&p.Projector, "Projection.projector", f)
		case 3:
			err = setU32(&p.Sequence, "Projection.sequence", f)
		case 4:
			_, err = anyBytes("Projection.projection", f)
		}
		return err
	})
	if err == nil && coverRaw != nil {
		p.Cover, err = DecodeCover(coverRaw)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// DecodeSagaResponse decodes an angzarr.SagaResponse into its commands.
func DecodeSagaResponse(b []byte) ([]*CommandBook, error) {
	var out []*CommandBook
	err := walk("SagaResponse", b, nil, func(f field) error {
		if f.num != 1 {
			return nil
		}
		raw, err := bytesOf("SagaResponse.commands", f)
		if err != nil {
			return err
		}
		cb, err := DecodeCommandBook(raw)
		if err != nil {
			return err
		}
		out = append(out, cb)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Append encodes the origin onto b.
func (o *SagaOrigin) Append(b []byte) []byte {
	b = appendString(b, 1, o.SagaName)
	if o.TriggeringAggregate != nil {
		b = appendCover(b, 2, o.TriggeringAggregate)
	}
	return appendUint(b, 3, uint64(o.TriggeringEventSequence))
}

func (o *SagaOrigin) size() int {
	return sizeString(1, o.SagaName) + coverSize(2, o.TriggeringAggregate) + sizeUint(3, uint64(o.TriggeringEventSequence))
}

// SetSagaOrigin replaces the book's saga origin.
func (cb *CommandBook) SetSagaOrigin(o *SagaOrigin) {
	cb.SagaOrigin = o
	cb.sagaOriginRaw = nil
	if o != nil {
		cb.sagaOriginRaw = nonNil(o.Append(make([]byte, 0, o.size())))
	}
}

// Marshal encodes the book.
func (cb *CommandBook) Marshal() []byte { return cb.Append(make([]byte, 0, cb.size())) }

// Marshal encodes the SyncCommandBook.
func (s *SyncCommandBook) Marshal() []byte {
	n := sizeUint(2, uint64(uint32(s.SyncMode)))
	if s.Command != nil {
		n += fieldSize(1, s.Command.size())
	}
	b := make([]byte, 0, n)
	if s.Command != nil {
		b = s.Command.Append(appendHeader(b, 1, s.Command.size()))
	}
	return appendUint(b, 2, uint64(uint32(s.SyncMode)))
}

// Marshal encodes the book.
func (eb *EventBook) Marshal() []byte { return eb.Append(make([]byte, 0, eb.size())) }

// ProcessManagerSyncRequest encodes angzarr.ProcessManagerSyncRequest: the
// process manager's name and the raw triggering EventBook.
func ProcessManagerSyncRequest(name string, trigger []byte) []byte {
	b := make([]byte, 0, sizeString(1, name)+sizeBytes(2, trigger))
	b = appendString(b, 1, name)
	return appendBytes(b, 2, trigger)
}
