package wire

// The angzarr.EventStore messages the filter sends and receives.

// LoadRequest is angzarr.LoadRequest.
type LoadRequest struct {
	Cover          *Cover
	IdempotencyKey string
	// DelayMs asks the event service to wait before loading (a write
	// conflict's back-off).
	DelayMs uint32
	// FromSequence and ToSequence ask for a continuation of a paged
	// history (LoadResponse.MoreFrom): the events from FromSequence up to
	// ToSequence (exclusive), the first page's NextSequence.
	FromSequence, ToSequence uint32
}

// Marshal encodes the request.
func (r *LoadRequest) Marshal() []byte {
	b := make([]byte, 0, coverSize(1, r.Cover)+sizeString(2, r.IdempotencyKey)+sizeUint(3, uint64(r.DelayMs))+
		sizeUint(4, uint64(r.FromSequence))+sizeUint(5, uint64(r.ToSequence)))
	if r.Cover != nil {
		b = appendCover(b, 1, r.Cover)
	}
	b = appendString(b, 2, r.IdempotencyKey)
	b = appendUint(b, 3, uint64(r.DelayMs))
	b = appendUint(b, 4, uint64(r.FromSequence))
	return appendUint(b, 5, uint64(r.ToSequence))
}

// LoadResponse is angzarr.LoadResponse; the loaded book stays raw.
type LoadResponse struct {
	// Book is the raw EventBook (nil when absent).
	Book         []byte
	NextSequence uint32
	// Prior is the earlier append with the requested key (nil when none).
	Prior *AppendResponse
	// MoreFrom, when not 0, says the history goes on from this sequence
	// (load it with LoadRequest.FromSequence).
	MoreFrom uint32
}

// DecodeLoadResponse decodes an angzarr.LoadResponse.
func DecodeLoadResponse(b []byte) (*LoadResponse, error) {
	r := &LoadResponse{}
	var priorRaw []byte
	err := walk("LoadResponse", b, nil, func(f field) error {
		var err error
		var raw []byte
		switch f.num {
		case 1:
			if raw, err = bytesOf("LoadResponse.book", f); err == nil {
				r.Book = merged(r.Book, raw)
			}
		case 2:
			err = setU32(&r.NextSequence, "LoadResponse.next_sequence", f)
		case 3:
			if raw, err = bytesOf("LoadResponse.prior", f); err == nil {
				priorRaw = merged(priorRaw, raw)
			}
		case 4:
			err = setU32(&r.MoreFrom, "LoadResponse.more_from", f)
		}
		return err
	})
	if err == nil && priorRaw != nil {
		r.Prior, err = DecodeAppendResponse(priorRaw)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// AppendRequest is angzarr.AppendRequest.
type AppendRequest struct {
	Cover            *Cover
	ExpectedSequence uint32
	Pages            []*EventPage
	// SnapshotState is the raw Any (nil when absent).
	SnapshotState  []byte
	IdempotencyKey string
}

// Marshal encodes the request.
func (r *AppendRequest) Marshal() []byte {
	b := make([]byte, 0, r.size())
	if r.Cover != nil {
		b = appendCover(b, 1, r.Cover)
	}
	b = appendUint(b, 2, uint64(r.ExpectedSequence))
	for _, p := range r.Pages {
		b = p.Append(appendHeader(b, 3, p.size()))
	}
	b = appendBytes(b, 4, r.SnapshotState)
	return appendString(b, 5, r.IdempotencyKey)
}

func (r *AppendRequest) size() int {
	n := coverSize(1, r.Cover) + sizeUint(2, uint64(r.ExpectedSequence))
	for _, p := range r.Pages {
		n += fieldSize(3, p.size())
	}
	return n + sizeBytes(4, r.SnapshotState) + sizeString(5, r.IdempotencyKey)
}

// AppendResponse is angzarr.AppendResponse; the stored book stays raw.
type AppendResponse struct {
	// Book is the raw EventBook of the stored pages (nil when absent).
	Book         []byte
	NextSequence uint32
	Duplicate    bool
}

// DecodeAppendResponse decodes an angzarr.AppendResponse.
func DecodeAppendResponse(b []byte) (*AppendResponse, error) {
	r := &AppendResponse{}
	err := walk("AppendResponse", b, nil, func(f field) error {
		var err error
		var raw []byte
		switch f.num {
		case 1:
			if raw, err = bytesOf("AppendResponse.book", f); err == nil {
				r.Book = merged(r.Book, raw)
			}
		case 2:
			err = setU32(&r.NextSequence, "AppendResponse.next_sequence", f)
		case 3:
			err = setBoolean(&r.Duplicate, "AppendResponse.duplicate", f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// SequenceConflict is angzarr.SequenceConflict, the detail of ABORTED.
type SequenceConflict struct {
	Cover            *Cover
	ExpectedSequence uint32
	NextSequence     uint32
}

// Marshal encodes the detail.
func (c *SequenceConflict) Marshal() []byte {
	b := make([]byte, 0, coverSize(1, c.Cover)+sizeUint(2, uint64(c.ExpectedSequence))+sizeUint(3, uint64(c.NextSequence)))
	if c.Cover != nil {
		b = appendCover(b, 1, c.Cover)
	}
	b = appendUint(b, 2, uint64(c.ExpectedSequence))
	return appendUint(b, 3, uint64(c.NextSequence))
}
