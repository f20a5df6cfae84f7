package main

import "strings"

// pattern is a named regular expression (Go's RE2 syntax).
type pattern struct {
	Name  string `json:"name"`
	Regex string `json:"regex"`
}

// presets are the patterns a configuration may name. They favour masking
// too much over too little, and avoid large bounded repeats ({36,255}),
// which would make the compiled program large; matches are unbounded, and
// the holdback bound (main.go) limits what is waited for.
var presets = map[string]pattern{
	// local@domain.tld: a domain of labels and a top-level domain of two or
	// more letters; a trailing full stop is not part of it.
	"email": {"email", `[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`},
	// An optional +country code, then an area code (in parentheses or
	// followed by a separator) and two groups of 3–4 and 4 digits
	// ("415-555-0100", "(415) 555-0100", "+1 415 555 0100", "+44 20 7946
	// 0958"); or + and 7–15 digits ("+14155550100"). Dates, times and
	// version numbers do not match; digit groups such as card numbers do.
	"phone": {"phone", `(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?|\b\d{2,4}[ .\-])\d{3,4}[ .\-]?\d{4}\b|\+\d{7,15}\b`},
	"api_key": {"api_key", strings.Join([]string{
		`sk-[A-Za-z0-9_\-]{20,}`,                                             // OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
		`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,                                      // AWS access key ids
		`\bgh[pousr]_[A-Za-z0-9]{36,}`,                                       // GitHub tokens
		`\bgithub_pat_[A-Za-z0-9_]{22,}`,                                     // GitHub fine-grained tokens
		`\bglpat-[A-Za-z0-9_\-]{20,}`,                                        // GitLab personal tokens
		`\bxox[abposr]-[A-Za-z0-9\-]{10,}`,                                   // Slack tokens
		`\bAIza[0-9A-Za-z_\-]{35}`,                                           // Google API keys
		`\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}`, // JWTs
		`-----BEGIN [A-Z ]*PRIVATE KEY-----`,                                 // PEM private keys (the body: base64 lines, below)
		`[0-9A-Fa-f]{32,}`,                                                   // generic: 32+ hex digits (also long hashes)
		`[A-Za-z0-9+/]{40,}={0,2}`,                                           // generic: 40+ base64 characters
	}, "|")},
}
