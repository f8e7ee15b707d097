package wire

// CommandPage is angzarr.CommandPage.
type CommandPage struct {
	// Sequence is the client's expected next sequence of the aggregate.
	Sequence uint32
	// Command is the raw google.protobuf.Any (nil when absent).
	Command []byte
	unknown []byte
}

// SagaOrigin is angzarr.SagaCommandOrigin.
type SagaOrigin struct {
	SagaName                string
	TriggeringAggregate     *Cover
	TriggeringEventSequence uint32
}

// CommandBook is angzarr.CommandBook.
type CommandBook struct {
	Cover          *Cover
	Pages          []*CommandPage
	SagaOrigin     *SagaOrigin
	sagaOriginRaw  []byte
	AutoResequence bool
	IdempotencyKey string
	unknown        []byte
}

// commandBookParts holds a decoded CommandBook with its cover and first
// page: most books have one page, and one allocation then holds them all.
type commandBookParts struct {
	book  CommandBook
	cover Cover
	page  CommandPage
	pages [1]*CommandPage
}

// DecodeCommandBook decodes an angzarr.CommandBook.
func DecodeCommandBook(b []byte) (*CommandBook, error) {
	parts := &commandBookParts{}
	cb := &parts.book
	var coverRaw []byte
	err := walk("CommandBook", b, &cb.unknown, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var raw []byte
			if raw, err = bytesOf("CommandBook.cover", f); err == nil {
				coverRaw = merged(coverRaw, raw)
			}
		case 2:
			var raw []byte
			if raw, err = bytesOf("CommandBook.pages", f); err == nil {
				if cb.Pages == nil {
					if err = decodeCommandPage(raw, &parts.page); err == nil {
						parts.pages[0] = &parts.page
						cb.Pages = parts.pages[:]
					}
				} else {
					p := &CommandPage{}
					if err = decodeCommandPage(raw, p); err == nil {
						cb.Pages = append(cb.Pages, p)
					}
				}
			}
		case 4:
			var raw []byte
			if raw, err = bytesOf("CommandBook.saga_origin", f); err == nil {
				cb.sagaOriginRaw = merged(cb.sagaOriginRaw, raw)
			}
		case 5:
			err = setBoolean(&cb.AutoResequence, "CommandBook.auto_resequence", f)
		case 6:
			err = setStr(&cb.IdempotencyKey, "CommandBook.idempotency_key", f)
		default:
			cb.unknown = append(cb.unknown, f.raw...)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if coverRaw != nil {
		if err = decodeCover(coverRaw, &parts.cover); err != nil {
			return nil, err
		}
		cb.Cover = &parts.cover
	}
	if cb.sagaOriginRaw != nil {
		if cb.SagaOrigin, err = decodeSagaOrigin(cb.sagaOriginRaw); err != nil {
			return nil, err
		}
	}
	return cb, nil
}

// decodeCommandPage decodes b into p (zero).
func decodeCommandPage(b []byte, p *CommandPage) error {
	return walk("CommandPage", b, &p.unknown, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = setU32(&p.Sequence, "CommandPage.sequence", f)
		case 3:
			var raw []byte
			if raw, err = anyBytes("CommandPage.command", f); err == nil {
				p.Command = merged(p.Command, raw)
			}
		default:
			p.unknown = append(p.unknown, f.raw...)
		}
		return err
	})
}

func decodeSagaOrigin(b []byte) (*SagaOrigin, error) {
	o := &SagaOrigin{}
	var coverRaw []byte
	err := walk("SagaCommandOrigin", b, nil, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = setStr(&o.SagaName, "SagaCommandOrigin.saga_name", f)
		case 2:
			var raw []byte
			if raw, err = bytesOf("SagaCommandOrigin.triggering_aggregate", f); err == nil {
				coverRaw = merged(coverRaw, raw)
			}
		case 3:
			err = setU32(&o.TriggeringEventSequence, "SagaCommandOrigin.triggering_event_sequence", f)
		}
		return err
	})
	if err == nil && coverRaw != nil {
		o.TriggeringAggregate, err = DecodeCover(coverRaw)
	}
	return o, err
}

// Append encodes the command book onto b.
func (cb *CommandBook) Append(b []byte) []byte {
	if cb.Cover != nil {
		b = appendCover(b, 1, cb.Cover)
	}
	for _, p := range cb.Pages {
		b = p.append(appendHeader(b, 2, p.size()))
	}
	b = appendBytes(b, 4, cb.sagaOriginRaw)
	b = appendBool(b, 5, cb.AutoResequence)
	b = appendString(b, 6, cb.IdempotencyKey)
	return append(b, cb.unknown...)
}

// size is the length of Append's encoding.
func (cb *CommandBook) size() int {
	n := coverSize(1, cb.Cover)
	for _, p := range cb.Pages {
		n += fieldSize(2, p.size())
	}
	return n + sizeBytes(4, cb.sagaOriginRaw) + sizeBool(5, cb.AutoResequence) +
		sizeString(6, cb.IdempotencyKey) + len(cb.unknown)
}

func (p *CommandPage) append(b []byte) []byte {
	b = appendUint(b, 1, uint64(p.Sequence))
	b = appendBytes(b, 3, p.Command)
	return append(b, p.unknown...)
}

func (p *CommandPage) size() int {
	return sizeUint(1, uint64(p.Sequence)) + sizeBytes(3, p.Command) + len(p.unknown)
}

// SyncCommandBook is angzarr.SyncCommandBook.
type SyncCommandBook struct {
	// Command is nil when absent.
	Command *CommandBook
	// SyncMode is the angzarr.SyncMode value (0 NONE, 1 SIMPLE, 2 CASCADE).
	SyncMode int32
}

// SyncModeName names a SyncMode value as the proto enum does.
func SyncModeName(m int32) string {
	switch m {
	case 0:
		return "SYNC_MODE_NONE"
	case 1:
		return "SYNC_MODE_SIMPLE"
	case 2:
		return "SYNC_MODE_CASCADE"
	}
	return "SyncMode(" + itoa(uint64(m)) + ")"
}

// DecodeSyncCommandBook decodes an angzarr.SyncCommandBook.
func DecodeSyncCommandBook(b []byte) (*SyncCommandBook, error) {
	s := &SyncCommandBook{}
	var cmdRaw []byte
	err := walk("SyncCommandBook", b, nil, func(f field) error {
		var err error
		switch f.num {
		case 1:
			var raw []byte
			if raw, err = bytesOf("SyncCommandBook.command", f); err == nil {
				cmdRaw = merged(cmdRaw, raw)
			}
		case 2:
			var v uint32
			if err = setU32(&v, "SyncCommandBook.sync_mode", f); err == nil {
				s.SyncMode = int32(v)
			}
		}
		return err
	})
	if err == nil && cmdRaw != nil {
		s.Command, err = DecodeCommandBook(cmdRaw)
	}
	return s, err
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return string(buf[i:])
}
