package sdk

import "github.com/angzarr-mesh/angzarr/proto/angzarr"

// NextSequence is the sequence the next event of the aggregate whose history
// is book will get: one past its last numbered page, else the snapshot's
// sequence, else 0 for a new aggregate. It is also the expected sequence a
// client puts in the CommandPage of its next command.
func NextSequence(book *angzarr.EventBook) uint32 {
	next := book.GetSnapshot().GetSequence()
	for _, page := range book.GetPages() {
		if num, ok := page.GetSequence().(*angzarr.EventPage_Num); ok {
			next = max(next, num.Num+1)
		} else {
			next++ // a force-written page still takes a place
		}
	}
	return next
}
