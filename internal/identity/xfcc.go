package identity

import "github.com/angzarr-mesh/angzarr/internal/xfcc"

// XFCCElement is one element of an x-forwarded-client-cert header.
type XFCCElement = xfcc.Element

// ParseXFCC parses an x-forwarded-client-cert header (xfcc.Parse).
func ParseXFCC(h string) ([]XFCCElement, error) { return xfcc.Parse(h) }

// Bounds of a header ParseXFCC accepts.
const (
	maxXFCCBytes    = xfcc.MaxBytes
	maxXFCCElements = xfcc.MaxElements
)
