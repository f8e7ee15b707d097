package console

import "embed"

// staticFS is the UI: plain HTML, CSS and JavaScript modules, no build step.
//
//go:embed static
var staticFS embed.FS
