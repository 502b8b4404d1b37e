// Package tuple is ambit's leaf vocabulary: object and subject references,
// relationships (with optional caveat and expiration), revisions, filters, and
// the text form `type:id#relation@type:id[#relation][caveat:{json}][expiration:RFC3339]`
// used by SpiceDB validation files and the CLI.
//
// Strings are parsed once, at the edge (API, CLI, validation files); inside
// ambit everything is typed. This package imports nothing of ambit's.
package tuple
