package filter

import (
	"slices"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
)

// validateCover checks a book's cover: a served domain and a 16-byte root.
func validateCover(cfg *config.Config, what string, cover *wire.Cover) *Status {
	switch {
	case cover == nil:
		return statusf(InvalidArgument, "%s has no cover (domain and root are required)", what)
	case cover.Domain == "":
		return statusf(InvalidArgument, "%s has no domain", what)
	case !cfg.Serves(cover.Domain):
		return statusf(InvalidArgument, "domain %q is not served here (this workload serves %v)", cover.Domain, cfg.Domains)
	case len(cover.Root) == 0:
		return statusf(InvalidArgument, "%s has no aggregate root", what)
	case len(cover.Root) != 16:
		return statusf(InvalidArgument, "%s root must be a 16-byte UUID, got %d bytes", what, len(cover.Root))
	}
	return nil
}

// validateCommand checks a CommandBook before anything is loaded or stored.
func validateCommand(cfg *config.Config, cmd *wire.CommandBook) *Status {
	if st := validateCover(cfg, "command", cmd.Cover); st != nil {
		return st
	}
	if len(cmd.Pages) == 0 {
		return statusf(InvalidArgument, "command has no pages: at least one command is required")
	}
	for i, p := range cmd.Pages {
		if p.Command == nil {
			return statusf(InvalidArgument, "command page %d has no command", i)
		}
	}
	return nil
}

// validateRecord checks an EventBook sent to Record.
func validateRecord(cfg *config.Config, book *wire.EventBook) *Status {
	if st := validateCover(cfg, "event book", book.Cover); st != nil {
		return st
	}
	if len(book.Pages) == 0 {
		return statusf(InvalidArgument, "event book has no pages: at least one event is required")
	}
	for i, p := range book.Pages {
		if p.Event == nil {
			return statusf(InvalidArgument, "event page %d has no event", i)
		}
	}
	return validateRecordTypes(cfg, book)
}

// maxNameInMessage bounds a client's type name quoted in an error (it
// travels in the grpc-message header).
const maxNameInMessage = 200

// validateRecordTypes allows a Record only events of the domain's declared
// types (config.Config.EventTypes); a domain that declares none refuses
// every Record. Nothing is stored when one page is refused.
func validateRecordTypes(cfg *config.Config, book *wire.EventBook) *Status {
	domain := book.Cover.Domain
	types := cfg.EventTypesOf(domain)
	if len(types) == 0 {
		return statusf(FailedPrecondition, "domain %q declares no event types (topology domains[].eventTypes): Record is refused", domain)
	}
	for i, p := range book.Pages {
		name := wire.AnyTypeName(p.Event)
		if name == "" {
			return statusf(InvalidArgument, "event page %d has no type (an empty type_url): Record stores only event types of domain %q", i, domain)
		}
		if !slices.Contains(types, name) {
			if len(name) > maxNameInMessage {
				name = name[:maxNameInMessage] + "..."
			}
			return statusf(InvalidArgument, "event page %d has type %q, which is not an event type of domain %q", i, name, domain)
		}
	}
	return nil
}
