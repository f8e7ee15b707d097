package wire

// The angzarr.EventStore messages the filter sends and receives.

// LoadRequest is angzarr.LoadRequest.
type LoadRequest struct {
	Cover          *Cover
	IdempotencyKey string
}

// Marshal encodes the request.
func (r *LoadRequest) Marshal() []byte {
	var b []byte
	if r.Cover != nil {
		b = appendMessage(b, 1, r.Cover.Append)
	}
	return appendString(b, 2, r.IdempotencyKey)
}

// LoadResponse is angzarr.LoadResponse; the loaded book stays raw.
type LoadResponse struct {
	// Book is the raw EventBook (nil when absent).
	Book         []byte
	NextSequence uint32
	// Prior is the earlier append with the requested key (nil when none).
	Prior *AppendResponse
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
	var b []byte
	if r.Cover != nil {
		b = appendMessage(b, 1, r.Cover.Append)
	}
	b = appendUint(b, 2, uint64(r.ExpectedSequence))
	for _, p := range r.Pages {
		b = appendMessage(b, 3, p.Append)
	}
	b = appendBytes(b, 4, r.SnapshotState)
	return appendString(b, 5, r.IdempotencyKey)
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
	var b []byte
	if c.Cover != nil {
		b = appendMessage(b, 1, c.Cover.Append)
	}
	b = appendUint(b, 2, uint64(c.ExpectedSequence))
	return appendUint(b, 3, uint64(c.NextSequence))
}
