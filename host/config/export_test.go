package config

// SetMaxNodes lowers the bound on a file's values for a test, which must not
// run in parallel with others that parse; the returned function restores it.
func SetMaxNodes(n int64) (restore func()) {
	old := maxNodes
	maxNodes = n
	return func() { maxNodes = old }
}
