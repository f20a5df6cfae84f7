//go:build race

package deepseekv4

// raceEnabled reports a -race build, under which the long prompts of the
// reference and invariance tests are cut to what still reaches every path
// (an HCA entry, indexer selection).
const raceEnabled = true
