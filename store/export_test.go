package store

// SetStreamImportMin lets external tests route small imports through the
// StreamWriter path.
func SetStreamImportMin(o *Options, n int) { o.streamImportMin = n }
