package sdk

import _ "embed"

// CHeader is the C SDK's header, c/ulan_plugin.h, for tools that scaffold C
// plugins.
//
//go:embed c/ulan_plugin.h
var CHeader []byte
